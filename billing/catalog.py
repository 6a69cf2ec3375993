"""Writes for the catalog: plans and their immutable versions, from one JSON-shaped body.

The same body creates a plan in the API (`POST /api/v1/plans`), seeds the demo plans and
is what docs/pricing.md documents, so there is one place that says what a valid price is.
"""

from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max

from billing.models import Charge, Meter, Plan, PlanVersion
from billing.pricing.engine import MODELS, ChargeSpec, Tier, validate_tiers
from billing.pricing.money import is_supported_currency
from common.errors import Conflict, InvalidInput
from portal.audit import Actor, audit_record

MAX_CHARGES = 50
MAX_TIERS = 20
BEHAVIOURS = ("soft", "hard")
LIMIT_SCOPES = ("key", "project", "org")


def _decimal(value: Any, field: str, *, allow_none: bool = False, minimum=Decimal(0)):
    if value is None or value == "":
        if allow_none:
            return None
        raise InvalidInput("This field is required.", field=field)
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise InvalidInput('Give a decimal string such as "0.0004".', field=field)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise InvalidInput(f"'{value}' is not a decimal number.", field=field) from None
    if not number.is_finite() or number.as_tuple().exponent < -12 or abs(number) >= 10**18:
        raise InvalidInput("Use at most 12 decimals and 18 digits.", field=field)
    if minimum is not None and number < minimum:
        raise InvalidInput(f"Must be at least {minimum}.", field=field)
    return number


