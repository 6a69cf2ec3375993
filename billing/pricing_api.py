"""Management API for packaging and pricing: plans, quotes, subscriptions, previews."""

from decimal import Decimal, InvalidOperation

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import subscriptions as subs
from billing.api import DecimalJSONParser
from billing.catalog import plan_create, plan_version_create
from billing.ingest.validation import MAX_QUANTITY
from billing.models import QUANTITY_DECIMALS, AddOn, Meter, Plan, Subscription
from billing.pricing.money import format_exact, format_money
from billing.quotes import Segment, build_quote, quote_as_json
from billing.selectors import organization_get
from common.errors import InvalidInput, NotFound, PermissionDenied
from portal.audit import Actor
from portal.models import ApiToken
from portal.schema import problems, results_list

JSON_BODY = {"application/json": OpenApiTypes.OBJECT}


# --- OpenAPI shapes of the JSON this module writes by hand (plan_json, quote_as_json, ...) ---
# Amounts are decimal strings: money with the currency's digits, tier figures exact.
def _money(**kwargs) -> serializers.CharField:
    return serializers.CharField(help_text="A decimal string, never a float.", **kwargs)


_PERIOD = type(
    inline_serializer(
        "Period", {"start": serializers.DateTimeField(), "end": serializers.DateTimeField()}
    )
)


def _period(**kwargs):
    return _PERIOD(**kwargs)


_PLAN = type(
    inline_serializer(
        "Plan",
        {
            "code": serializers.SlugField(),
            "name": serializers.CharField(),
            "description": serializers.CharField(allow_blank=True),
            "tier_rank": serializers.IntegerField(),
            "currency": serializers.CharField(min_length=3, max_length=3),
            "interval": serializers.CharField(),
            "trial_days": serializers.IntegerField(),
            "public": serializers.BooleanField(),
            "version": serializers.IntegerField(),
            "base_fee": _money(),
            "minimum_commitment": _money(allow_null=True),
            "commitment_discount_percent": _money(allow_null=True),
            "charges": inline_serializer(
                "PlanCharge",
                {
                    "meter": serializers.CharField(),
                    "model": serializers.CharField(),
                    "free_units": _money(),
                    "unit_amount": _money(),
                    "tiers": serializers.JSONField(allow_null=True),
                    "package_size": _money(allow_null=True),
                    "package_amount": _money(),
                    "minimum": _money(allow_null=True),
                    "maximum": _money(allow_null=True),
                },
                many=True,
            ),
            "entitlements": serializers.DictField(),
        },
    )
)


def _plan_serializer():
    return _PLAN()


_QUOTE = type(
    inline_serializer(
        "Quote",
        {
            "plan": serializers.CharField(),
            "version": serializers.IntegerField(),
            "currency": serializers.CharField(),
            "lines": inline_serializer(
                "QuoteLine",
                {
                    "kind": serializers.CharField(),
                    "description": serializers.CharField(),
                    "meter": serializers.CharField(allow_null=True),
                    "quantity": _money(allow_null=True),
                    "amount": _money(),
                    "tiers": inline_serializer(
                        "QuoteTier",
                        {
                            "from": _money(),
                            "up_to": _money(allow_null=True),
                            "quantity": _money(),
                            "unit_amount": _money(),
                            "flat_amount": _money(),
                            "amount": _money(),
                        },
                        many=True,
                    ),
                    "period": _period(required=False),
                    "billable_quantity": _money(required=False),
                    "adjusted_by": serializers.JSONField(required=False, allow_null=True),
                },
                many=True,
            ),
            "subtotal": _money(),
            "discount": _money(),
            "credits": _money(),
            "tax": _money(),
            "total": _money(),
        },
    )
)


def quote_schema(**kwargs):
    """The OpenAPI shape of quotes.quote_as_json (for any module that answers a quote)."""
    return _QUOTE(**kwargs)


