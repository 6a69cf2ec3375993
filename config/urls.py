"""Top-level routes: the portal, allauth, Django admin and the management API."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path

from billing import pricing_views, stripe_views


def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    """Browsers ask for /favicon.ico on pages without a <link rel="icon"> (admin, API docs)."""
    return HttpResponsePermanentRedirect(static("img/favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include(("config.api_urls", "api"), namespace="api")),
    # OAuth for marketplace apps; before the organizations' /o/<slug>/ pages.
    path("o/", include("marketplace.oauth_urls")),
    path("o/<slug:slug>/usage/", include("billing.urls")),
    path("o/<slug:slug>/apps/", include("marketplace.install_urls")),
    path("o/<slug:slug>/billing/", include("billing.billing_urls")),
    path("o/<slug:slug>/webhooks/", include("webhooks.urls")),
    path("o/<slug:slug>/webhooks/catalog/", include("webhooks.catalog_urls")),
    path("o/<slug:slug>/partner/", include("marketplace.urls")),
    path("pricing", pricing_views.pricing, name="pricing"),
    path("marketplace/", include("marketplace.gallery_urls")),
    path("staff/marketplace/", include("marketplace.health_urls")),
    path("webhooks/stripe/", stripe_views.stripe_webhook, name="stripe_webhook"),
    path("docs/guides/", include("devdocs.guide_urls")),
    path("docs/", include("devdocs.reference_urls")),
    path("sandbox/", include("devdocs.sandbox_urls")),
    path("", include("devdocs.status_urls")),
    path("", include("devdocs.changelog_urls")),
    path("", include("portal.urls")),
]
