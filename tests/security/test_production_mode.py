"""Production mode refuses weak settings, and secrets stay out of reprs and error reports
(issue 8, point 12). Log redaction is in ``test_log_redaction.py``.

Start-up is probed the way an operator meets it: ``manage.py check --deploy`` in a fresh process
with the production checklist's variables, one of them weakened at a time.
"""

import base64
import dataclasses
import importlib
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client, RequestFactory
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

import connect
from connect import views
from connect.api import views as api_views
from connect.providers.base import (
    AuthorizeRequest,
    CallbackRequest,
    ProviderCredentials,
    TokenSet,
    WebhookRequest,
)
from connect.services.authorizations import StartedFlow
from connect.services.tokens import IssuedToken
from tests.fixtures import webhook_body

BASE_DIR = Path(django_settings.BASE_DIR)
# Whatever the suite's environment sets, a probe starts from none of these.
SETTINGS_VARIABLES = {
    "ALLOWED_HOSTS",
    "CONNECT_ALLOW_LOOPBACK",
    "CONNECT_ENCRYPTION_KEYS",
    "CONNECT_ENV",
    "CONNECT_VAR_DIR",
    "DATABASE_URL",
    "DEBUG",
    "PUBLIC_URL",
    "REDIS_URL",
    "SECRET_KEY",
}
SECRET_KEY = base64.urlsafe_b64encode(os.urandom(48)).decode()  # 64 characters
CHECKLIST = {
    "CONNECT_ENV": "production",
    "SECRET_KEY": SECRET_KEY,
    "CONNECT_ENCRYPTION_KEYS": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    "PUBLIC_URL": "https://connect.example.com",
    "REDIS_URL": "redis://redis.internal:6379/0",  # nothing here connects to it
    "DATABASE_URL": "postgres://connect:pw@db.internal:5432/connect",
}