def _integer(value: Any, field: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(f"Give a whole number of at least {minimum}.", field=field)
    return value


def _names(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidInput("Give a list of names.", field=field)
    return sorted(set(value))


def clean_charge(raw: Any, index: int, meters: dict[str, Meter]) -> dict:
    """A charge body as model fields; raises InvalidInput naming `charges[i].field`."""
    path = f"charges[{index}]"
    if not isinstance(raw, dict):
        raise InvalidInput("Each charge is an object.", field=path)
    meter = meters.get(raw.get("meter")) if isinstance(raw.get("meter"), str) else None
    if meter is None:
        raise InvalidInput(
            f"No meter '{raw.get('meter')}'.", field=f"{path}.meter", code="unknown_meter"
        )
    model = raw.get("model")
    if model not in MODELS:
        raise InvalidInput(f"model must be one of {', '.join(MODELS)}.", field=f"{path}.model")
    fields: dict[str, Any] = {
        "meter": meter,
        "model": model,
        "free_units": _decimal(raw.get("free_units", 0), f"{path}.free_units"),
        "minimum": _decimal(raw.get("minimum"), f"{path}.minimum", allow_none=True),
        "maximum": _decimal(raw.get("maximum"), f"{path}.maximum", allow_none=True),
        "unit_amount": Decimal(0),
        "tiers": [],
        "package_size": None,
        "package_amount": Decimal(0),
    }
    bounds = (fields["minimum"], fields["maximum"])
    if None not in bounds and bounds[0] > bounds[1]:
        raise InvalidInput("minimum is above maximum.", field=f"{path}.minimum")
    if model == "per_unit":
        fields["unit_amount"] = _decimal(raw.get("unit_amount"), f"{path}.unit_amount")
    elif model == "package":
        fields["package_size"] = _decimal(
            raw.get("package_size"), f"{path}.package_size", minimum=None
        )
        if fields["package_size"] <= 0:
            raise InvalidInput("package_size must be positive.", field=f"{path}.package_size")
        fields["package_amount"] = _decimal(raw.get("package_amount"), f"{path}.package_amount")
    else:
        raw_tiers = raw.get("tiers")
        if not isinstance(raw_tiers, list) or not 0 < len(raw_tiers) <= MAX_TIERS:
            raise InvalidInput(f"Give 1 to {MAX_TIERS} tiers.", field=f"{path}.tiers")
        tiers = []
        for number, tier in enumerate(raw_tiers):
            tier_path = f"{path}.tiers[{number}]"
            if not isinstance(tier, dict):
                raise InvalidInput("Each tier is an object.", field=tier_path)
            tiers.append(
                Tier(
                    up_to=_decimal(tier.get("up_to"), f"{tier_path}.up_to", allow_none=True),
                    unit_amount=_decimal(tier.get("unit_amount", 0), f"{tier_path}.unit_amount"),
                    flat_amount=_decimal(tier.get("flat_amount", 0), f"{tier_path}.flat_amount"),
                )
            )
        problem = validate_tiers(tuple(tiers))
        if problem:
            raise InvalidInput(problem, field=f"{path}.tiers", code="invalid_tiers")
        fields["tiers"] = [
            {
                "up_to": None if t.up_to is None else str(t.up_to),
                "unit_amount": str(t.unit_amount),
                "flat_amount": str(t.flat_amount),
            }
            for t in tiers
        ]
    return fields


def clean_entitlements(raw: Any, meters: dict[str, Meter]) -> dict:
    """Normalised entitlements; defaults: no limits, `read` only, no features."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidInput("entitlements is an object.", field="entitlements")
    rate_limits = []
    for index, limit in enumerate(raw.get("rate_limits") or []):
        path = f"entitlements.rate_limits[{index}]"
        if not isinstance(limit, dict):
            raise InvalidInput("Each rate limit is an object.", field=path)
        count = _integer(limit.get("limit"), f"{path}.limit", minimum=1)
        scope = limit.get("scope", "key")
        if scope not in LIMIT_SCOPES:
            raise InvalidInput(f"scope is one of {', '.join(LIMIT_SCOPES)}.", field=f"{path}.scope")
        rate_limits.append(
            {
                "limit": count,
                "window_seconds": _integer(
                    limit.get("window_seconds"), f"{path}.window_seconds", minimum=1
                ),
                "burst": _integer(limit.get("burst", count), f"{path}.burst", minimum=count),
                "scope": scope,
            }
        )
    quotas = []
    for index, quota in enumerate(raw.get("quotas") or []):
        path = f"entitlements.quotas[{index}]"
        if not isinstance(quota, dict) or quota.get("meter") not in meters:
            raise InvalidInput(
                "Each quota names a known meter.", field=f"{path}.meter", code="unknown_meter"
            )
        behaviour = quota.get("behaviour", "hard")
        if behaviour not in BEHAVIOURS:
            raise InvalidInput("behaviour is soft or hard.", field=f"{path}.behaviour")
        quotas.append(
            {
                "meter": quota["meter"],
                "limit": str(_decimal(quota.get("limit"), f"{path}.limit")),
                "behaviour": behaviour,
            }
        )
    features = raw.get("features") or {}
    if not isinstance(features, dict) or not all(isinstance(v, bool) for v in features.values()):
        raise InvalidInput("features maps names to true/false.", field="entitlements.features")
    retention = raw.get("retention_days")
    return {
        "rate_limits": rate_limits,
        "quotas": quotas,
        "scopes": _names(raw.get("scopes", ["read"]), "entitlements.scopes"),
        "endpoint_groups": _names(
            raw.get("endpoint_groups", ["read"]), "entitlements.endpoint_groups"
        ),
        "features": dict(sorted(features.items())),
        "retention_days": None
        if retention is None
        else _integer(retention, "entitlements.retention_days", minimum=1),
        "support_level": str(raw.get("support_level") or "community")[:50],
    }


def clean_version(body: dict) -> dict:
    meters = {meter.code: meter for meter in Meter.objects.all()}
    charges = body.get("charges") or []
    if not isinstance(charges, list) or len(charges) > MAX_CHARGES:
        raise InvalidInput(f"Give a list of at most {MAX_CHARGES} charges.", field="charges")
    cleaned = [clean_charge(raw, index, meters) for index, raw in enumerate(charges)]
    codes = [charge["meter"].code for charge in cleaned]
    if len(set(codes)) != len(codes):
        raise InvalidInput("One charge per meter.", field="charges")
    discount = _decimal(
        body.get("commitment_discount_percent"), "commitment_discount_percent", allow_none=True
    )
    if discount is not None and discount > 100:
        raise InvalidInput("At most 100.", field="commitment_discount_percent")
    return {
        "base_fee": _decimal(body.get("base_fee", 0), "base_fee"),
        "minimum_commitment": _decimal(
            body.get("minimum_commitment"), "minimum_commitment", allow_none=True
        ),
        "commitment_discount_percent": discount,
        "entitlements": clean_entitlements(body.get("entitlements"), meters),
        "charges": cleaned,
    }


def _create_version(plan: Plan, version: dict) -> PlanVersion:
    number = (plan.versions.aggregate(top=Max("number"))["top"] or 0) + 1
    charges = version.pop("charges")
    created = PlanVersion.objects.create(plan=plan, number=number, **version)
    Charge.objects.bulk_create(
        [
            Charge(version=created, position=position, **charge)
            for position, charge in enumerate(charges)
        ]
    )
    version["charges"] = charges
    return created


def plan_create(*, actor: Actor, body: dict) -> Plan:
    """A plan and its first version, from the documented body, in one transaction."""
    code = body.get("code")
    if (
        not isinstance(code, str)
        or not code
        or len(code) > 64
        or not code.isascii()  # the URL pattern (<slug:code>) matches ASCII only
        or not code.replace("-", "").replace("_", "").isalnum()
        or code != code.lower()
    ):
        raise InvalidInput("Use lowercase letters, digits, - and _.", field="code")
    currency = body.get("currency", "USD")
    if not isinstance(currency, str) or not is_supported_currency(currency):
        raise InvalidInput(
            f"Unsupported currency '{currency}'.", field="currency", code="unsupported_currency"
        )
    interval = body.get("interval", "month")
    if interval not in Plan.Interval.values:
        raise InvalidInput("interval is month or year.", field="interval")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidInput("Give a name of 1 to 200 characters.", field="name")
    public = body.get("public", True)
    if not isinstance(public, bool):
        raise InvalidInput("public is true or false.", field="public")
    flags = {}
    for flag in ("calendar_billing", "pay_in_advance"):
        flags[flag] = body.get(flag, False)
        if not isinstance(flags[flag], bool):
            raise InvalidInput(f"{flag} is true or false.", field=flag)
    fields = {
        **flags,
        "code": code,
        "name": name.strip(),
        "description": str(body.get("description") or "")[:2000],
        "currency": currency,
        "interval": interval,
        "trial_days": _integer(body.get("trial_days", 0), "trial_days"),
        "tier_rank": _integer(body.get("tier_rank", 0), "tier_rank"),
        "public": public,
    }
    version = clean_version(body)
    try:
        with transaction.atomic():
            plan = Plan.objects.create(**fields)
            created = _create_version(plan, version)
            audit_record(
                actor=actor,
                action="plan.created",
                organization=None,
                target=plan,
                changes={**fields, "version": created.number},
            )
    except IntegrityError as error:
        raise Conflict(
            f"A plan with code '{code}' exists.", code="plan_code_taken", field="code"
        ) from error
    return plan


def plan_version_create(*, actor: Actor, plan: Plan, body: dict) -> PlanVersion:
    """A new version; subscribers of older versions keep theirs until migrated."""
    version = clean_version(body)
    with transaction.atomic():
        Plan.objects.select_for_update().get(pk=plan.pk)  # version numbers in sequence
        created = _create_version(plan, version)
        audit_record(
            actor=actor,
            action="plan.version_created",
            organization=None,
            target=created,
            changes={
                "plan": plan.code,
                "number": created.number,
                "base_fee": str(created.base_fee),
            },
        )
    return created


def charge_spec(charge: Charge) -> ChargeSpec:
    return ChargeSpec(
        meter=charge.meter.code,
        model=charge.model,
        free_units=charge.free_units,
        unit_amount=charge.unit_amount,
        tiers=tuple(
            Tier(
                up_to=None if tier["up_to"] is None else Decimal(tier["up_to"]),
                unit_amount=Decimal(tier.get("unit_amount") or 0),
                flat_amount=Decimal(tier.get("flat_amount") or 0),
            )
            for tier in charge.tiers
        ),
        package_size=charge.package_size,
        package_amount=charge.package_amount,
        minimum=charge.minimum,
        maximum=charge.maximum,
    )
