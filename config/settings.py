"""Settings read from the environment; with no variables set, Tollgate runs embedded.

Embedded means: SQLite under var/, no Redis (an in-process fakeredis serves the same code
paths), Celery tasks executed in-process, e-mail printed to the console. Setting
DATABASE_URL, REDIS_URL and CELERY_BROKER_URL switches to the real services.
"""

from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false.")
    SECRET_KEY = "django-insecure-embedded-development-key-never-use-in-production"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")
# How many reverse proxies in front of Tollgate append to X-Forwarded-For (0: use REMOTE_ADDR).
NUM_TRUSTED_PROXIES = env.int("NUM_TRUSTED_PROXIES", default=0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "common",
    "portal",
    "keys",
    "billing",
    "webhooks",
    "oauth2_provider",
    "devdocs",
    "marketplace",
]

MIDDLEWARE = [
    "common.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "common.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "common.middleware.ApiTrailingSlashMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "common.middleware.ApiProblemMiddleware",
    "common.idempotency.IdempotencyMiddleware",
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
                "portal.context_processors.current_organization",
            ],
        },
    },
]

# --- Data stores -------------------------------------------------------------------------
VAR_DIR.mkdir(exist_ok=True)
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'tollgate.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Empty REDIS_URL means embedded: common.redis hands out an in-process fakeredis server.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="tg"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
# Without a real broker, tasks run in-process so the embedded default needs no worker.
CELERY_TASK_ALWAYS_EAGER = env.bool(
    "CELERY_TASK_ALWAYS_EAGER", default=CELERY_BROKER_URL.startswith("memory://")
)
CELERY_TASK_EAGER_PROPAGATES = True
# Without workers and beat (the embedded default), the gate moves each allowed call's usage
# into the ledger itself, right after answering.
GATE_DRAIN_INLINE = env.bool("GATE_DRAIN_INLINE", default=CELERY_TASK_ALWAYS_EAGER)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# Declared so a plain worker consumes all of them; production may split them with -Q.
# Each queue has its own exchange and routing key: sharing Celery's defaults would bind all
# four to the key "default" and deliver a default-queue task to every queue.
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name)
    for name in ("default", "ingest", "billing", "webhooks")
]
CELERY_TASK_DEFAULT_EXCHANGE = "default"
CELERY_TASK_DEFAULT_ROUTING_KEY = "default"
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    # BILL-1: close ended periods and finalize drafts whose grace period is over.
    "run-billing": {
        "task": "billing.tasks.run_billing",
        "schedule": 60.0,
    },
    "enforce-spend-caps": {
        "task": "billing.tasks.enforce_spend_caps",
        "schedule": 60.0,
    },
    # BILL-6: usage and spend thresholds, the gate's soft-quota crossings, daily anomalies.
    "check-alerts": {
        "task": "billing.tasks.check_alerts",
        "schedule": 60.0,
    },
    "consume-quota-crossings": {
        "task": "billing.tasks.consume_quota_crossings",
        "schedule": 10.0,
    },
    "detect-anomalies": {
        "task": "billing.tasks.detect_anomalies",
        "schedule": crontab(minute=30, hour=0),  # yesterday's whole UTC day
    },
    # Calls the gate allowed reach the ledger within seconds (keys/gate_usage.py).
    "drain-gate-usage": {
        "task": "keys.tasks.drain_gate_usage",
        "schedule": 5.0,
    },
    "create-ledger-partitions": {
        "task": "billing.tasks.create_ledger_partitions",
        "schedule": 24 * 3600.0,
    },
    "purge-idempotency-records": {
        "task": "common.tasks.purge_idempotency_records",
        "schedule": 3600.0,
    },
    # Retries failed invoice payments that are due (billing/payments.py, docs/billing.md).
    "run-dunning": {
        "task": "billing.tasks.run_dunning",
        "schedule": 60.0,
    },
    # HOOK-4: queues due webhook retries, lost messages and deliveries of dead workers.
    "sweep-webhook-deliveries": {
        "task": "webhooks.tasks.sweep_deliveries",
        "schedule": 5.0,
    },
    # DOCS-7: e-mail orgs that called a deprecated endpoint in the last 30 days (once each).
    "send-deprecation-notices": {
        "task": "devdocs.tasks.send_deprecation_notices",
        "schedule": crontab(minute=15, hour=6),
    },
    # MKT-4: partners' shares of newly paid invoices and credit notes, then, after a month
    # ends, its statements and their payouts (docs/marketplace.md).
    "accrue-revenue-share": {
        "task": "marketplace.tasks.accrue_revenue_share",
        "schedule": 3600.0,
    },
    "reconcile-paid-installs": {
        "task": "marketplace.tasks.reconcile_paid_installs",
        "schedule": 3600.0,
    },
    "close-partner-statements": {
        "task": "marketplace.tasks.close_partner_statements",
        "schedule": crontab(minute=0, hour=3, day_of_month=1),
    },
}

