"""Public marketplace routes, under /marketplace/ (no sign-in to read)."""

from django.urls import path

from marketplace import gallery_views

app_name = "gallery"

urlpatterns = [
    path("", gallery_views.gallery, name="list"),
    path("<slug:slug>/", gallery_views.app_page, name="app"),
    path("<slug:slug>/logo", gallery_views.app_logo, name="logo"),
    path(
        "<slug:slug>/screenshots/<uuid:screenshot_id>",
        gallery_views.app_screenshot,
        name="screenshot",
    ),
    path("<slug:slug>/review", gallery_views.review_submit, name="review"),
    path(
        "<slug:slug>/reviews/<uuid:review_id>/report",
        gallery_views.review_report,
        name="report",
    ),
]
