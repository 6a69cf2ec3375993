"""Routes of the management API under /api/v1/ (declared without trailing slashes)."""

from django.urls import path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from billing import alerts_api, invoices_api, pricing_api
from billing import api as billing_api
from devdocs import status_api
from keys import api as keys_api
from keys import gate_api
from portal import api as portal_api
from webhooks import api as webhooks_api
from webhooks import catalog_api

urlpatterns = [
    path("health", portal_api.HealthApi.as_view(), name="health"),
    path("projects", portal_api.ProjectListApi.as_view(), name="projects"),
    path("projects/<str:project_id>", portal_api.ProjectDetailApi.as_view(), name="project"),
    path("keys", keys_api.KeyListApi.as_view(), name="keys"),
    path("keys/<str:key_id>", keys_api.KeyDetailApi.as_view(), name="key"),
    path("keys/<str:key_id>/rotate", keys_api.KeyRotateApi.as_view(), name="key-rotate"),
    path("keys/<str:key_id>/revoke", keys_api.KeyRevokeApi.as_view(), name="key-revoke"),
    path("verify", gate_api.VerifyApi.as_view(), name="verify"),
    path("gate/outcomes", status_api.GateOutcomesApi.as_view(), name="gate-outcomes"),
    path("api-versions", keys_api.ApiVersionListApi.as_view(), name="api-versions"),
    path("meters", billing_api.MeterListApi.as_view(), name="meters"),
    path("usage/events", billing_api.UsageEventsApi.as_view(), name="usage-events"),
    path("usage/corrections", billing_api.UsageCorrectionsApi.as_view(), name="usage-corrections"),
    path("usage", billing_api.UsageApi.as_view(), name="usage"),
    path("usage/export.csv", billing_api.UsageExportApi.as_view(), name="usage-export"),
    path("plans", pricing_api.PlanListApi.as_view(), name="plans"),
    path("plans/<slug:code>/versions", pricing_api.PlanVersionsApi.as_view(), name="plan-versions"),
    path("pricing/quote", pricing_api.QuoteApi.as_view(), name="pricing-quote"),
    path("subscriptions", pricing_api.SubscriptionsApi.as_view(), name="subscriptions"),
    path(
        "subscriptions/current",
        pricing_api.SubscriptionCurrentApi.as_view(),
        name="subscription-current",
    ),
    path(
        "subscriptions/current/preview",
        pricing_api.SubscriptionPreviewApi.as_view(),
        name="subscription-preview",
    ),
    path(
        "subscriptions/current/preview-change",
        pricing_api.SubscriptionPreviewChangeApi.as_view(),
        name="subscription-preview-change",
    ),
    path(
        "subscriptions/current/cancel",
        pricing_api.SubscriptionCancelApi.as_view(),
        name="subscription-cancel",
    ),
    path(
        "subscriptions/current/addons",
        pricing_api.SubscriptionAddOnsApi.as_view(),
        name="subscription-addons",
    ),
    path("estimates", pricing_api.EstimatesApi.as_view(), name="estimates"),
    path("invoices", invoices_api.InvoiceListApi.as_view(), name="invoices"),
    path("invoices/<uuid:invoice_id>", invoices_api.InvoiceDetailApi.as_view(), name="invoice"),
    path(
        "invoices/<uuid:invoice_id>/lines/<uuid:line_id>/evidence.csv",
        invoices_api.InvoiceLineEvidenceApi.as_view(),
        name="invoice-line-evidence",
    ),
    path(
        "invoices/<uuid:invoice_id>/finalize",
        invoices_api.InvoiceFinalizeApi.as_view(),
        name="invoice-finalize",
    ),
    path(
        "invoices/<uuid:invoice_id>/void",
        invoices_api.InvoiceVoidApi.as_view(),
        name="invoice-void",
    ),
    path(
        "invoices/<uuid:invoice_id>/mark-uncollectible",
        invoices_api.InvoiceUncollectibleApi.as_view(),
        name="invoice-uncollectible",
    ),
    path(
        "invoices/<uuid:invoice_id>/credit-notes",
        invoices_api.InvoiceCreditNotesApi.as_view(),
        name="invoice-credit-notes",
    ),
    path("billing-profile", invoices_api.BillingProfileApi.as_view(), name="billing-profile"),
    path("alert-thresholds", alerts_api.AlertThresholdListApi.as_view(), name="alert-thresholds"),
    path(
        "alert-thresholds/<str:threshold_id>",
        alerts_api.AlertThresholdDetailApi.as_view(),
        name="alert-threshold",
    ),
    path("alerts", alerts_api.AlertFiringListApi.as_view(), name="alerts"),
    path("simulations", alerts_api.SimulationsApi.as_view(), name="simulations"),
    path(
        "webhook-endpoints",
        webhooks_api.WebhookEndpointListApi.as_view(),
        name="webhook-endpoints",
    ),
    path(
        "webhook-endpoints/<str:endpoint_id>",
        webhooks_api.WebhookEndpointDetailApi.as_view(),
        name="webhook-endpoint",
    ),
    path(
        "webhook-endpoints/<str:endpoint_id>/disable",
        webhooks_api.WebhookEndpointDisableApi.as_view(),
        name="webhook-endpoint-disable",
    ),
    path(
        "webhook-endpoints/<str:endpoint_id>/enable",
        webhooks_api.WebhookEndpointEnableApi.as_view(),
        name="webhook-endpoint-enable",
    ),
    path(
        "webhook-endpoints/<str:endpoint_id>/rotate-secret",
        webhooks_api.WebhookEndpointRotateSecretApi.as_view(),
        name="webhook-endpoint-rotate-secret",
    ),
    path(
        "webhook-endpoints/<str:endpoint_id>/test",
        webhooks_api.WebhookEndpointTestApi.as_view(),
        name="webhook-endpoint-test",
    ),
    path(
        "webhook-endpoints/<str:endpoint_id>/attempts",
        webhooks_api.WebhookEndpointAttemptListApi.as_view(),
        name="webhook-endpoint-attempts",
    ),
    path(
        "webhook-endpoints/<str:endpoint_id>/replay",
        webhooks_api.WebhookEndpointReplayApi.as_view(),
        name="webhook-endpoint-replay",
    ),
    path("events", webhooks_api.EventListApi.as_view(), name="events"),
    path(
        "events/<str:event_id>/redeliver",
        webhooks_api.EventRedeliverApi.as_view(),
        name="event-redeliver",
    ),
    path("audit-log", portal_api.AuditLogApi.as_view(), name="audit-log"),
    path("event-types", catalog_api.EventTypeListApi.as_view(), name="event-types"),
    path("asyncapi.json", catalog_api.AsyncApiDocumentApi.as_view(), name="asyncapi"),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file: no inline script (CSP).
    path("docs", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    path(
        "redoc",
        # Our template drops drf-spectacular's Google Fonts links: docs load local files only.
        SpectacularRedocView.as_view(url_name="api:schema", template_name="api/redoc.html"),
        name="redoc",
    ),
]