# --- Webhook delivery (docs/webhooks.md) --------------------------------------------------
# Private and loopback targets (and plain http to them) only for development and tests.
WEBHOOKS_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOKS_ALLOW_PRIVATE_TARGETS", default=False)
WEBHOOKS_TIMEOUT_SECONDS = env.float("WEBHOOKS_TIMEOUT_SECONDS", default=15.0)
# A worker holds a delivery this long per attempt; the sweeper then gives it to another.
WEBHOOKS_LEASE_SECONDS = env.float("WEBHOOKS_LEASE_SECONDS", default=60.0)
# A queued message holds its delivery this long; if the broker lost it, it is queued again.
WEBHOOKS_QUEUE_LEASE_SECONDS = env.float("WEBHOOKS_QUEUE_LEASE_SECONDS", default=120.0)
# Attempts in flight per endpoint in one worker process (a slow endpoint keeps to these).
WEBHOOKS_ENDPOINT_CONCURRENCY = env.int("WEBHOOKS_ENDPOINT_CONCURRENCY", default=8)
# Threads per worker process that send requests (they never touch the database).
WEBHOOKS_HTTP_THREADS = env.int("WEBHOOKS_HTTP_THREADS", default=32)
WEBHOOKS_DISABLE_AFTER_DAYS = env.float("WEBHOOKS_DISABLE_AFTER_DAYS", default=5.0)

# --- Auth and accounts -------------------------------------------------------------------
AUTH_USER_MODEL = "portal.User"
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
LOGIN_REDIRECT_URL = "portal:home"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"

ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="mandatory")
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Tollgate] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "http" if DEBUG else "https"
ACCOUNT_ADAPTER = "portal.adapters.AccountAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env.str("MFA_TOTP_ISSUER", default="Tollgate")

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Tollgate <no-reply@tollgate.local>")

# --- I18N / static -----------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=VAR_DIR / "static")
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["portal.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["portal.permissions.HasTokenScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "common.pagination.CreatedCursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "common.problems.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tollgate management API",
    "DESCRIPTION": (
        "Manage projects, API keys, tokens and audit logs of a Tollgate organization. "
        "Errors are RFC 9457 problem+json documents with a stable `code`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Swagger UI's default online-validator badge is an image from validator.swagger.io that
    # carries the schema URL; docs load local files only.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "KeyEnvironmentEnum": "keys.models.ApiKey.Environment",
        "KeyStatusEnum": "keys.models.ApiKey.Status",
        "WebhookEndpointStatusEnum": "webhooks.models.WebhookEndpoint.Status",
    },
}

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
# A batch of 1,000 usage events with properties fits comfortably; larger bodies get 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
KEY_ROTATION_DEFAULT_GRACE_SECONDS = 86400
# GATE-5: a key denied more than this many times in a minute is blocked for a while (0: off).
GATE_AUTO_BLOCK_DENIALS_PER_MINUTE = env.int("GATE_AUTO_BLOCK_DENIALS_PER_MINUTE", default=600)
GATE_AUTO_BLOCK_SECONDS = env.int("GATE_AUTO_BLOCK_SECONDS", default=900)
# Usage events may arrive this late (and up to 5 minutes early); older ones are rejected.
USAGE_LATE_ARRIVAL_DAYS = env.int("USAGE_LATE_ARRIVAL_DAYS", default=35)