def check_deploy(tmp_path: Path, **variables: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", CONNECT_VAR_DIR=str(tmp_path / "var"))
    env.update(CHECKLIST)
    for name, value in variables.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_production_checklist_passes_check_deploy_cleanly(tmp_path: Path) -> None:
    result = check_deploy(tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."


WEAK = {
    "DEBUG on": ({"DEBUG": "1"}, "DEBUG is on"),
    "SECRET_KEY of 49 characters": ({"SECRET_KEY": SECRET_KEY[:49]}, "SECRET_KEY is too weak"),
    "SECRET_KEY of few characters": ({"SECRET_KEY": "ab" * 40}, "SECRET_KEY is too weak"),
    "SECRET_KEY Django calls insecure": (
        {"SECRET_KEY": "django-insecure-" + SECRET_KEY},
        "SECRET_KEY is too weak",
    ),
    "http PUBLIC_URL": ({"PUBLIC_URL": "http://connect.example.com"}, "PUBLIC_URL must be"),
    "no PUBLIC_URL": ({"PUBLIC_URL": None}, "PUBLIC_URL must be"),
    "no REDIS_URL": ({"REDIS_URL": None}, "REDIS_URL is not set"),
    "empty REDIS_URL": ({"REDIS_URL": ""}, "REDIS_URL is not set"),
}


@pytest.mark.parametrize(("weakened", "complaint"), WEAK.values(), ids=WEAK.keys())
def test_production_start_up_stops_on_a_weak_setting(
    tmp_path: Path, weakened: dict[str, str | None], complaint: str
) -> None:
    result = check_deploy(tmp_path, **weakened)

    assert result.returncode != 0, result.stdout
    assert "System check identified" not in result.stdout
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(
        "django.core.exceptions.ImproperlyConfigured: CONNECT_ENV=production refuses to start: "
    ), last_line
    assert complaint in last_line
    assert last_line.count(";") == 0, "only the weakened setting is named"
    for value in filter(None, weakened.values()):
        if "SECRET_KEY" in complaint:
            assert value not in result.stderr, "the refusal must not print the key"


def test_every_weak_setting_is_named_in_one_message(tmp_path: Path) -> None:
    result = check_deploy(
        tmp_path, DEBUG="1", SECRET_KEY="short", PUBLIC_URL="http://x.example.com", REDIS_URL=None
    )

    last_line = result.stderr.strip().splitlines()[-1]
    for complaint in ("DEBUG", "SECRET_KEY", "PUBLIC_URL", "REDIS_URL"):
        assert complaint in last_line


# Secrets stay out of reprs ---------------------------------------------------------------------

# Field names that hold a secret (a token, a key, a verifier, a code, a state, raw requests).
SECRET_FIELD = re.compile(
    r"token|secret|password|verifier|private_key|api_key|assertion|^state$|^code$|^params$"
    r"|^headers$|^body$|^query$"
)
# Fields whose names look secret but whose values are not (or hide their own secrets).
NOT_SECRET = {
    ("InstallResult", "app_tokens"),  # TokenSets: their repr hides the tokens
    ("InstallResult", "user_tokens"),
    ("RevokeCounts", "tokens_found"),  # a count
    ("Endpoints", "token"),  # the token endpoint's URL
    ("WebhookReply", "body"),  # what we answer a provider's handshake with
    ("TriggerReply", "body"),
    ("Counted", "token_requests"),  # Prometheus counters of token requests
    ("Counted", "token_request_seconds"),
    ("TeamActor", "token_id"),  # a team API token's row id and public id, not its secret
    ("TeamActor", "token_public_id"),
    ("Hour", "tokens"),  # activity: a Counter of token-request outcomes per hour, no token
    ("Importer", "by_token"),  # a bool: whether a team API token is importing, not the token
}


def connect_dataclasses() -> list[type]:
    found = {}
    for module_info in pkgutil.walk_packages(connect.__path__, "connect."):
        if ".migrations" in module_info.name:
            continue
        module = importlib.import_module(module_info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and dataclasses.is_dataclass(value)
                and value.__module__.startswith("connect.")
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


def test_every_dataclass_field_holding_a_secret_is_left_out_of_repr() -> None:
    classes = connect_dataclasses()
    assert {c.__name__ for c in classes} >= {"ProviderCredentials", "TokenSet", "IssuedToken"}
    shown = [
        f"{cls.__module__}.{cls.__qualname__}.{f.name}"
        for cls in classes
        for f in dataclasses.fields(cls)
        if SECRET_FIELD.search(f.name) and f.repr and (cls.__name__, f.name) not in NOT_SECRET
    ]

    assert shown == [], "mark these field(repr=False)"


def test_reprs_of_secret_bearing_values_show_no_secret() -> None:
    values: list[Any] = [
        ProviderCredentials(
            type="oauth",
            client_id="client",
            config={},
            client_secret="SECRET-client",
            private_key="SECRET-pem",
            api_key="SECRET-api-key",
            webhook_secret="SECRET-webhook",
        ),
        TokenSet(access_token="SECRET-access", expires_at=None, refresh_token="SECRET-refresh"),
        CallbackRequest(
            kind="consent",
            subject_type="user",
            scopes=["read"],
            params={"code": "SECRET-code", "state": "SECRET-state"},
            redirect_uri="https://connect.example.com/connect/callback",
            code_verifier="SECRET-pkce",
        ),
        AuthorizeRequest(
            kind="consent",
            subject_type="user",
            scopes=["read"],
            redirect_uri="https://connect.example.com/connect/callback",
            state="SECRET-state",
        ),
        WebhookRequest(
            headers={"x-hub-signature-256": "sha256=SECRET-signature"},
            query={"validationToken": "SECRET-validation"},
            body=webhook_body("slack", "app_mention", {"token": "SECRET-verification-token"}),
            now=0.0,
        ),
        IssuedToken(
            token="SECRET-issued",
            issue=None,  # type: ignore[arg-type]
            expires_at=None,  # type: ignore[arg-type]
            connector=None,  # type: ignore[arg-type]
            installation=None,  # type: ignore[arg-type]
            grant=None,  # type: ignore[arg-type]
        ),
        StartedFlow(flow=None, verifier="scv_SECRET-verifier", url="https://x/y"),  # type: ignore[arg-type]
    ]

    for value in values:
        assert "SECRET" not in repr(value), repr(value)


# Views that handle secrets hide their variables from error reports ----------------------------

CLEANSED = SafeExceptionReporterFilter.cleansed_substitute


def test_the_callbacks_variables_stay_out_of_error_reports(rf: RequestFactory) -> None:
    """The callback fails here for real (this test may not touch the database) after reading
    the code and state: the report of that failure shows none of its variables."""
    request = rf.get("/connect/callback", {"code": "SECRET-code", "state": "SECRET-state"})
    try:
        views.callback(request)
    except RuntimeError:
        exc_info = sys.exc_info()
    else:
        pytest.fail("the callback reached the database")

    reporter = ExceptionReporter(request, *exc_info)
    frames = [f for f in reporter.get_traceback_frames() if f["function"] == "callback"]

    assert frames, [f["function"] for f in reporter.get_traceback_frames()]
    for frame in frames:
        assert frame["vars"], frame
        assert all(value == CLEANSED for _, value in frame["vars"]), frame["vars"]


@pytest.mark.parametrize(
    "method",
    [
        api_views.TokenView.post,
        api_views.TokenImportView.post,
        api_views.AuthorizeView.post,
        api_views.InstallView.post,
        api_views.ResultView.get,
        views.install_page,
    ],
    ids=lambda m: m.__qualname__,
)
def test_api_views_handling_tokens_and_verifiers_are_sensitive(method: Any) -> None:
    assert method.__code__.co_name == "sensitive_variables_wrapper"


@pytest.mark.parametrize(
    "model", ["connector", "deploymentcredential", "teamapitoken", "triggerdestination"]
)
def test_admin_forms_that_take_or_give_secrets_hide_their_post_data(
    admin_client: Client, model: str
) -> None:
    response = admin_client.post(f"/admin/connect/{model}/add/", {"client_secret": "SECRET"})

    assert response.wsgi_request.sensitive_post_parameters == "__ALL__"  # type: ignore[attr-defined]
