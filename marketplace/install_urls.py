"""An organization's installed apps, under /o/<slug>/apps/."""

from django.urls import path

from marketplace import install_views

app_name = "installs"

urlpatterns = [
    path("", install_views.install_list, name="list"),
    path("<uuid:install_id>/uninstall", install_views.install_uninstall, name="uninstall"),
]
