"""Management API for packaging and pricing: plans, quotes, subscriptions, previews."""

from decimal import Decimal, InvalidOperation

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
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

JSON_BODY = {"application/json": OpenApiTypes.OBJECT}


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


def _addon_list(raw) -> list[tuple[AddOn, int]]:
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
        addon = AddOn.objects.filter(code=code).first() if isinstance(code, str) else None
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

    @extend_schema(operation_id="plans_list", auth=[], responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response({"results": [plan_json(plan) for plan in subs.public_plans()]})

    @extend_schema(
        operation_id="plans_create", request=JSON_BODY, responses={201: OpenApiTypes.OBJECT}
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
        operation_id="plan_versions_create", request=JSON_BODY, responses={201: OpenApiTypes.OBJECT}
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
        responses={200: OpenApiTypes.OBJECT},
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
        addons = _addon_list(body.get("addons"))
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
        responses={200: OpenApiTypes.OBJECT, 201: OpenApiTypes.OBJECT},
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
        responses={200: OpenApiTypes.OBJECT},
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
        responses={200: OpenApiTypes.OBJECT},
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
        responses={200: OpenApiTypes.OBJECT},
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
        responses={200: OpenApiTypes.OBJECT},
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
        responses={201: OpenApiTypes.OBJECT},
    )
    def post(self, request):
        body = self.body(request)
        subscription = self.current(request, body)
        [(addon, quantity)] = _addon_list(
            [{"code": body.get("addon"), "quantity": body.get("quantity", 1)}]
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
        operation_id="estimates_create", request=JSON_BODY, responses={200: OpenApiTypes.OBJECT}
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
