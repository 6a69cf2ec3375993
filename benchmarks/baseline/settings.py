"""A minimal DRF project: one view behind djangorestframework-api-key's HasAPIKey and
django-ratelimit on Redis, served the same way as Tollgate (gunicorn, PostgreSQL)."""

import os

import environ

env = environ.Env()
SECRET_KEY = "baseline-benchmark-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "rest_framework_api_key",
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "benchmarks.baseline.urls"
DATABASES = {"default": env.db_url("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = 600
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11"),
    }
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework_api_key.permissions.HasAPIKey"],
    "UNAUTHENTICATED_USER": None,
}
RATELIMIT_USE_CACHE = "default"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
