"""The operator's marketplace health page, at /staff/marketplace/."""

from django.urls import path

from marketplace import health_views

app_name = "marketplace_health"

urlpatterns = [
    path("", health_views.health, name="index"),
]
