"""Partner program pages, under /o/<slug>/partner/."""

from django.urls import include, path

from marketplace import screenshot_views, views

app_name = "marketplace"

urlpatterns = [
    path("", views.partner_page, name="partner"),
    path("", include("marketplace.dashboard_urls")),
    path("", include("marketplace.statement_urls")),
    path("apps/new", views.app_create, name="app_create"),
    path("apps/<uuid:app_id>/", views.app_detail, name="app_detail"),
    path("apps/<uuid:app_id>/logo", views.app_logo, name="app_logo"),
    path("apps/<uuid:app_id>/logo.img", views.app_logo_image, name="app_logo_image"),
    path("apps/<uuid:app_id>/submit", views.app_submit, name="app_submit"),
    path("apps/<uuid:app_id>/credentials", views.app_credentials, name="app_credentials"),
    path(
        "apps/<uuid:app_id>/screenshots/new",
        screenshot_views.screenshot_add,
        name="screenshot_add",
    ),
    path(
        "apps/<uuid:app_id>/screenshots/<uuid:screenshot_id>/delete",
        screenshot_views.screenshot_delete,
        name="screenshot_delete",
    ),
    path(
        "apps/<uuid:app_id>/screenshots/<uuid:screenshot_id>.img",
        screenshot_views.screenshot_image,
        name="screenshot_image",
    ),
]
