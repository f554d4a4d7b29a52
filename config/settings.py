"""The one settings module. Everything that differs between machines comes from the environment.

Production mode is explicit (``CONNECT_ENV=production``): there a missing ``SECRET_KEY`` or
``CONNECT_ENCRYPTION_KEYS`` stops start-up. Elsewhere both are generated once into ``var/`` and
reused, so tests, mypy and a fresh ``make run`` need nothing set.
"""

import base64
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from celery.schedules import crontab
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from connect.checks import DeliveryTimes, delivery_time_problems, visibility_timeout
from connect.var_files import read_or_create

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CONNECT_VAR_DIR", BASE_DIR / "var")).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

CONNECT_ENV = os.environ.get("CONNECT_ENV", "development")
PRODUCTION = CONNECT_ENV == "production"


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "on", "yes"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def secret_from_env_or_var(name: str, generate: Callable[[], str]) -> str:
    """Return the variable, or (outside production) a value generated once into ``var/``."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    if PRODUCTION:
        raise ImproperlyConfigured(
            f"{name} must be set when CONNECT_ENV=production; see README.md, 'Configuration'."
        )
    return read_or_create(VAR_DIR / name.lower(), generate)


SECRET_KEY = secret_from_env_or_var("SECRET_KEY", lambda: secrets.token_urlsafe(50))
# Comma-separated base64 AES-256 keys; the first encrypts, all decrypt.
CONNECT_ENCRYPTION_KEYS = [
    key.strip()
    for key in secret_from_env_or_var(
        "CONNECT_ENCRYPTION_KEYS",
        lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    ).split(",")
    if key.strip()
]

DEBUG = env_bool("DEBUG", default=False)

PUBLIC_URL = os.environ.get("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
_public = urlsplit(PUBLIC_URL)
if _public.scheme not in {"http", "https"} or not _public.hostname:
    raise ImproperlyConfigured(f"PUBLIC_URL must be an absolute http(s) URL, got {PUBLIC_URL!r}")
PUBLIC_ORIGIN = f"{_public.scheme}://{_public.netloc}"

ALLOWED_HOSTS = [
    host.strip() for host in os.environ.get("ALLOWED_HOSTS", "").split(",") if host.strip()
] or [_public.hostname, *([] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"])]
# Names a scraper or load balancer calls this server by (a pod's "10.0.0.5", or "*"): honoured
# for /metrics and /v1/health only (connect/internal_hosts.py), never added to ALLOWED_HOSTS.
CONNECT_INTERNAL_HOSTS = [
    host.strip() for host in os.environ.get("CONNECT_INTERNAL_HOSTS", "").split(",") if host.strip()
]
CSRF_TRUSTED_ORIGINS = [PUBLIC_ORIGIN]

if _public.scheme == "https":
    # Behind a TLS-terminating proxy: trust its scheme header and keep cookies on HTTPS.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    # The API must never answer with a redirect; the proxy terminates TLS for it. Nor must
    # /metrics: scrapers call it over plain HTTP on an internal address.
    SECURE_REDIRECT_EXEMPT = [r"^v1/", r"^connect/trigger/", r"^\.well-known/", r"^metrics$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# django-csp 4. No inline script anywhere (the admin's scripts are files); inline style only in
# <style> elements carrying the request's nonce (the flow pages' and the connector page's
# branding colours). Icons may come from any https origin (and http outside production, for
# local icons). The flow pages also send Referrer-Policy: no-referrer (connect/views.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "https:", *([] if PRODUCTION else ["http:"])],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
SESSION_COOKIE_HTTPONLY = True
APPEND_SLASH = False

INSTALLED_APPS = [
    "connect.apps.ConnectAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "csp",
    "connect.apps.ConnectConfig",
]

MIDDLEWARE = [
    "connect.request_ids.RequestIdMiddleware",
    "connect.api.envelope.ApiEnvelopeMiddleware",
    "connect.internal_hosts.InternalHostsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
            ],
        },
    },
]


def database_from_url(url: str) -> dict[str, object]:
    config: dict[str, object] = dict(dj_database_url.parse(url))
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets the web process read while the worker writes; IMMEDIATE takes the write lock
        # at BEGIN, so concurrent transactions queue instead of failing on a lock upgrade.
        name = Path(str(config["NAME"]))
        config["NAME"] = name if name.is_absolute() else BASE_DIR / name
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    elif config["ENGINE"] == "django.db.backends.postgresql":
        pool_max = env_int("DATABASE_POOL_MAX", 4)
        # Server-side binding lets psycopg prepare the statements a process repeats (the token
        # path's join is planned once instead of on every request).
        options: dict[str, object] = {"server_side_binding": True, "prepare_threshold": 5}
        if pool_max > 0:
            config["CONN_MAX_AGE"] = 0  # the pool keeps connections; it conflicts with this
            config["CONN_HEALTH_CHECKS"] = True
            options["pool"] = {"min_size": 1, "max_size": pool_max, "timeout": 10}
        else:
            # No pool: one persistent connection per process, checked before reuse.
            config["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 300)
            config["CONN_HEALTH_CHECKS"] = True
        config["OPTIONS"] = options
    return config


DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'connect.sqlite3'}"
DATABASES = {"default": database_from_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CONNECT_CACHE_PREFIX", "connect"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# A new secret waits here (sealed) between the admin's POST and the page that shows it once; the
# page may be served by another web process, so without Redis it waits in files under var/.
CACHES["one_time"] = (
    CACHES["default"]
    if REDIS_URL
    else {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(VAR_DIR / "one-time"),
    }
)

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "admin:index"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_ADAPTER = "connect.accounts.AccountAdapter"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
SOCIALACCOUNT_ADAPTER = "connect.accounts.SocialAccountAdapter"

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "connect@localhost")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise serves from here once collectstatic has run
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION
# Outside production, as WhiteNoise itself does under DEBUG: a static file is looked up when it
# is asked for, so an edit shows without a restart, and starting a request handler (each test
# client does) no longer reads every static file's stats first, about 65 ms each time.
WHITENOISE_AUTOREFRESH = not PRODUCTION

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["connect.api.parsers.StrictJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "connect.api.envelope.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "connect.api.schema.ConnectAutoSchema",
}

# The OpenAPI document at /v1/openapi.json and its page at /v1/docs (connect.api.schema.py).
# Swagger UI's files come from drf-spectacular-sidecar, served by us: no CDN.
SPECTACULAR_SETTINGS = {
    "TITLE": "Connect API",
    "DESCRIPTION": (
        "The runtime API that deployments call for tokens (wire-compatible with Vercel Connect) "
        "and the management API that team tokens call. Every error is "
        '`{"error": {"code", "message", "vendor"?}}`; pick the error from `code`.'
    ),
    "VERSION": "1",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None, "tryItOutEnabled": False},
    "PATH_CONVERTER_OVERRIDES": {
        "connector": {
            "type": "string",
            "description": "The connector's `scl_` id, or its uid `service/name` (send the `/` "
            "as `%2F`).",
            "pattern": r"^(scl_[A-Za-z0-9]+|[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*)$",
        }
    },
    "PREPROCESSING_HOOKS": ["connect.api.schema.token_fast_path"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "connect.api.schema.error_responses_everywhere",
    ],
    "ENUM_NAME_OVERRIDES": {
        "ConnectorTypeEnum": "connect.api.shapes.CONNECTOR_TYPES",
        "SubjectTypeEnum": "connect.api.shapes.SUBJECT_TYPES",
        "InstallationStatusEnum": "connect.api.shapes.INSTALLATION_STATUSES",
        "GrantStatusEnum": "connect.api.shapes.GRANT_STATUSES",
        "DeliveryStatusEnum": "connect.api.shapes.DELIVERY_STATUSES",
        "AuthorizationOutcomeEnum": "connect.api.shapes.AUTHORIZATION_OUTCOMES",
        "DestinationKindEnum": "connect.models.destinations.DestinationKind",
    },
}

# Celery: Redis when configured, else kombu's filesystem transport under var/ (one machine only).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A request that stores an event must not hang on a dead broker: the sweeper rings later.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# How long Redis waits for a doorbell's acknowledgement before it hands it to another worker;
# longer than anything a task may take (see the chain under "Forwarding" below).
CONNECT_BROKER_VISIBILITY_TIMEOUT = env_int("CONNECT_BROKER_VISIBILITY_TIMEOUT", 3600)
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "visibility_timeout": CONNECT_BROKER_VISIBILITY_TIMEOUT
    }
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = CELERY_BROKER_TRANSPORT_OPTIONS
else:
    _broker_dir = VAR_DIR / "broker"
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    # A hostname of its own, or kombu warns at every connection that it "reverts to localhost".
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Exchange tables; kombu's default is ./control, inside the checkout.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
# Beat refreshes tokens ahead of demand this often. Tokens that live less than two periods are
# left to the requests that need them: refreshed ahead, they would be refreshed at every sweep.
CONNECT_REFRESH_SWEEP_SECONDS = env_int("CONNECT_REFRESH_SWEEP", 60)
CELERY_BEAT_SCHEDULE = {
    "authorization-requests-expire": {
        "task": "connect.tasks.authorization_requests_expire",
        "schedule": crontab(minute="*"),
    },
    "deliveries-sweep": {
        "task": "connect.tasks.deliveries_sweep",
        "schedule": 5.0,
    },
    "grants-refresh-due": {
        "task": "connect.tasks.grants_refresh_due",
        "schedule": float(CONNECT_REFRESH_SWEEP_SECONDS),
    },
    "credentials-check": {
        "task": "connect.tasks.credentials_check",
        "schedule": float(env_int("CONNECT_CHECK_EVERY", 60)),
        "options": {"expires": float(env_int("CONNECT_CHECK_EVERY", 60))},
    },
    "retention-prune": {
        "task": "connect.tasks.retention_prune",
        "schedule": float(env_int("CONNECT_RETENTION_EVERY", 60)),
        # A run that waited past the next one is dropped: the next one does its work.
        "options": {"expires": float(env_int("CONNECT_RETENTION_EVERY", 60))},
    },
}
# Beat records its heartbeat as it ticks (connect/heartbeats.py); workers record theirs.
CELERY_BEAT_SCHEDULER = "connect.heartbeats:HeartbeatScheduler"

# Codes, states and result verifiers travel in URLs, and Django logs URLs (every pending result
# poll is a 400: "Bad Request: /v1/connect/result/scv_…"). The filter rewrites such records where
# they are logged, before Django's own handlers or ours see them, and again on our handler.
# LOG_FORMAT=json writes one JSON object per line (connect/logs.py); both formats carry the
# request id. Celery's "received"/"succeeded"/"Sending due task" lines are DEBUG lines.
_REDACTED = {"filters": ["redact"]}
_ROUTINE = {"filters": ["routine_celery"]}
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain").strip().lower() or "plain"
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact": {"()": "connect.redaction.RedactingFilter"},
        # A 502/503/504 reports a provider's failure (its cause is logged where it happened):
        # a warning, not an ERROR of this app.
        "upstream": {"()": "connect.log_levels.UpstreamFailureFilter"},
        "request_id": {"()": "connect.logs.RequestIdFilter"},
        "routine_celery": {"()": "connect.logs.RoutineCeleryLines"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "connect.logs.JsonFormatter"},
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["redact", "request_id"],
        }
    },
    "root": {"handlers": ["stderr"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "django.request": {"filters": ["redact", "upstream"]},
        "django.security.csrf": _REDACTED,
        # runserver's request lines: to our (redacting) handler instead of Django's own.
        "django.server": {**_REDACTED, "propagate": True},
        "celery.app.trace": _ROUTINE,
        "celery.worker.strategy": _ROUTINE,
        "celery.beat": _ROUTINE,
    },
}

# Connect's own knobs.
# At most; a token is refreshed within a quarter of its lifetime of expiry if that is shorter.
CONNECT_REFRESH_MARGIN_SECONDS = env_int("CONNECT_REFRESH_MARGIN", 300)
# How long a provider call may take (the read timeout). A refresh runs to the end of it even when
# the API caller has stopped waiting, so that a rotated refresh token is always stored.
CONNECT_PROVIDER_TIMEOUT_SECONDS = env_float("CONNECT_PROVIDER_TIMEOUT", 30.0)
# How long an API caller waits for a refresh before it is answered provider_unavailable.
CONNECT_PROVIDER_WAIT_SECONDS = env_float("CONNECT_PROVIDER_WAIT", 8.0)
# The longest a refresh can take: waiting for another process's refresh of the same grant, then
# its own call (each with its connect timeout). Whatever runs one must outlive it: the refresh
# task's time limits here, gunicorn's worker and graceful timeouts in config/Procfile.
CONNECT_REFRESH_BUDGET_SECONDS = 2 * (CONNECT_PROVIDER_TIMEOUT_SECONDS + 5)
CELERY_TASK_ANNOTATIONS = {
    "connect.tasks.grant_refresh": {
        "soft_time_limit": CONNECT_REFRESH_BUDGET_SECONDS,
        "time_limit": CONNECT_REFRESH_BUDGET_SECONDS + 15,
    }
}
CONNECT_AUTHORIZATION_TTL_SECONDS = env_int("CONNECT_AUTHORIZATION_TTL", 600)
CONNECT_TRIGGER_MAX_BYTES = env_int("CONNECT_TRIGGER_MAX_BYTES", 1024 * 1024)
CONNECT_MAX_DESTINATIONS = env_int("CONNECT_MAX_DESTINATIONS", 10)
CONNECT_ROTATION_BATCH_SIZE = env_int("CONNECT_ROTATION_BATCH_SIZE", 500)
CONNECT_ALLOW_LOOPBACK = env_bool("CONNECT_ALLOW_LOOPBACK", default=not PRODUCTION)
# The bearer token /metrics asks for; unset, /metrics answers 404 (connect/metrics.py).
CONNECT_METRICS_TOKEN = os.environ.get("CONNECT_METRICS_TOKEN", "").strip()


def production_refusals() -> list[str]:
    """Settings production mode will not start with, each said with what to do instead."""
    weak_secret = (
        len(SECRET_KEY) < 50
        or len(set(SECRET_KEY)) < 5
        or SECRET_KEY.startswith("django-insecure-")
    )
    checks = [
        (DEBUG, "DEBUG is on (error pages would show settings and code): unset DEBUG"),
        (
            weak_secret,
            f"SECRET_KEY is too weak ({len(SECRET_KEY)} characters): use 50 or more random "
            "characters (Python's secrets.token_urlsafe(50) makes one)",
        ),
        (
            _public.scheme != "https",
            f"PUBLIC_URL must be the https:// address users reach, got {PUBLIC_URL!r}",
        ),
        (
            not REDIS_URL,
            "REDIS_URL is not set: rate limits, JWKS caches and the broker must be shared by "
            "every process",
        ),
        (CONNECT_ALLOW_LOOPBACK, "CONNECT_ALLOW_LOOPBACK is on: unset it (development only)"),
        (
            0 < len(CONNECT_METRICS_TOKEN) < 32,
            "CONNECT_METRICS_TOKEN is too short: use 32 or more random characters, or unset it "
            "to turn /metrics off",
        ),
    ]
    return [message for refused, message in checks if refused]


if PRODUCTION and (_refusals := production_refusals()):
    # One line naming every problem, so one restart is enough to see them all.
    raise ImproperlyConfigured(
        "CONNECT_ENV=production refuses to start: "
        + "; ".join(_refusals)
        + ". See README.md, 'Production checklist'."
    )

CONNECT_RATE_LIMIT_READS = env_int("CONNECT_RATE_LIMIT_READS", 200)
CONNECT_RATE_LIMIT_WRITES = env_int("CONNECT_RATE_LIMIT_WRITES", 50)
#: Management API calls (team API tokens) per team per minute, in a bucket of their own.
CONNECT_RATE_LIMIT_MANAGEMENT = env_int("CONNECT_RATE_LIMIT_MANAGEMENT", 300)
CONNECT_RATE_LIMIT_PREFIX = os.environ.get("CONNECT_RATE_LIMIT_PREFIX", "connect:rl")

# The token path's process-local caches (issue 13; README "Benchmarks"): the verified caller of
# a credential or OIDC token, and a request's resolution with its opened token. Off, every
# request reads the database. Entries are kept while no generation they depend on moved.
CONNECT_CACHE_PREFIX = os.environ.get("CONNECT_CACHE_PREFIX", "connect")
CONNECT_LOCAL_CACHES = env_bool("CONNECT_LOCAL_CACHES", True)
CONNECT_LOCAL_CACHE_ENTRIES = env_int("CONNECT_LOCAL_CACHE_ENTRIES", 10_000)
# The listener thread that learns of generation changes (off: the once-a-second fallback only).
CONNECT_GENERATIONS_LISTENER = env_bool("CONNECT_GENERATIONS_LISTENER", True)
# Token issue records: "buffered" (written in batches by a background thread) or "sync".
CONNECT_ISSUE_WRITER = os.environ.get("CONNECT_ISSUE_WRITER", "buffered")
CONNECT_ISSUE_BATCH = env_int("CONNECT_ISSUE_BATCH", 500)
CONNECT_ISSUE_FLUSH_MS = env_int("CONNECT_ISSUE_FLUSH_MS", 100)
# Ingest's doorbell: "batched" (one ring for the events of 10 ms, off the request) or "sync".
CONNECT_DOORBELL = os.environ.get("CONNECT_DOORBELL", "batched")
# The authenticated proxy (/v1/connect/proxy/…, connect/services/proxy.py). A call (reading the
# upload, the provider's answer, streaming it back) ends after CONNECT_PROXY_TIMEOUT seconds,
# which must stay under gunicorn's --timeout (config/Procfile) less a refresh's wait.
CONNECT_RATE_LIMIT_PROXY = env_int("CONNECT_RATE_LIMIT_PROXY", 600)
CONNECT_PROXY_TIMEOUT_SECONDS = env_float("CONNECT_PROXY_TIMEOUT", 60.0)
CONNECT_PROXY_MAX_BODY_BYTES = env_int("CONNECT_PROXY_MAX_BODY", 10 * 1024 * 1024)
# Proxied calls in flight at once: per team across every process (counted in Redis), and per
# process whoever the team (a semaphore), which keeps gunicorn's threads for other requests.
CONNECT_PROXY_TEAM_CONCURRENCY = env_int("CONNECT_PROXY_TEAM_CONCURRENCY", 10)
CONNECT_PROXY_PROCESS_CONCURRENCY = env_int("CONNECT_PROXY_PROCESS_CONCURRENCY", 6)

# Forwarding: attempt delays in seconds (attempt 1 at the first, …); then the delivery fails.
CONNECT_DELIVERY_SCHEDULE = [
    float(value)
    for value in os.environ.get(
        "CONNECT_DELIVERY_SCHEDULE", "0,5,300,1800,7200,18000,36000,36000"
    ).split(",")
]
# One attempt's total deadline: connecting, sending, the answer and its body.
CONNECT_DELIVERY_TIMEOUT = env_float("CONNECT_DELIVERY_TIMEOUT", 15.0)
# A doorbell task starts no attempt after this many seconds (it ends within budget + deadline).
CONNECT_DELIVERY_BUDGET = env_float("CONNECT_DELIVERY_BUDGET", 20.0)
# Celery's limits for that task (and the default for every task): the soft one interrupts it,
# the hard one kills it, both before the lease on its rows lapses.
CONNECT_DELIVERY_SOFT_TIME_LIMIT = env_float("CONNECT_DELIVERY_SOFT_TIME_LIMIT", 45.0)
CONNECT_DELIVERY_TIME_LIMIT = env_float("CONNECT_DELIVERY_TIME_LIMIT", 50.0)
CONNECT_DELIVERY_LEASE_SECONDS = env_int("CONNECT_DELIVERY_LEASE", 60)
CONNECT_DELIVERY_BATCH = env_int("CONNECT_DELIVERY_BATCH", 50)
CELERY_TASK_SOFT_TIME_LIMIT = CONNECT_DELIVERY_SOFT_TIME_LIMIT
CELERY_TASK_TIME_LIMIT = CONNECT_DELIVERY_TIME_LIMIT
# budget + deadline < soft limit < hard limit < lease < visibility timeout, or a slow receiver
# could get a delivery twice: refused here, in every process (connect/checks.py says why).
_delivery_problems = delivery_time_problems(
    DeliveryTimes(
        budget=CONNECT_DELIVERY_BUDGET,
        attempt=CONNECT_DELIVERY_TIMEOUT,
        soft_limit=CELERY_TASK_SOFT_TIME_LIMIT,
        hard_limit=CELERY_TASK_TIME_LIMIT,
        lease=CONNECT_DELIVERY_LEASE_SECONDS,
        visibility=visibility_timeout(CELERY_BROKER_URL, CELERY_BROKER_TRANSPORT_OPTIONS),
    )
)
if _delivery_problems:
    raise ImproperlyConfigured(
        "Forwarding times do not hold together: " + "; ".join(_delivery_problems)
    )

# Retention: how many days each kind of row is kept before beat prunes it, in batches of
# CONNECT_RETENTION_BATCH rows (one short statement each) for at most
# CONNECT_RETENTION_BUDGET seconds a run (connect/services/retention.py). 0 keeps them forever.
# An event goes with its deliveries and their attempts, and only once none is pending.
CONNECT_RETAIN_TOKEN_ISSUES_DAYS = env_int("CONNECT_RETAIN_TOKEN_ISSUES_DAYS", 7)
CONNECT_RETAIN_EVENTS_DAYS = env_int("CONNECT_RETAIN_EVENTS_DAYS", 30)
CONNECT_RETAIN_DELIVERY_ATTEMPTS_DAYS = env_int("CONNECT_RETAIN_DELIVERY_ATTEMPTS_DAYS", 30)
CONNECT_RETAIN_AUDIT_DAYS = env_int("CONNECT_RETAIN_AUDIT_DAYS", 365)
CONNECT_RETAIN_PROXY_CALLS_DAYS = env_int("CONNECT_RETAIN_PROXY_CALLS_DAYS", 7)
# The per-hour counters (the admin's charts) outlive the rows they summarise.
CONNECT_RETAIN_COUNTERS_DAYS = env_int("CONNECT_RETAIN_COUNTERS_DAYS", 400)
# The admin's hourly activity counters are counted in each process's memory and written every
# CONNECT_ACTIVITY_FLUSH seconds by a background thread (connect/services/activity.py); 0 turns
# the thread off (the tests flush by hand).
CONNECT_ACTIVITY_FLUSH_SECONDS = env_float("CONNECT_ACTIVITY_FLUSH", 5.0)
CONNECT_RETENTION_BATCH = env_int("CONNECT_RETENTION_BATCH", 1000)
CONNECT_RETENTION_BUDGET = env_float("CONNECT_RETENTION_BUDGET", 20.0)
# A run starts no batch after its budget; the batch in progress (a few short statements) ends
# well within the margin, so the soft limit only stops a stalled database.
CELERY_TASK_ANNOTATIONS["connect.tasks.retention_prune"] = {
    "soft_time_limit": CONNECT_RETENTION_BUDGET + 15,
    "time_limit": CONNECT_RETENTION_BUDGET + 20,
}

# Credential checks (connect/services/credential_checks.py): each beat run schedules unscheduled
# grants and connectors over their connector's period (default daily), then claims at most
# CONNECT_CHECK_BATCH due ones under a lease and checks them within CONNECT_CHECK_BUDGET seconds.
# A refresh token unused for CONNECT_KEEPALIVE_AFTER seconds is refreshed to keep it alive; a
# provider that is down, slow or rate-limiting puts a check off by CONNECT_CHECK_BACKOFF seconds
# (or its Retry-After) without marking anything.
CONNECT_CHECK_BATCH = env_int("CONNECT_CHECK_BATCH", 50)
CONNECT_CHECK_BUDGET = env_float("CONNECT_CHECK_BUDGET", 30.0)
CONNECT_CHECK_LEASE_SECONDS = env_int("CONNECT_CHECK_LEASE", 120)
CONNECT_CHECK_BACKOFF_SECONDS = env_int("CONNECT_CHECK_BACKOFF", 900)
CONNECT_KEEPALIVE_AFTER_SECONDS = env_int("CONNECT_KEEPALIVE_AFTER", 7 * 86400)
