"""The event catalog page, mounted at /o/<slug>/webhooks/catalog/ (the rest of
/o/<slug>/webhooks/ is webhooks/urls.py)."""

from django.urls import path

from webhooks import catalog_views

app_name = "webhook_catalog"

urlpatterns = [
    path("", catalog_views.catalog, name="catalog"),
]
