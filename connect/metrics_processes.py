"""Where each process writes its Prometheus counters, so that one scrape adds up every process.

prometheus-client's multiprocess mode: each process keeps its counters in files named by its
pid, in the directory ``PROMETHEUS_MULTIPROC_DIR`` names *when prometheus_client is first
imported*; a scrape merges the files. Each group of processes that starts together gets a
folder of its own under ``CONNECT_METRICS_DIR`` (default ``var/metrics``), emptied when the group
starts, so a restart of one never deletes the live files of another:

- ``web``: gunicorn's workers (``config/gunicorn.py`` prepares it in the master; its
  ``child_exit`` hook marks a dead worker's files);
- ``worker-<node name>``: one Celery worker and its pool children (``config/celery.py``).

``/metrics`` merges every folder (``connect.metrics``). Workers on another machine write to
that machine's folder, which this one cannot read: their figures that matter (deliveries,
heartbeats) are read from the database instead. Imports neither Django nor prometheus_client.
"""

import os
import shutil
from pathlib import Path

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
BASE_DIR = Path(__file__).resolve().parent.parent


def metrics_root() -> Path:
    """``CONNECT_METRICS_DIR``, else ``metrics/`` in the var directory (as settings computes it:
    this runs in gunicorn's master, before Django)."""
    configured = os.environ.get("CONNECT_METRICS_DIR", "").strip()
    if configured:
        return Path(configured).resolve()
    return Path(os.environ.get("CONNECT_VAR_DIR", BASE_DIR / "var")).resolve() / "metrics"


def group_folder(group: str) -> Path:
    # A Celery node name ("w1@host") is a fine folder name but for the separators.
    return metrics_root() / group.replace(os.sep, "_")


def multiprocess_start(group: str, *, empty: bool = True) -> Path:
    """Make this process (and its children) write to this group's folder, emptied first
    unless ``empty`` is false (then call ``multiprocess_empty`` when the group starts).

    Must run before prometheus_client is imported in this process: it picks multiprocess mode
    at import, from the environment.
    """
    folder = multiprocess_empty(group) if empty else group_folder(group)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_VARIABLE] = str(folder)
    return folder


def multiprocess_empty(group: str) -> Path:
    """The files of the group's previous run go: their processes are gone, and their counts
    with them (Prometheus reads the drop as the restart it is)."""
    folder = group_folder(group)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def multiprocess_on() -> bool:
    return bool(os.environ.get(MULTIPROC_VARIABLE))


def process_dead(pid: int) -> None:
    """gunicorn's ``child_exit``: a dead worker's live gauges stop counting (its counters stay,
    so totals never go backwards)."""
    folder = os.environ.get(MULTIPROC_VARIABLE)
    if folder:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, folder)


def every_group_file() -> list[str]:
    return sorted(str(path) for path in metrics_root().glob("*/*.db"))