_SUBSCRIPTION = type(
    inline_serializer(
        "Subscription",
        {
            "id": serializers.UUIDField(),
            "customer": serializers.CharField(help_text="The organization's slug."),
            "plan": serializers.CharField(allow_null=True),
            "version": serializers.IntegerField(allow_null=True),
            "status": serializers.CharField(),
            "started_at": serializers.DateTimeField(),
            "current_period_start": serializers.DateTimeField(),
            "current_period_end": serializers.DateTimeField(),
            "trial_ends_at": serializers.DateTimeField(allow_null=True),
            "cancel_at_period_end": serializers.BooleanField(),
            "coupon": serializers.CharField(allow_null=True),
            "addons": inline_serializer(
                "SubscriptionAddOn",
                {"code": serializers.CharField(), "quantity": serializers.IntegerField()},
                many=True,
            ),
            "scheduled_migration": inline_serializer(
                "ScheduledMigration",
                {
                    "plan": serializers.CharField(),
                    "version": serializers.IntegerField(),
                    "at": serializers.DateTimeField(),
                },
                allow_null=True,
            ),
        },
    )
)


def _subscription_serializer():
    return _SUBSCRIPTION()


PLAN_EXAMPLE = {
    "code": "growth",
    "name": "Growth",
    "description": "For teams in production",
    "tier_rank": 1,
    "currency": "USD",
    "interval": "month",
    "trial_days": 14,
    "public": True,
    "version": 1,
    "base_fee": "49.00",
    "minimum_commitment": None,
    "commitment_discount_percent": None,
    "charges": [
        {
            "meter": "requests",
            "model": "graduated",
            "free_units": "0",
            "unit_amount": "0",
            "tiers": [
                {"up_to": "100000", "flat_amount": "0", "unit_amount": "0"},
                {"up_to": None, "flat_amount": "0", "unit_amount": "0.0004"},
            ],
            "package_size": None,
            "package_amount": "0",
            "minimum": None,
            "maximum": None,
        }
    ],
    "entitlements": {
        "quotas": [],
        "scopes": ["read"],
        "features": {},
        "rate_limits": [],
        "support_level": "community",
        "retention_days": None,
        "endpoint_groups": ["read"],
    },
}
QUOTE_EXAMPLE = {
    "plan": "growth",
    "version": 1,
    "currency": "USD",
    "lines": [
        {
            "kind": "base_fee",
            "description": "Growth base fee",
            "meter": None,
            "quantity": None,
            "amount": "49.00",
            "tiers": [],
        },
        {
            "kind": "usage",
            "description": "API requests",
            "meter": "requests",
            "quantity": "250000",
            "amount": "60.00",
            "tiers": [
                {
                    "from": "0",
                    "up_to": "100000",
                    "quantity": "100000",
                    "unit_amount": "0",
                    "flat_amount": "0",
                    "amount": "0",
                },
                {
                    "from": "100000",
                    "up_to": None,
                    "quantity": "150000",
                    "unit_amount": "0.0004",
                    "flat_amount": "0",
                    "amount": "60",
                },
            ],
            "billable_quantity": "250000",
            "adjusted_by": None,
        },
    ],
    "subtotal": "109.00",
    "discount": "0.00",
    "credits": "0.00",
    "tax": "0.00",
    "total": "109.00",
}
SUBSCRIPTION_EXAMPLE = {
    "id": "0e5f7f6e-a150-433b-975e-ec75c1def58b",
    "customer": "acme",
    "plan": "growth",
    "version": 1,
    "status": "active",
    "started_at": "2026-11-25T19:03:58.432689Z",
    "current_period_start": "2026-11-25T19:03:58.432689Z",
    "current_period_end": "2026-12-25T19:03:58.432689Z",
    "trial_ends_at": None,
    "cancel_at_period_end": False,
    "coupon": None,
    "addons": [],
    "scheduled_migration": None,
}


def _is_operator(request) -> bool:
    return isinstance(request.auth, ApiToken) and request.auth.kind == ApiToken.Kind.OPERATOR


