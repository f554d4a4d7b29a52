"""``config/settings.py`` read in fresh processes, each with its own environment and var/."""

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

BASE_DIR = Path(django_settings.BASE_DIR)
# Variables the settings read; a test starts from none of them (the suite's own are dropped).
SETTINGS_VARIABLES = {
    "ALLOWED_HOSTS",
    "CONNECT_ALLOW_LOOPBACK",
    "CONNECT_ENCRYPTION_KEYS",
    "CONNECT_ENV",
    "CONNECT_VAR_DIR",
    "DATABASE_POOL_MAX",
    "DATABASE_URL",
    "DEBUG",
    "EMAIL_BACKEND",
    "PUBLIC_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "SECURE_HSTS_SECONDS",
}
PRINT_SETTINGS = """
import json, sys
from django.conf import settings
print(json.dumps({name: getattr(settings, name, None) for name in sys.argv[1:]}, default=str))
"""
PRODUCTION_SECRETS = {
    "SECRET_KEY": "x" * 20 + base64.urlsafe_b64encode(os.urandom(48)).decode(),
    "CONNECT_ENCRYPTION_KEYS": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    # Not a secret, but production refuses to start without it; nothing here connects to it.
    "REDIS_URL": "redis://redis.example.com:6379/0",
}


def environment(var_dir: Path, **variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", CONNECT_VAR_DIR=str(var_dir))
    env.update(variables)
    return env


def python(var_dir: Path, code: str, *args: str, **variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=BASE_DIR,
        env=environment(var_dir, **variables),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def read_settings(var_dir: Path, *names: str, **variables: str) -> dict[str, Any]:
    result = python(var_dir, PRINT_SETTINGS, *names, **variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def var_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


# --- DATABASE_URL -----------------------------------------------------------------------------


def sqlite_options_are_embedded_defaults(database: dict[str, Any]) -> None:
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    options = database["OPTIONS"]
    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] >= 5
    assert "PRAGMA journal_mode=WAL" in options["init_command"]


def test_the_default_database_is_sqlite_in_var(var_dir: Path) -> None:
    database = read_settings(var_dir, "DATABASES")["DATABASES"]["default"]

    assert database["NAME"] == str(var_dir / "connect.sqlite3")
    sqlite_options_are_embedded_defaults(database)


def test_a_relative_sqlite_url_is_relative_to_the_project(var_dir: Path) -> None:
    database = read_settings(var_dir, "DATABASES", DATABASE_URL="sqlite:///data/app.sqlite3")[
        "DATABASES"
    ]["default"]

    assert database["NAME"] == str(BASE_DIR / "data" / "app.sqlite3")
    sqlite_options_are_embedded_defaults(database)


def test_an_absolute_sqlite_url(var_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/elsewhere.sqlite3"  # tmp_path starts with "/": four slashes
    assert url.startswith("sqlite:////")

    database = read_settings(var_dir, "DATABASES", DATABASE_URL=url)["DATABASES"]["default"]

    assert database["NAME"] == str(tmp_path / "elsewhere.sqlite3")
    sqlite_options_are_embedded_defaults(database)


def test_the_sqlite_database_really_runs_in_wal_mode(var_dir: Path) -> None:
    code = """
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("PRAGMA journal_mode")
    print(cursor.fetchone()[0])
"""
    result = python(var_dir, "import django\ndjango.setup()\n" + code)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "wal"


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_a_postgres_url_gets_a_connection_pool(var_dir: Path, scheme: str) -> None:
    database = read_settings(
        var_dir,
        "DATABASES",
        DATABASE_URL=f"{scheme}://connect:s3cret@db.example.com:6543/connect_prod",
        DATABASE_POOL_MAX="9",
    )["DATABASES"]["default"]

    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["NAME"], database["USER"], database["PASSWORD"]) == (
        "connect_prod",
        "connect",
        "s3cret",
    )
    assert (database["HOST"], database["PORT"]) == ("db.example.com", 6543)
    # Django refuses persistent connections together with its pool.
    assert database["CONN_MAX_AGE"] == 0
    assert database["OPTIONS"]["pool"]["min_size"] >= 1
    assert database["OPTIONS"]["pool"]["max_size"] == 9


# --- REDIS_URL --------------------------------------------------------------------------------


def test_without_redis_celery_uses_the_filesystem_under_var(var_dir: Path) -> None:
    values = read_settings(
        var_dir, "CACHES", "CELERY_BROKER_URL", "CELERY_BROKER_TRANSPORT_OPTIONS"
    )

    assert values["CELERY_BROKER_URL"] == "filesystem://localhost/"
    folder = values["CELERY_BROKER_TRANSPORT_OPTIONS"]["data_folder_in"]
    assert Path(folder).is_relative_to(var_dir)
    assert Path(folder).is_dir()
    assert values["CACHES"]["default"]["BACKEND"].endswith("LocMemCache")


def test_with_redis_celery_and_the_cache_use_it(var_dir: Path) -> None:
    values = read_settings(
        var_dir, "CACHES", "CELERY_BROKER_URL", REDIS_URL="redis://cache.example.com:6379/3"
    )

    assert values["CELERY_BROKER_URL"] == "redis://cache.example.com:6379/3"
    assert values["CACHES"]["default"]["BACKEND"] == ("django.core.cache.backends.redis.RedisCache")
    assert values["CACHES"]["default"]["LOCATION"] == "redis://cache.example.com:6379/3"


# --- DEBUG ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "debug"),
    [
        ("1", True),
        ("true", True),
        ("on", True),
        ("TRUE", True),
        (" On ", True),
        ("0", False),
        ("false", False),
        ("off", False),
        ("", False),
    ],
)
def test_debug_accepts_the_usual_words(var_dir: Path, value: str, debug: bool) -> None:
    assert read_settings(var_dir, "DEBUG", DEBUG=value)["DEBUG"] is debug


def test_debug_is_off_by_default(var_dir: Path) -> None:
    assert read_settings(var_dir, "DEBUG")["DEBUG"] is False


# --- secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["SECRET_KEY", "CONNECT_ENCRYPTION_KEYS"])
def test_production_without_a_secret_stops_with_a_clear_message(
    var_dir: Path, missing: str
) -> None:
    given = {k: v for k, v in PRODUCTION_SECRETS.items() if k != missing}

    result = python(
        var_dir,
        PRINT_SETTINGS,
        "DEBUG",
        CONNECT_ENV="production",
        PUBLIC_URL="https://connect.example.com",
        **given,
    )

    assert result.returncode != 0
    assert result.stdout == ""
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured: ")
    assert f"{missing} must be set when CONNECT_ENV=production" in last_line
    # Production never falls back to generating one.
    assert not (var_dir / missing.lower()).exists()


def test_production_refuses_loopback_destinations(var_dir: Path) -> None:
    result = python(
        var_dir,
        PRINT_SETTINGS,
        "DEBUG",
        CONNECT_ENV="production",
        CONNECT_ALLOW_LOOPBACK="1",
        **PRODUCTION_SECRETS,
    )

    assert result.returncode != 0
    assert "CONNECT_ALLOW_LOOPBACK" in result.stderr.strip().splitlines()[-1]


def test_production_uses_the_given_secrets(var_dir: Path) -> None:
    second_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    values = read_settings(
        var_dir,
        "SECRET_KEY",
        "CONNECT_ENCRYPTION_KEYS",
        CONNECT_ENV="production",
        PUBLIC_URL="https://connect.example.com",
        SECRET_KEY=PRODUCTION_SECRETS["SECRET_KEY"],
        CONNECT_ENCRYPTION_KEYS=f" {PRODUCTION_SECRETS['CONNECT_ENCRYPTION_KEYS']} ,{second_key},",
        REDIS_URL=PRODUCTION_SECRETS["REDIS_URL"],
    )

    assert values["SECRET_KEY"] == PRODUCTION_SECRETS["SECRET_KEY"]
    assert values["CONNECT_ENCRYPTION_KEYS"] == [
        PRODUCTION_SECRETS["CONNECT_ENCRYPTION_KEYS"],
        second_key,
    ]
    assert not (var_dir / "secret_key").exists()


def test_outside_production_secrets_are_generated_once_and_reused(var_dir: Path) -> None:
    first = read_settings(var_dir, "SECRET_KEY", "CONNECT_ENCRYPTION_KEYS")

    for name in ("secret_key", "connect_encryption_keys"):
        assert (var_dir / name).stat().st_mode & 0o777 == 0o600
    assert (var_dir / "secret_key").read_text() == first["SECRET_KEY"]
    assert len(first["SECRET_KEY"]) >= 50
    [key] = first["CONNECT_ENCRYPTION_KEYS"]
    assert len(base64.urlsafe_b64decode(key)) == 32

    second = read_settings(var_dir, "SECRET_KEY", "CONNECT_ENCRYPTION_KEYS")
    assert second == first

    other = read_settings(var_dir.parent / "other-var", "SECRET_KEY", "CONNECT_ENCRYPTION_KEYS")
    assert other["SECRET_KEY"] != first["SECRET_KEY"]
    assert other["CONNECT_ENCRYPTION_KEYS"] != first["CONNECT_ENCRYPTION_KEYS"]


def test_processes_starting_together_agree_on_the_generated_secrets(
    var_dir: Path, tmp_path: Path
) -> None:
    """Web, worker and beat start at once on a fresh machine: none may read a half-written
    file or keep a value the others did not."""
    # A start line: each process says it is ready, then waits for the word to go.
    line = tmp_path / "start-line"
    line.mkdir()
    code = f"""
import json, os, pathlib, time
import django.conf, dj_database_url, celery.schedules  # the slow imports, before the start line
line = pathlib.Path({str(line)!r})
(line / f"ready-{{os.getpid()}}").touch()
while not (line / "go").exists():
    time.sleep(0.001)
from django.conf import settings
print(json.dumps([settings.SECRET_KEY, settings.CONNECT_ENCRYPTION_KEYS]))
"""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=BASE_DIR,
            env=environment(var_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(16)
    ]
    deadline = time.monotonic() + 60
    while len(list(line.glob("ready-*"))) < len(processes):
        assert time.monotonic() < deadline, "the processes never reached the start line"
        assert all(p.poll() is None for p in processes), "a process died before the start"
        time.sleep(0.01)
    (line / "go").touch()
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        outputs.append(json.loads(stdout))

    secret_key, keys = outputs[0]
    assert secret_key
    assert len(keys) == 1
    assert all(output == [secret_key, keys] for output in outputs)
    assert sorted(p.name for p in var_dir.iterdir() if p.is_file()) == [
        "connect_encryption_keys",
        "secret_key",
    ]


# --- PUBLIC_URL -------------------------------------------------------------------------------

HTTPS_NAMES = (
    "CSRF_TRUSTED_ORIGINS",
    "SECURE_PROXY_SSL_HEADER",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_SSL_REDIRECT",
    "ALLOWED_HOSTS",
)


def test_an_https_public_url_trusts_the_proxy_and_secures_cookies(var_dir: Path) -> None:
    values = read_settings(
        var_dir, *HTTPS_NAMES, "PUBLIC_URL", PUBLIC_URL="https://connect.example.com:8443/"
    )

    assert values["PUBLIC_URL"] == "https://connect.example.com:8443"
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://connect.example.com:8443"]
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["ALLOWED_HOSTS"][0] == "connect.example.com"


def test_an_http_public_url_trusts_no_proxy_header(var_dir: Path) -> None:
    values = read_settings(var_dir, *HTTPS_NAMES, PUBLIC_URL="http://localhost:9000")

    assert values["CSRF_TRUSTED_ORIGINS"] == ["http://localhost:9000"]
    assert values["SECURE_PROXY_SSL_HEADER"] is None
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["SECURE_SSL_REDIRECT"] is False


def test_production_allows_only_the_public_host_unless_told(var_dir: Path) -> None:
    production = {"CONNECT_ENV": "production", **PRODUCTION_SECRETS}
    assert read_settings(
        var_dir, "ALLOWED_HOSTS", PUBLIC_URL="https://connect.example.com", **production
    )["ALLOWED_HOSTS"] == ["connect.example.com"]
    assert read_settings(
        var_dir,
        "ALLOWED_HOSTS",
        PUBLIC_URL="https://connect.example.com",
        ALLOWED_HOSTS="a.example.com, b.example.com",
        **production,
    )["ALLOWED_HOSTS"] == ["a.example.com", "b.example.com"]


@pytest.mark.parametrize("url", ["connect.example.com", "ftp://connect.example.com", "https://"])
def test_a_public_url_that_is_not_an_http_url_is_refused(var_dir: Path, url: str) -> None:
    result = python(var_dir, PRINT_SETTINGS, "PUBLIC_URL", PUBLIC_URL=url)

    assert result.returncode != 0
    assert "ImproperlyConfigured: PUBLIC_URL must be an absolute http(s) URL" in result.stderr


def test_behind_https_the_admin_redirects_to_https_but_the_api_never_does(
    var_dir: Path,
) -> None:
    code = """
import json
import django
django.setup()
from django.test import Client
client = Client()
answers = {}
for path, proto in [
    ("/admin/", ""),
    ("/admin/", "https"),
    ("/v1/connect/token/api-key/demo", ""),
    ("/connect/trigger/scl_x", ""),
]:
    headers = {"HTTP_X_FORWARDED_PROTO": proto} if proto else {}
    response = client.get(path, HTTP_HOST="connect.example.com", **headers)
    answers[f"{proto or 'http'} {path}"] = [
        response.status_code,
        response.get("Location", ""),
        response.get("Strict-Transport-Security", ""),
    ]
print(json.dumps(answers))
"""
    result = python(
        var_dir,
        code,
        CONNECT_ENV="production",
        PUBLIC_URL="https://connect.example.com",
        DATABASE_URL=f"sqlite:///{var_dir}/db.sqlite3",
        **PRODUCTION_SECRETS,
    )
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)

    assert answers["http /admin/"][:2] == [301, "https://connect.example.com/admin/"]
    status, location, hsts = answers["https /admin/"]
    assert status == 302
    assert location.startswith("/admin/login/")
    assert "max-age=31536000" in hsts
    for path in ("/v1/connect/token/api-key/demo", "/connect/trigger/scl_x"):
        status, location, _ = answers[f"http {path}"]
        assert status not in (301, 302, 307, 308), (path, status, location)
        assert not location.startswith("https://"), path


def test_check_deploy_is_clean_in_production(var_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=BASE_DIR,
        env=environment(
            var_dir,
            CONNECT_ENV="production",
            PUBLIC_URL="https://connect.example.com",
            DATABASE_URL=f"sqlite:///{var_dir}/db.sqlite3",
            **PRODUCTION_SECRETS,
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."


def test_a_one_time_secret_waits_where_every_web_process_finds_it(var_dir: Path) -> None:
    """The admin's POST stashes a new secret and its redirect shows it: gunicorn's other worker
    may answer that redirect, so a per-process (local memory) cache would lose it."""
    alone = read_settings(var_dir, "CACHES")["CACHES"]["one_time"]
    shared = read_settings(var_dir, "CACHES", REDIS_URL="redis://cache.example.com:6379/3")

    assert alone["BACKEND"] == "django.core.cache.backends.filebased.FileBasedCache"
    assert Path(alone["LOCATION"]).is_relative_to(var_dir)
    assert shared["CACHES"]["one_time"] == shared["CACHES"]["default"]
