"""Django admin for metering: meters through services; the ledger read-only."""

from django import forms
from django.contrib import admin, messages

from billing import services
from billing.catalog import clean_charge, plan_version_create
from billing.models import (
    AddOn,
    Charge,
    Coupon,
    CreditGrant,
    Meter,
    Plan,
    PlanVersion,
    Subscription,
    SubscriptionPhase,
    UsageCorrection,
    UsageEvent,
    UsageRollup,
)
from billing.subscriptions import plan_migrate_subscribers, subscription_cancel
from common.errors import TollgateError
from portal.admin_audit import AuditedAdminMixin
from portal.audit import Actor


@admin.register(Meter)
class MeterAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """New meters go through meter_create (same validation as the API); once a meter exists
    only its labels may change, since its code and aggregation define what the ledger means."""

    list_display = [
        "code",
        "name",
        "unit",
        "aggregation",
        "unique_property",
        "display_unit",
        "display_factor",
        "created_at",
    ]
    list_filter = ["aggregation"]
    search_fields = ["code", "name"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ["created_at"]
        return ["code", "aggregation", "unique_property", "created_at"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        try:
            created = services.meter_create(
                actor=Actor.from_request(request),
                code=obj.code,
                name=obj.name,
                unit=obj.unit,
                aggregation=obj.aggregation,
                unique_property=obj.unique_property,
                display_unit=obj.display_unit,
                display_factor=obj.display_factor,
            )
        except TollgateError as error:
            self.message_user(request, f"{error.detail} ({error.code})", messages.ERROR)
            return None
        obj.pk = created.pk
        obj._state.adding = False
        return None


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    """The ledger: append-only; corrections are made with POST /api/v1/usage/corrections."""

    list_display = [
        "id",
        "occurred_at",
        "organization",
        "meter",
        "environment",
        "quantity",
        "event_id",
        "source",
        "endpoint",
    ]
    list_filter = ["environment", "source", "meter"]
    search_fields = ["event_id", "request_id", "organization__slug"]
    list_select_related = ["organization", "meter"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False


@admin.register(UsageRollup)
class UsageRollupAdmin(ReadOnlyAdmin):
    list_display = [
        "hour",
        "organization",
        "meter",
        "environment",
        "project_id",
        "api_key_id",
        "endpoint",
        "event_count",
        "quantity_sum",
        "quantity_max",
    ]
    list_filter = ["environment", "meter"]
    search_fields = ["organization__slug", "endpoint"]
    list_select_related = ["organization", "meter"]
    date_hierarchy = "hour"
    show_full_result_count = False


@admin.register(UsageCorrection)
class UsageCorrectionAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "organization",
        "event_id",
        "original_ledger_id",
        "reversal_ledger_id",
        "reason",
    ]
    search_fields = ["event_id", "organization__slug", "reason"]


# --- Packaging and pricing --------------------------------------------------------------
class ChargeForm(forms.ModelForm):
    """Checks a charge with the same rules as the API (catalog.clean_charge)."""

    class Meta:
        model = Charge
        fields = [
            "meter",
            "position",
            "model",
            "free_units",
            "unit_amount",
            "tiers",
            "package_size",
            "package_amount",
            "minimum",
            "maximum",
        ]

    def clean(self):
        cleaned = super().clean()
        meter = cleaned.get("meter")
        if meter is None:
            return cleaned
        body = {
            "meter": meter.code,
            "model": cleaned.get("model"),
            "free_units": cleaned.get("free_units") or 0,
            "unit_amount": cleaned.get("unit_amount"),
            "tiers": cleaned.get("tiers"),
            "package_size": cleaned.get("package_size"),
            "package_amount": cleaned.get("package_amount"),
            "minimum": cleaned.get("minimum"),
            "maximum": cleaned.get("maximum"),
        }
        try:
            fields = clean_charge(body, 0, {meter.code: meter})
        except TollgateError as error:
            raise forms.ValidationError(error.detail) from error
        cleaned["tiers"] = fields["tiers"]
        return cleaned


class ChargeInline(admin.TabularInline):
    model = Charge
    form = ChargeForm
    extra = 0

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None or not obj.is_locked

    has_add_permission = has_delete_permission = has_change_permission


class PlanVersionInline(admin.TabularInline):
    model = PlanVersion
    extra = 0
    fields = ["number", "base_fee", "created_at", "subscribers"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="subscribers now")
    def subscribers(self, obj: PlanVersion) -> int:
        return obj.phases.filter(ends_at__isnull=True).count()


@admin.register(Plan)
class PlanAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "tier_rank",
        "interval",
        "currency",
        "trial_days",
        "public",
        "latest_version",
    ]
    list_filter = ["public", "interval", "currency"]
    search_fields = ["code", "name"]
    inlines = [PlanVersionInline]

    def get_readonly_fields(self, request, obj=None):
        # Currency and interval are part of every version's prices.
        return ["code", "currency", "interval", "created_at"] if obj else ["created_at"]

    @admin.display(description="latest version")
    def latest_version(self, obj: Plan) -> str:
        version = obj.current_version()
        return f"v{version.number}" if version else "none yet"


@admin.register(PlanVersion)
class PlanVersionAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Editable until the first subscriber; then copy it as a new version to change prices."""

    list_display = ["plan", "number", "base_fee", "minimum_commitment", "locked", "created_at"]
    list_filter = ["plan"]
    inlines = [ChargeInline]
    actions = ["copy_as_new_version", "migrate_subscribers"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.is_locked:
            return [
                "plan",
                "number",
                "base_fee",
                "minimum_commitment",
                "commitment_discount_percent",
                "entitlements",
                "created_at",
            ]
        return ["number", "created_at"] if obj else ["created_at"]

    def save_model(self, request, obj, form, change):
        if not change:
            latest = obj.plan.versions.order_by("-number").first()
            obj.number = (latest.number if latest else 0) + 1
        super().save_model(request, obj, form, change)

    @admin.display(boolean=True, description="locked (has subscribers)")
    def locked(self, obj: PlanVersion) -> bool:
        return obj.is_locked

    @admin.action(description="Copy as a new version (to change prices)")
    def copy_as_new_version(self, request, queryset):
        actor = Actor.from_request(request)
        for version in queryset.select_related("plan"):
            body = version_body(version)
            created = plan_version_create(actor=actor, plan=version.plan, body=body)
            self.message_user(
                request, f"Created {created}; edit it before anyone subscribes.", messages.SUCCESS
            )

    @admin.action(description="Migrate older versions' subscribers here at their next period")
    def migrate_subscribers(self, request, queryset):
        actor = Actor.from_request(request)
        for version in queryset:
            moved = plan_migrate_subscribers(actor=actor, version=version)
            self.message_user(
                request,
                f"{moved} subscription(s) move to {version} at the start of their next period.",
                messages.SUCCESS,
            )


def version_body(version: PlanVersion) -> dict:
    """A version as the catalog body, to copy it (charges and entitlements included)."""
    return {
        "base_fee": version.base_fee,
        "minimum_commitment": version.minimum_commitment,
        "commitment_discount_percent": version.commitment_discount_percent,
        "entitlements": version.entitlements,
        "charges": [
            {
                "meter": charge.meter.code,
                "model": charge.model,
                "free_units": charge.free_units,
                "unit_amount": charge.unit_amount,
                "tiers": charge.tiers,
                "package_size": charge.package_size,
                "package_amount": charge.package_amount,
                "minimum": charge.minimum,
                "maximum": charge.maximum,
            }
            for charge in version.charges.select_related("meter")
        ],
    }


@admin.register(AddOn)
class AddOnAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["code", "name", "price", "currency", "public"]
    search_fields = ["code", "name"]


@admin.register(Coupon)
class CouponAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "kind",
        "percent_off",
        "amount_off",
        "currency",
        "duration_periods",
        "active",
    ]
    list_filter = ["kind", "active"]
    search_fields = ["code", "name"]


class SubscriptionPhaseInline(admin.TabularInline):
    model = SubscriptionPhase
    extra = 0
    readonly_fields = ["plan_version", "starts_at", "ends_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    """Changes go through the API or the portal (they prorate); admin cancels."""

    list_display = [
        "organization",
        "status",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
        "coupon",
    ]
    list_filter = ["status", "cancel_at_period_end"]
    search_fields = ["organization__slug", "organization__name"]
    readonly_fields = [field.name for field in Subscription._meta.fields]
    inlines = [SubscriptionPhaseInline]
    actions = ["cancel_at_period_end"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Cancel at the end of the current period")
    def cancel_at_period_end(self, request, queryset):
        actor = Actor.from_request(request)
        for subscription in queryset:
            subscription_cancel(actor=actor, subscription=subscription)
        self.message_user(request, "Cancellation scheduled.", messages.SUCCESS)


@admin.register(CreditGrant)
class CreditGrantAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = [
        "organization",
        "amount",
        "remaining",
        "currency",
        "expires_at",
        "rolls_over",
        "granted_at",
    ]
    list_filter = ["currency", "rolls_over"]
    search_fields = ["organization__slug", "reason"]
    autocomplete_fields = ["organization"]


from billing.models import PaymentAttempt, StripeEvent  # noqa: E402  (payments admin, below)


# --- Payments (billing/payments.py): attempts and Stripe events are records, not edits ------
@admin.register(PaymentAttempt)
class PaymentAttemptAdmin(ReadOnlyAdmin):
    list_display = [
        "attempted_at",
        "invoice",
        "number",
        "amount",
        "outcome",
        "failure_code",
        "stripe_payment_intent_id",
    ]
    list_filter = ["outcome"]
    search_fields = ["invoice__number", "stripe_payment_intent_id", "failure_code"]
    list_select_related = ["invoice"]


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    """Inbound Stripe webhook events as received; `error` keeps a failed processing's
    traceback until Stripe's next delivery succeeds."""

    list_display = ["received_at", "id", "type", "processed_at", "failed"]
    list_filter = ["type"]
    search_fields = ["id", "type"]
    date_hierarchy = "received_at"

    @admin.display(boolean=True, description="failed")
    def failed(self, obj: StripeEvent) -> bool:
        return bool(obj.error)


# --- Alerts and anomalies (BILL-6, docs/billing.md) -------------------------------------------
from billing.models import AlertFiring, AlertThreshold, UsageAnomaly  # noqa: E402


@admin.register(AlertThreshold)
class AlertThresholdAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Thresholds the operator adds here are the operator's: customers see them and cannot
    remove them."""

    list_display = ["organization", "kind", "meter", "value", "set_by_operator", "created_at"]
    list_filter = ["kind", "set_by_operator"]
    search_fields = ["organization__slug", "organization__name"]
    list_select_related = ["organization", "meter"]
    autocomplete_fields = ["organization"]
    readonly_fields = ["set_by_operator"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.set_by_operator = True
        super().save_model(request, obj, form, change)


@admin.register(AlertFiring)
class AlertFiringAdmin(ReadOnlyAdmin):
    list_display = ["fired_at", "organization", "source", "meter", "value", "limit", "period_start"]
    list_filter = ["source"]
    search_fields = ["organization__slug", "key", "meter"]
    list_select_related = ["organization"]
    date_hierarchy = "fired_at"


@admin.register(UsageAnomaly)
class UsageAnomalyAdmin(ReadOnlyAdmin):
    list_display = ["day", "organization", "meter", "observed", "median", "score"]
    list_filter = ["meter"]
    search_fields = ["organization__slug", "explanation"]
    list_select_related = ["organization", "meter"]
    date_hierarchy = "day"


from billing import invoice_admin  # noqa: E402, F401  (registers the invoicing admin)
