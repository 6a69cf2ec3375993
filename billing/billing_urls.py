"""An organization's billing pages, mounted at /o/<slug>/billing/."""

from django.urls import path

from billing import pricing_views

app_name = "org_billing"

urlpatterns = [
    path("", pricing_views.overview, name="overview"),
    path("plans/<slug:code>", pricing_views.plan_change, name="plan_change"),
    path("cancel", pricing_views.cancel, name="cancel"),
    path("addons", pricing_views.addon_add, name="addon_add"),
    path("spend-cap", pricing_views.spend_cap_set, name="spend_cap"),
]
