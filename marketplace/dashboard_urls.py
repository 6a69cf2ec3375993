"""The partner dashboard, under /o/<slug>/partner/ in the `marketplace` namespace."""

from django.urls import path

from marketplace import dashboard_views

urlpatterns = [
    path("dashboard", dashboard_views.dashboard, name="dashboard"),
    path("dashboard/<uuid:app_id>", dashboard_views.dashboard_app, name="dashboard_app"),
]
