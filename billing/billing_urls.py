"""An organization's billing pages, mounted at /o/<slug>/billing/."""

from django.urls import path

from billing import alerts_views, invoice_views, payment_views, pricing_views

app_name = "org_billing"

urlpatterns = [
    path("", pricing_views.overview, name="overview"),
    path("plans/<slug:code>", pricing_views.plan_change, name="plan_change"),
    path("cancel", pricing_views.cancel, name="cancel"),
    path("addons", pricing_views.addon_add, name="addon_add"),
    path("spend-cap", pricing_views.spend_cap_set, name="spend_cap"),
    path("invoices/", invoice_views.invoice_list, name="invoices"),
    path("invoices/<uuid:invoice_id>/", invoice_views.invoice_detail, name="invoice"),
    path("invoices/<uuid:invoice_id>/pdf", invoice_views.invoice_download, name="invoice_pdf"),
    path(
        "invoices/<uuid:invoice_id>/lines/<uuid:line_id>/evidence.csv",
        invoice_views.line_evidence,
        name="invoice_line_evidence",
    ),
    path("details", invoice_views.billing_details, name="details"),
    path("alerts", alerts_views.alerts_page, name="alerts"),
    path("alerts/thresholds", alerts_views.threshold_add, name="alert_threshold_add"),
    path(
        "alerts/thresholds/<str:threshold_id>/delete",
        alerts_views.threshold_delete,
        name="alert_threshold_delete",
    ),
    path("simulate", alerts_views.simulate_page, name="simulate"),
    path("payment-method", payment_views.payment_method_add, name="payment_method_add"),
    path("payment-method/done", payment_views.payment_method_done, name="payment_method_done"),
]
