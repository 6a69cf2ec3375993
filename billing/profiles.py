"""Billing profiles: the customer's address, tax id and time zone, and the tax rate that
applies to them. Reads create nothing: an org without a profile is billed in UTC, without
tax, with the collection method the settings choose."""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import transaction

from billing.models import BillingProfile, TaxRate
from billing.quotes import TaxSpec
from common.errors import InvalidInput
from portal.audit import Actor, audit_record
from portal.models import Organization

PROFILE_FIELDS = (
    "legal_name",
    "billing_email",
    "address_line1",
    "address_line2",
    "city",
    "postal_code",
    "region",
    "country",
    "tax_id",
    "timezone",
)


def profile_get(organization: Organization) -> BillingProfile:
    """The saved profile, or an unsaved default one."""
    profile = BillingProfile.objects.filter(organization=organization).first()
    return profile or BillingProfile(organization=organization)


def billing_zone(organization_id) -> str:
    zone = (
        BillingProfile.objects.filter(organization_id=organization_id)
        .values_list("timezone", flat=True)
        .first()
    )
    return zone or "UTC"


def tax_rate_for(profile: BillingProfile, rates: list[TaxRate] | None = None) -> TaxRate | None:
    """The active rate of the customer's region, else of its country, else none. `rates`:
    the active rates already read (the period close reads them once per chunk)."""
    if not profile.country:
        return None
    if rates is None:
        rates = list(TaxRate.objects.filter(active=True, country=profile.country.upper()))
    country = [rate for rate in rates if rate.country == profile.country.upper()]
    if profile.region:
        for rate in country:
            if rate.region.lower() == profile.region.lower():
                return rate
    return next((rate for rate in country if rate.region == ""), None)


def tax_spec_for(organization: Organization) -> TaxSpec | None:
    rate = tax_rate_for(profile_get(organization))
    if rate is None:
        return None
    return TaxSpec(name=rate.name, percent=rate.percent, inclusive=rate.inclusive)


def validate_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"'{name}' is not an IANA time zone (e.g. Europe/Paris).",
            field="timezone",
            code="invalid_timezone",
        ) from None
    return name


def profile_update(
    *, actor: Actor, organization: Organization, values: dict | None = None, **fields
) -> BillingProfile:
    """Saves what the customer bills under (`values` as the API sends them, or keyword
    fields). The time zone applies from the next period."""
    values = {**(values or {}), **fields}
    unknown = set(values) - set(PROFILE_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown field '{sorted(unknown)[0]}'.", field=sorted(unknown)[0])
    cleaned = {}
    for name, value in values.items():
        if not isinstance(value, str):
            raise InvalidInput(f"{name} is a string.", field=name)
        value = value.strip()
        limit = BillingProfile._meta.get_field(name).max_length
        if limit and len(value) > limit:
            raise InvalidInput(f"{name} is at most {limit} characters.", field=name)
        cleaned[name] = value
    if "country" in cleaned:
        country = cleaned["country"].upper()
        if country and (len(country) != 2 or not country.isalpha()):
            raise InvalidInput(
                "country is a two-letter ISO 3166 code.", field="country", code="invalid_country"
            )
        cleaned["country"] = country
    if "timezone" in cleaned:
        cleaned["timezone"] = validate_zone(cleaned["timezone"] or "UTC")
    if cleaned.get("billing_email"):
        from django.core.exceptions import ValidationError
        from django.core.validators import validate_email

        try:
            validate_email(cleaned["billing_email"])
        except ValidationError:
            raise InvalidInput(
                "billing_email is not an e-mail address.", field="billing_email"
            ) from None
    with transaction.atomic():
        profile, _ = BillingProfile.objects.select_for_update().get_or_create(
            organization=organization
        )
        changes = {
            name: [getattr(profile, name), value]
            for name, value in cleaned.items()
            if getattr(profile, name) != value
        }
        for name, value in cleaned.items():
            setattr(profile, name, value)
        profile.save()
        if "timezone" in changes:
            from billing import entitlements

            entitlements.invalidate(organization.id)  # the gate's quota periods follow it
        if changes:
            audit_record(
                actor=actor,
                action="billing_profile.updated",
                organization=organization,
                target=profile,
                changes=changes,
            )
    return profile
