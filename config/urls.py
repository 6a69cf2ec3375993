"""Top-level routes: the portal, allauth, Django admin and the management API."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include(("config.api_urls", "api"), namespace="api")),
    path("o/<slug:slug>/usage/", include("billing.urls")),
    path("", include("portal.urls")),
]
