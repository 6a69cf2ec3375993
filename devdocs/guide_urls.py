"""Guides under /docs/guides/: the index and one guide per slug (public pages)."""

from django.urls import path

from devdocs import guide_views

app_name = "guides"

urlpatterns = [
    path("", guide_views.guide_index, name="index"),
    path("<slug:slug>/", guide_views.guide_detail, name="detail"),
]