# --- Payments (Stripe) and dunning: docs/billing.md "Payments and dunning" ----------------
# Without a secret key, finalized invoices are marked for manual collection.
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# Empty: Stripe's own API. Tests point it at their local fake Stripe server.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=20.0)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
# A failed payment is retried this many days after the first attempt; after the last retry
# fails, the organization is past due and its live keys are refused (payment_past_due).
DUNNING_RETRY_DAYS = env.list("DUNNING_RETRY_DAYS", cast=int, default=[1, 3, 5, 7])
# BILL-1: a closed period's invoice stays a draft this long (late usage is still added), then
# it is finalized, numbered and collected; payment is due this many days after it is issued.
INVOICE_GRACE_SECONDS = env.int("INVOICE_GRACE_SECONDS", default=3600)
INVOICE_PAYMENT_TERMS_DAYS = env.int("INVOICE_PAYMENT_TERMS_DAYS", default=14)
# The operator's name at the top of invoices.
TOLLGATE_SELLER_NAME = env.str("TOLLGATE_SELLER_NAME", default="Tollgate")

# --- Marketplace OAuth (django-oauth-toolkit; docs/marketplace.md "Installs") -------------
# Apps sign in with the authorization-code flow and PKCE (S256 only); tokens are stored as
# checksums, never in clear (RFC 9700). Access tokens have Tollgate's key format, so the
# gate checks them like keys (their twin ApiKey); scopes are the API's endpoint groups.
# Grant types are limited per client: every app's client is authorization-code only
# (marketplace/oauth_clients.py), refresh comes with it; password and implicit are refused.
OAUTH2_PROVIDER = {
    "PKCE_REQUIRED": True,
    "ACCESS_TOKEN_EXPIRE_SECONDS": env.int("OAUTH_ACCESS_TOKEN_SECONDS", default=3600),
    "REFRESH_TOKEN_EXPIRE_SECONDS": env.int("OAUTH_REFRESH_TOKEN_SECONDS", default=90 * 86400),
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "ROTATE_REFRESH_TOKEN": True,
    "ACCESS_TOKEN_GENERATOR": "marketplace.oauth.access_token_generate",
    "SCOPES_BACKEND_CLASS": "marketplace.oauth.EndpointGroupScopes",
    "OAUTH2_VALIDATOR_CLASS": "marketplace.oauth.InstallValidator",
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
    # Tokens only in the Authorization header, never in a URL that proxies log.
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    # RFC 9207 `iss` on the authorization response: an app can tell which server answered.
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    # A replayed (stolen) refresh token revokes its whole family, twin keys included.
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
}
# Named so marketplace's foreign keys to them resolve in migrations (they are swappable).
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth2_provider.IDToken"

# --- Logging -----------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "common.logging.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- Production hardening ----------------------------------------------------------------
# Tollgate serves plain HTTP behind the operator's TLS proxy, so it does not redirect to
# HTTPS itself unless told to (the proxy does it); docs/operations.md explains.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
if env.bool("USE_X_FORWARDED_PROTO", default=not DEBUG):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Scripts only from Tollgate itself (no inline scripts or handlers, no eval); inline styles
# stay allowed (Redoc and the usage bars set them); workers from blob: for Redoc's search.
# No form-action: the OAuth consent form's answer redirects to the app's own site.
# Empty turns the header off (a proxy that sets its own).
CONTENT_SECURITY_POLICY = env.str(
    "CONTENT_SECURITY_POLICY",
    default="default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; frame-ancestors 'none'",
)
SILENCED_SYSTEM_CHECKS = [
    # TLS ends at the operator's proxy; redirecting here would loop (docs/operations.md).
    *([] if SECURE_SSL_REDIRECT else ["security.W008"]),
    # HSTS preload is a commitment only the operator can make for their domain.
    *([] if SECURE_HSTS_PRELOAD else ["security.W021"]),
    # Plain http redirect URIs stay allowed for native apps' loopback callbacks (RFC 8252);
    # an app's listing refuses any http URI whose host is not localhost/127.0.0.1/::1
    # (marketplace/apps_services.py), which is what RFC 9700 §2.1 asks.
    "oauth2_provider.W008",
]
