"""`make run` end to end: the printed URL and login work, web + worker + beat run, Ctrl-C stops
every process it started."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
URL_LINE = re.compile(r"^Connect is starting at (http://127\.0\.0\.1:(\d+))/admin/$")
LOGIN_LINE = re.compile(r"^Admin login: (\S+) / (\S+)$")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def processes_of_run(var_dir: Path) -> list[int]:
    """Live processes started for this run: they all carry its CONNECT_VAR_DIR."""
    marker = f"CONNECT_VAR_DIR={var_dir}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry))
    return found


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def test_make_run_serves_the_admin_with_the_printed_login(tmp_path: Path) -> None:
    port = free_port()
    # The embedded default: no database or Redis server, the Makefile derives PUBLIC_URL.
    unset = {"DATABASE_URL", "REDIS_URL", "PUBLIC_URL", "CONNECT_REQUIRE_SERVICES"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(PORT=str(port), CONNECT_VAR_DIR=str(tmp_path))
    process = subprocess.Popen(
        ["make", "run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))

    def output() -> str:
        return "\n".join(lines)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        logged_in = lambda: any(LOGIN_LINE.match(line) for line in lines)  # noqa: E731
        # A run that stops before its login line (a migration failing, say) fails at once.
        wait_for(lambda: logged_in() or process.poll() is not None, 300, "the login line")
        assert logged_in(), output()
        url_index = next(i for i, line in enumerate(lines) if URL_LINE.match(line))
        login_index = next(i for i, line in enumerate(lines) if LOGIN_LINE.match(line))
        # First the URL, then the login, before any process output.
        assert url_index < login_index < len(lines), output()
        assert not any(" | " in line for line in lines[: login_index + 1]), output()
        url_match = URL_LINE.match(lines[url_index])
        login_match = LOGIN_LINE.match(lines[login_index])
        assert url_match
        assert login_match
        base_url = url_match.group(1)
        username, password = login_match.groups()
        assert int(url_match.group(2)) == port
        assert username == "demo"
        assert password == (tmp_path / "demo_password").read_text().strip()

        def answers() -> bool:
            try:
                return requests.get(f"{base_url}/accounts/login/", timeout=5).status_code == 200
            except (requests.ConnectionError, requests.Timeout):  # still starting
                return False

        wait_for(answers, 120, f"{base_url} to answer")

        session = requests.Session()
        login_page = session.get(f"{base_url}/accounts/login/?next=/admin/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text)
        assert token, login_page.text
        signed_in = session.post(
            f"{base_url}/accounts/login/?next=/admin/",
            data={"csrfmiddlewaretoken": token.group(1), "login": username, "password": password},
            headers={"Referer": f"{base_url}/accounts/login/"},
            timeout=10,
        )
        assert signed_in.status_code == 200
        assert signed_in.url == f"{base_url}/admin/"
        admin = session.get(f"{base_url}/admin/", timeout=10)
        assert admin.status_code == 200
        assert "Demo API key" in admin.text
        assert "api-key/demo" in admin.text
        # A wrong password does not get in.
        stranger = requests.Session()
        page = stranger.get(f"{base_url}/accounts/login/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token
        stranger.post(
            f"{base_url}/accounts/login/",
            data={"csrfmiddlewaretoken": token.group(1), "login": username, "password": "nope"},
            timeout=10,
        )
        assert stranger.get(f"{base_url}/admin/", timeout=10).url.startswith(
            f"{base_url}/accounts/login/"
        )

        # The worker and beat are up, next to the web server.
        wait_for(
            lambda: re.search(r"^\S+ worker\.1\s+\| .*celery@\S+ ready\.", output(), re.M),
            120,
            "the worker to be ready",
        )
        wait_for(
            lambda: re.search(r"^\S+ beat\.1\s+\| .*beat: Starting\.\.\.", output(), re.M),
            120,
            "beat to start",
        )
        assert re.search(r"^\S+ web\.1\s+\| .*Listening at: " + re.escape(base_url), output(), re.M)
        # The embedded broker keeps all its files under the var dir.
        assert (tmp_path / "broker" / "control" / "celery.exchange").exists()
        assert (tmp_path / "connect.sqlite3").exists()

        # The detector sees the run's processes, so an empty list after Ctrl-C means something.
        commands = " ".join(
            Path(f"/proc/{pid}/cmdline").read_bytes().decode().replace("\0", " ")
            for pid in processes_of_run(tmp_path)
        )
        for program in ["gunicorn config.wsgi", "celery -A config worker", "celery -A config beat"]:
            assert program in commands, program

        # Ctrl-C: the terminal sends SIGINT to the foreground process group.
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
        wait_for(lambda: not processes_of_run(tmp_path), 30, "every process of the run to exit")
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, "the port still answers"
        for name in ["web.1", "worker.1", "beat.1"]:
            assert re.search(rf"^\S+ system\s+\| {re.escape(name)} stopped", output(), re.M), name
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        for pid in processes_of_run(tmp_path):
            with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                os.kill(pid, signal.SIGKILL)
        reader.join(timeout=10)
