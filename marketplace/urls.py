"""Partner program pages, under /o/<slug>/partner/."""

from django.urls import path

from marketplace import views

app_name = "marketplace"

urlpatterns = [
    path("", views.partner_page, name="partner"),
]
