import os

from celery import Celery, signals

from connect import heartbeats, metrics_processes

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect
def use_django_logging(**kwargs: object) -> None:
    """Django's LOGGING for workers and beat too (JSON lines, request and task ids, redaction,
    Celery's routine lines quieted), instead of the handlers Celery would install."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@signals.celeryd_init.connect
def metrics_folder(sender: object = None, **kwargs: object) -> None:
    """Before any of its processes counts anything (prometheus_client is imported on first
    use, see connect/metrics.py): they count into a folder of this worker's own, merged into
    the web's /metrics on this machine."""
    metrics_processes.multiprocess_start(f"worker-{sender}")


signals.worker_init.connect(heartbeats.worker_starting)
signals.worker_ready.connect(heartbeats.worker_ready)