def _decimal(value, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise InvalidInput("Give a decimal string.", field=field, code="invalid_quantity")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise InvalidInput(
            f"'{value}' is not a number.", field=field, code="invalid_quantity"
        ) from None
    if not number.is_finite():
        raise InvalidInput("Must be finite.", field=field, code="invalid_quantity")
    if number < 0:
        raise InvalidInput("Must not be negative.", field=field, code="negative_quantity")
    # The ledger's range: anything larger could never be metered, and would overflow rounding.
    if number > MAX_QUANTITY or number.as_tuple().exponent < -QUANTITY_DECIMALS:
        raise InvalidInput(
            f"Use at most {QUANTITY_DECIMALS} decimals and {len(str(MAX_QUANTITY))} digits "
            "before the point.",
            field=field,
            code="invalid_quantity",
        )
    return number


def _usage_map(raw) -> dict[str, Decimal]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput("usage maps meter codes to quantities.", field="usage")
    known = set(Meter.objects.values_list("code", flat=True))
    usage = {}
    for code, value in raw.items():
        if code not in known:
            raise InvalidInput(f"No meter '{code}'.", field=f"usage.{code}", code="unknown_meter")
        usage[code] = _decimal(value, f"usage.{code}")
    return usage


def _addon_list(raw, *, operator: bool = False) -> list[tuple[AddOn, int]]:
    """Customers and the calculator name public add-ons only; an operator token may also
    name a private one. A marketplace app's add-on is never named here: installing the app
    attaches it (marketplace/paid_apps.py), so no one pays for an app they did not install."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidInput("addons is a list.", field="addons")
    result = []
    for index, item in enumerate(raw):
        code, quantity = (
            (item, 1)
            if isinstance(item, str)
            else (
                (item.get("code"), item.get("quantity", 1)) if isinstance(item, dict) else (None, 0)
            )
        )
        offered = AddOn.objects.filter(marketplace_app__isnull=True)
        if not operator:
            offered = offered.filter(public=True)
        addon = offered.filter(code=code).first() if isinstance(code, str) else None
        if addon is None:
            raise InvalidInput(
                f"No add-on '{code}'.", field=f"addons[{index}]", code="unknown_addon"
            )
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise InvalidInput(
                "quantity is a positive whole number.", field=f"addons[{index}].quantity"
            )
        result.append((addon, quantity))
    return result


def plan_json(plan: Plan) -> dict:
    version = plan.current_version()
    return {
        "code": plan.code,
        "name": plan.name,
        "description": plan.description,
        "tier_rank": plan.tier_rank,
        "currency": plan.currency,
        "interval": plan.interval,
        "trial_days": plan.trial_days,
        "public": plan.public,
        "version": version.number,
        "base_fee": format_money(version.base_fee, plan.currency),
        "minimum_commitment": None
        if version.minimum_commitment is None
        else format_money(version.minimum_commitment, plan.currency),
        "commitment_discount_percent": None
        if version.commitment_discount_percent is None
        else format_exact(version.commitment_discount_percent),
        "charges": [
            {
                "meter": charge.meter.code,
                "model": charge.model,
                "free_units": format_exact(charge.free_units),
                "unit_amount": format_exact(charge.unit_amount),
                "tiers": charge.tiers,
                "package_size": None
                if charge.package_size is None
                else format_exact(charge.package_size),
                "package_amount": format_exact(charge.package_amount),
                "minimum": None if charge.minimum is None else format_exact(charge.minimum),
                "maximum": None if charge.maximum is None else format_exact(charge.maximum),
            }
            for charge in version.charges.select_related("meter")
        ],
        "entitlements": version.entitlements,
    }


class PlanListApi(APIView):
    """Public plans for anyone; operators (admin) create plans as code."""

    permission_classes = [AllowAny]
    parser_classes = [DecimalJSONParser]

    @extend_schema(
        operation_id="plans_list",
        auth=[],
        responses={200: results_list(_plan_serializer(), "PlanList")},
        examples=[
            OpenApiExample("Public plans", response_only=True, value={"results": [PLAN_EXAMPLE]})
        ],
    )
    def get(self, request):
        return Response({"results": [plan_json(plan) for plan in subs.public_plans()]})

    @extend_schema(
        operation_id="plans_create",
        request=JSON_BODY,
        responses={201: _plan_serializer(), **problems(400, 401, 403, 409)},
    )
    def post(self, request):
        _require_operator_admin(request)
        if not isinstance(request.data, dict):
            raise InvalidInput("Send a JSON object.")
        plan = plan_create(actor=Actor.from_request(request), body=request.data)
        return Response(plan_json(plan), status=status.HTTP_201_CREATED)


def _require_operator_admin(request) -> None:
    """POST /plans shares its path with the public list, so it checks the token itself."""
    if not isinstance(request.auth, ApiToken):
        raise NotAuthenticated("Send 'Authorization: Bearer <token>'.")
    if not _is_operator(request):
        raise PermissionDenied("This needs an operator token.", code="wrong_token_kind")
    if "admin" not in request.auth.scopes:
        raise PermissionDenied("The token lacks the 'admin' scope.", code="insufficient_scope")


class PlanVersionsApi(APIView):
    scopes_by_kind = {ApiToken.Kind.OPERATOR: {"POST": "admin"}}
    parser_classes = [DecimalJSONParser]

    @extend_schema(
        operation_id="plan_versions_create",
        request=JSON_BODY,
        responses={201: _plan_serializer(), **problems(400, 401, 403, 404)},
    )
    def post(self, request, code):
        plan = Plan.objects.filter(code=code).first()
        if plan is None:
            raise NotFound(f"No plan '{code}'.", code="unknown_plan")
        if not isinstance(request.data, dict):
            raise InvalidInput("Send a JSON object.")
        plan_version_create(actor=Actor.from_request(request), plan=plan, body=request.data)
        return Response(plan_json(plan), status=status.HTTP_201_CREATED)


class QuoteApi(APIView):
    """The calculator: any public plan for anyone, private plans for operator tokens."""

    permission_classes = [AllowAny]
    parser_classes = [DecimalJSONParser]

    @extend_schema(
        operation_id="pricing_quote",
        auth=[],
        request=JSON_BODY,
        responses={200: quote_schema(), **problems(400, 404)},
        examples=[
            OpenApiExample(
                "250,000 requests on Growth",
                request_only=True,
                value={"plan": "growth", "usage": {"requests": "250000"}},
            ),
            OpenApiExample("The quote", response_only=True, value=QUOTE_EXAMPLE),
        ],
    )
    def post(self, request):
        body = request.data
        if not isinstance(body, dict):
            raise InvalidInput("Send a JSON object.")
        plan = subs.plan_get(code=body.get("plan"), include_private=_is_operator(request))
        version = plan.current_version()
        if body.get("version") is not None:
            version = (
                plan.versions.filter(number=body["version"]).first()
                if isinstance(body["version"], int) and not isinstance(body["version"], bool)
                else None
            )
            if version is None:
                raise NotFound(
                    f"Plan '{plan.code}' has no version {body['version']}.", code="unknown_version"
                )
        usage = _usage_map(body.get("usage"))
        addons = _addon_list(body.get("addons"), operator=_is_operator(request))
        for index, (addon, _quantity) in enumerate(addons):
            if addon.currency != plan.currency:
                raise InvalidInput(
                    f"{addon.name} is priced in {addon.currency}, the plan in {plan.currency}.",
                    field=f"addons[{index}]",
                    code="currency_mismatch",
                )
        coupon = subs._check_coupon(body.get("coupon"), plan.currency)
        quote = build_quote(
            segments=[Segment(version=version, usage=usage)], addons=addons, coupon=coupon
        )
        return Response(quote_as_json(quote))


def subscription_json(subscription: Subscription) -> dict:
    phase = subs.phase_at(
        subscription,
        max(
            subscription.current_period_start, min(subscription.current_period_end, timezone.now())
        ),
    )
    migration = subs.scheduled_migration(subscription)
    return {
        "id": str(subscription.id),
        "customer": subscription.organization.slug,
        "plan": phase.plan_version.plan.code if phase else None,
        "version": phase.plan_version.number if phase else None,
        "status": subscription.status,
        "started_at": subscription.started_at,
        "current_period_start": subscription.current_period_start,
        "current_period_end": subscription.current_period_end,
        "trial_ends_at": subscription.trial_ends_at,
        "cancel_at_period_end": subscription.cancel_at_period_end,
        "coupon": subscription.coupon.code if subscription.coupon else None,
        "addons": [
            {"code": item.addon.code, "quantity": item.quantity}
            for item in subscription.addons.filter(removed_at__isnull=True).select_related("addon")
        ],
        "scheduled_migration": None
        if migration is None
        else {
            "plan": migration.plan_version.plan.code,
            "version": migration.plan_version.number,
            "at": migration.starts_at,
        },
    }


class _BillingApi(APIView):
    scopes_by_kind = {
        ApiToken.Kind.ORG: {"GET": "billing:read", "POST": "billing:write"},
        ApiToken.Kind.OPERATOR: {"GET": "admin", "POST": "admin"},
    }
    parser_classes = [DecimalJSONParser]

    def organization(self, request, data=None):
        if _is_operator(request):
            customer = (data or {}).get("customer") or request.query_params.get("customer")
            if not customer:
                raise InvalidInput("Operator tokens name the customer.", field="customer")
            return organization_get(str(customer))
        return request.auth.organization

    def current(self, request, data=None) -> Subscription:
        subscription = subs.subscription_current(organization=self.organization(request, data))
        if subscription is None:
            raise NotFound(
                "No subscription: the organization is on the Free plan.", code="no_subscription"
            )
        return subscription

    def body(self, request) -> dict:
        if not isinstance(request.data, dict):
            raise InvalidInput("Send a JSON object.")
        return request.data


class SubscriptionsApi(_BillingApi):
    @extend_schema(
        operation_id="subscriptions_create",
        request=JSON_BODY,
        responses={
            200: _subscription_serializer(),
            201: _subscription_serializer(),
            **problems(400, 401, 403, 404),
        },
        examples=[
            OpenApiExample("Subscribe to Growth", request_only=True, value={"plan": "growth"}),
            OpenApiExample(
                "A new subscription",
                response_only=True,
                status_codes=["201"],
                value=SUBSCRIPTION_EXAMPLE,
            ),
            OpenApiExample(
                "A plan change of the current subscription",
                response_only=True,
                status_codes=["200"],
                value=SUBSCRIPTION_EXAMPLE,
            ),
        ],
    )
    def post(self, request):
        body = self.body(request)
        organization = self.organization(request, body)
        plan = subs.plan_get(code=body.get("plan"), include_private=_is_operator(request))
        existed = subs.subscription_current(organization=organization) is not None
        subscription = subs.subscription_subscribe(
            actor=Actor.from_request(request),
            organization=organization,
            plan=plan,
            coupon_code=body.get("coupon"),
        )
        return Response(
            subscription_json(subscription),
            status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED,
        )


CUSTOMER_PARAM = OpenApiParameter("customer", str, description="operator tokens only")


class SubscriptionCurrentApi(_BillingApi):
    @extend_schema(
        operation_id="subscriptions_current",
        parameters=[CUSTOMER_PARAM],
        responses={200: _subscription_serializer(), **problems(401, 403, 404)},
        examples=[
            OpenApiExample(
                "The current subscription", response_only=True, value=SUBSCRIPTION_EXAMPLE
            )
        ],
    )
    def get(self, request):
        return Response(subscription_json(self.current(request)))


def _preview_json(preview: subs.Preview) -> dict:
    return {
        "period": {"start": preview.period_start, "end": preview.period_end},
        "as_of": preview.as_of,
        "to_date": quote_as_json(preview.to_date),
        "forecast": quote_as_json(preview.forecast),
    }


class SubscriptionPreviewApi(_BillingApi):
    @extend_schema(
        operation_id="subscriptions_current_preview",
        parameters=[CUSTOMER_PARAM],
        responses={
            200: inline_serializer(
                "SubscriptionPreview",
                {
                    "period": _period(),
                    "as_of": serializers.DateTimeField(),
                    "to_date": quote_schema(),
                    "forecast": quote_schema(),
                },
            ),
            **problems(401, 403, 404),
        },
    )
    def get(self, request):
        return Response(
            _preview_json(subs.subscription_preview(subscription=self.current(request)))
        )


class SubscriptionPreviewChangeApi(_BillingApi):
    """What this period would cost if the plan changed now (nothing is saved)."""

    scopes_by_kind = {
        ApiToken.Kind.ORG: {"POST": "billing:read"},
        ApiToken.Kind.OPERATOR: {"POST": "admin"},
    }

    @extend_schema(
        operation_id="subscriptions_current_preview_change",
        request=JSON_BODY,
        responses={
            200: inline_serializer(
                "SubscriptionChangePreview",
                {
                    "current": quote_schema(),
                    "changed": quote_schema(),
                    "difference": _money(),
                },
            ),
            **problems(400, 401, 403, 404, 409),
        },
    )
    def post(self, request):
        body = self.body(request)
        subscription = self.current(request, body)
        plan = subs.plan_get(code=body.get("plan"), include_private=_is_operator(request))
        before, after = subs.subscription_preview_change(subscription=subscription, plan=plan)
        currency = after.currency
        return Response(
            {
                "current": quote_as_json(before),
                "changed": quote_as_json(after),
                "difference": format_money(after.total - before.total, currency),
            }
        )


class SubscriptionCancelApi(_BillingApi):
    @extend_schema(
        operation_id="subscriptions_current_cancel",
        request=JSON_BODY,
        responses={200: _subscription_serializer(), **problems(401, 403, 404)},
    )
    def post(self, request):
        body = request.data if isinstance(request.data, dict) else {}
        subscription = subs.subscription_cancel(
            actor=Actor.from_request(request), subscription=self.current(request, body)
        )
        return Response(subscription_json(subscription))


class SubscriptionAddOnsApi(_BillingApi):
    @extend_schema(
        operation_id="subscriptions_current_addons_create",
        request=JSON_BODY,
        responses={201: _subscription_serializer(), **problems(400, 401, 403, 404)},
    )
    def post(self, request):
        body = self.body(request)
        subscription = self.current(request, body)
        [(addon, quantity)] = _addon_list(
            [{"code": body.get("addon"), "quantity": body.get("quantity", 1)}],
            operator=_is_operator(request),
        )
        subs.subscription_add_addon(
            actor=Actor.from_request(request),
            subscription=subscription,
            addon=addon,
            quantity=quantity,
        )
        return Response(subscription_json(subscription), status=status.HTTP_201_CREATED)


class EstimatesApi(_BillingApi):
    """What N more units of a meter would add to this period's bill (before a large job)."""

    scopes_by_kind = {
        ApiToken.Kind.ORG: {"POST": "billing:read"},
        ApiToken.Kind.OPERATOR: {"POST": "admin"},
    }

    @extend_schema(
        operation_id="estimates_create",
        request=JSON_BODY,
        responses={
            200: inline_serializer(
                "Estimate",
                {
                    "meter": serializers.CharField(),
                    "quantity": _money(),
                    "currency": serializers.CharField(),
                    "cost": _money(),
                    "period_total_before": _money(),
                    "period_total_after": _money(),
                    "lines": serializers.ListField(child=serializers.DictField()),
                },
            ),
            **problems(400, 401, 403, 404),
        },
    )
    def post(self, request):
        body = self.body(request)
        subscription = self.current(request, body)
        meter = (
            Meter.objects.filter(code=body.get("meter")).first()
            if isinstance(body.get("meter"), str)
            else None
        )
        if meter is None:
            raise InvalidInput(
                f"No meter '{body.get('meter')}'.", field="meter", code="unknown_meter"
            )
        quantity = _decimal(body.get("quantity"), "quantity")
        estimate = subs.subscription_estimate(
            subscription=subscription, meter=meter, quantity=quantity
        )
        currency = estimate.after.currency
        return Response(
            {
                "meter": meter.code,
                "quantity": format_exact(quantity),
                "currency": currency,
                "cost": format_money(estimate.difference, currency),
                "period_total_before": format_money(estimate.before.total, currency),
                "period_total_after": format_money(estimate.after.total, currency),
                "lines": quote_as_json(estimate.after)["lines"],
            }
        )
