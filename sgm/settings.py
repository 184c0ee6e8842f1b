"""Settings of the SGM project, read from the environment (12-factor).

Every value has a safe development default, so a fresh clone runs on SQLite with a
filesystem broker and no server to install. Production sets the environment instead.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from csp.constants import NONE, SELF
from django.utils.translation import gettext_lazy as _

# Lets admin.ModelAdmin[Model] and friends be subscripted at runtime (typed with mypy).
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SGM_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)
# The development key is only ever used with DEBUG on; production must set SECRET_KEY.
SECRET_KEY = os.environ.get("SECRET_KEY", "django-insecure-development-only-key" if DEBUG else "")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # naturaltime's words ("hace 3 minutos") for the relative times of taskboard_time.
    "django.contrib.humanize",
    "django_htmx",
    "django_tables2",
    # Login throttling: failed attempts per user and address, unlocked in the admin.
    "axes",
    "csp",
    "taskboard",
    "sgm.nomina",
    "sgm.contabilidad",
]

MIDDLEWARE = [
    # First: a health check answers before host validation and the HTTPS redirect.
    "sgm.health.HealthCheckMiddleware",
    # Then a Prometheus scrape with its bearer token (over the internal network: any host,
    # plain HTTP); /metrics without a token goes the usual way (a staff session).
    "taskboard.middleware.MetricsScrapeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Permissions-Policy on every answer; Cache-Control: no-store on a logged-in user's.
    "taskboard.security.SecurityHeadersMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "taskboard.middleware.TaskboardMiddleware",
    # Last, as axes requires: turns a locked-out login into the cool-down page.
    "axes.middleware.AxesMiddleware",
]

if not DEBUG:
    # Production serves the collected static files itself (runserver does in development).
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
        "whitenoise.middleware.WhiteNoiseMiddleware",
    )

ROOT_URLCONF = "sgm.urls"
WSGI_APPLICATION = "sgm.wsgi.application"

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
                "django.template.context_processors.i18n",
            ],
        },
    },
]


def database_config() -> dict[str, Any]:
    default_url = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
    config: dict[str, Any] = dict(
        dj_database_url.parse(
            os.environ.get("DATABASE_URL", default_url),
            conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
            conn_health_checks=True,
        )
    )
    options = config.setdefault("OPTIONS", {})
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets the web process read while a worker writes; IMMEDIATE takes the write
        # lock at BEGIN so concurrent writers wait (timeout) instead of failing mid-transaction.
        options.setdefault("timeout", 20)
        options.setdefault("transaction_mode", "IMMEDIATE")
        options.setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
        # Tests run a real worker in another process, so the test database must be a file.
        config["TEST"] = {"NAME": os.environ.get("SQLITE_TEST_NAME", str(VAR_DIR / "test.sqlite3"))}
        Path(config["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    elif config["ENGINE"] == "django.db.backends.postgresql":
        options.setdefault("connect_timeout", 5)
    return config


DATABASES = {"default": database_config()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# axes first: it refuses a locked-out user+address before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = os.environ.get("LANGUAGE_CODE", "es")
LANGUAGES = [("es", _("Spanish")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "Europe/Madrid")
USE_I18N = True
# One date format per language (sgm/formats/es, en), not Django's per-locale defaults.
FORMAT_MODULE_PATH = ["sgm.formats"]
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Production serves collected, hashed, compressed files (whitenoise); development the
    # app's own folders as they are.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/tasks/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
CSRF_FAILURE_VIEW = "taskboard.api.views.csrf_failure"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # One line per record, key=value (logfmt): greppable, and parsed by log collectors.
    "formatters": {"logfmt": {"()": "sgm.logging.LogfmtFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "logfmt",
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# --- Production (DEBUG off): `manage.py check --deploy` is clean with .env.example -------
if not DEBUG:
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- Browser-facing security headers ------------------------------------------------------
# Only the site's own scripts and styles run: no inline script, style or handler, no eval
# (htmx's trigger filters and hx-on are replaced by static/taskboard/taskboard.js, and
# htmx's injected indicator style by the stylesheet; see base.html's htmx-config).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # data: only for the empty favicon of base.html.
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- Login throttling (django-axes) -------------------------------------------------------
# After AXES_FAILURE_LIMIT wrong passwords for one username from one address, that pair is
# refused (even with the right password) for the cool-down, on the login page and the
# admin's; staff unlock earlier by deleting the attempt in the admin (Axes › Access attempts).
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("AXES_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "taskboard.security.lockout_response"
# The address is REMOTE_ADDR (axes' default without django-ipware): X-Forwarded-For is not
# trusted, since a client could send its own to dodge the count.

# --- Celery -------------------------------------------------------------------------------
# Seconds Redis waits before giving a dead worker's messages to another (see the delivery
# policy below): size it to the longest task.
CELERY_VISIBILITY_TIMEOUT = int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))


def broker_transport_options(url: str) -> dict[str, Any]:
    """A web process never waits long on a sick broker: connect and socket timeouts on
    every command (a frozen Redis accepts connections and then never answers). With the
    bounded publish retry below, a launch fails within ~2 s with OperationalError, which
    the page turns into a 503. socket_timeout stays above kombu's 1 s BRPOP, which the
    workers block in."""
    if url.startswith(("redis://", "rediss://")):
        return {
            "socket_connect_timeout": 1.0,
            "socket_timeout": 2.0,
            # The delivery policy below: what a dead worker held comes back after this.
            "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
            # Every live worker looks for such messages every 10 s (kombu's default: 100 s).
            "unacked_restore_interval": 10,
            "unacked_restore_throttle": 1,
        }
    return {}


# The embedded default needs no broker server: kombu's filesystem transport, with one shared
# data folder (tasks) and a control folder (revoke/inspect broadcasts).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("data", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "data"),
        "data_folder_out": str(_broker_dir / "data"),
        "control_folder": str(_broker_dir / "control"),
        "polling_interval": 0.1,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(CELERY_BROKER_URL)
CELERY_BROKER_CONNECTION_TIMEOUT = 1.0
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes the database connections around every task unless told to
# reuse them: a new PostgreSQL connection per task costs more than the task's own writes.
CELERY_DB_REUSE_MAX = int(os.environ.get("CELERY_DB_REUSE_MAX", "500"))
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
# Delivery policy (README "Guarantees"): a worker takes one message per free process
# (prefetch 1: a worker that dies holds few, and long tasks do not queue behind each
# other); tasks declared idempotent (@track_task(idempotent=True)) are acknowledged only
# once finished and given back when their process dies. A message a dead worker held is
# given back by Redis after the visibility timeout: size it to the longest task (a task
# running longer is delivered again to another worker meanwhile).
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# taskboard's reconciliation has a queue of its own (every worker consumes it: see
# docker-compose.yml and sgm/run.py), so it never waits behind the work it reconciles;
# alert evaluation and deliveries likewise ("taskboard-alerts": a backlog alert must not
# wait behind the backlog it reports).
CELERY_TASK_ROUTES = {
    "taskboard.mark_lost": {"queue": "taskboard"},
    "taskboard.evaluate_alerts": {"queue": "taskboard-alerts"},
    "taskboard.alert_deliver": {"queue": "taskboard-alerts"},
}
CELERY_BEAT_SCHEDULE = {
    # Rows whose worker died (or that no worker runs any more) become LOST instead of
    # "running" forever. Expires: a run nobody picked up in time is dropped, not piled up.
    "taskboard-mark-lost": {
        "task": "taskboard.mark_lost",
        "schedule": 15.0,
        "options": {"queue": "taskboard", "expires": 15.0},
    },
    # Alert rules (/tasks/alerts/), every 30 s; a run nobody picked up in time is dropped.
    "taskboard-evaluate-alerts": {
        "task": "taskboard.evaluate_alerts",
        "schedule": 30.0,
        "options": {"queue": "taskboard-alerts", "expires": 30.0},
    },
    # Retention (TASKBOARD_RETENTION_DAYS), in small batches, once an hour.
    "taskboard-prune": {"task": "taskboard.prune", "schedule": 3600.0},
}


def cache_config() -> dict[str, Any]:
    """The cache every web process shares (taskboard's single-flight worker fetches).

    CACHE_URL, else the broker when it is Redis, else files under var/ (one machine)."""
    url = os.environ.get("CACHE_URL") or CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://")):
        # Bounded waits: a stopped Redis fails at once, a frozen one after socket_timeout,
        # and taskboard's callers degrade to a message instead of hanging.
        timeout = 1.0
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": timeout, "socket_timeout": timeout},
            # Every web and worker process of a deployment must share it (same URL, prefix).
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", ""),
        }
    return {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(VAR_DIR / "cache"),
    }


CACHES = {"default": cache_config()}
# Sessions read from that cache and written through to the database (taskboard/sessions.py):
# an idle dashboard poll then makes one query, its user; a cache outage falls back to the
# database.
SESSION_ENGINE = "taskboard.sessions"

FLOWER_URL = os.environ.get("FLOWER_URL", "")
FLOWER_USER = os.environ.get("FLOWER_USER", "")
FLOWER_PASSWORD = os.environ.get("FLOWER_PASSWORD", "")

# E-mail (taskboard's failure notifications): printed to the console unless configured.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "SGM <sgm@localhost>")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
if os.environ.get("EMAIL_FILE_PATH"):  # the file backend's folder (the tests' workers)
    EMAIL_FILE_PATH = os.environ["EMAIL_FILE_PATH"]

# --- taskboard ----------------------------------------------------------------------------
TASKBOARD_ENABLED = env_bool("TASKBOARD_ENABLED", True)
TASKBOARD_RETENTION_DAYS = float(os.environ.get("TASKBOARD_RETENTION_DAYS", "90"))
TASKBOARD_SITE_URL = os.environ.get("TASKBOARD_SITE_URL", "")
# /metrics (Prometheus): the scraper's bearer token; empty, staff sessions only.
TASKBOARD_METRICS_TOKEN = os.environ.get("TASKBOARD_METRICS_TOKEN", "")
TASKBOARD_METRICS_CACHE_SECONDS = float(os.environ.get("TASKBOARD_METRICS_CACHE_SECONDS", "10"))
