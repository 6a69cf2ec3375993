"""Routes of the public status page: /status, /status.json, /status/incidents/<id>."""

from django.urls import path

from devdocs import status_views

app_name = "status"

urlpatterns = [
    path("status", status_views.status_page, name="page"),
    path("status.json", status_views.status_feed, name="feed"),
    path("status/incidents/<uuid:incident_id>", status_views.incident_page, name="incident"),
]
