"""Subscriptions: trials, plan changes by phase with prorated previews, grandfathering,
immutable versions, coupons, credits, committed use, add-ons, entitlements and periods."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone

from billing import entitlements
from billing.catalog import plan_create, plan_version_create
from billing.demo_catalog import DEMO_PLANS, ensure_demo_catalog
from billing.ingest import usage_ingest
from billing.models import (
    AddOn,
    Charge,
    Coupon,
    CreditGrant,
    Plan,
    PlanVersion,
    PlanVersionLocked,
    Subscription,
    SubscriptionPhase,
)
from billing.quotes import Segment, build_quote
from billing.subscriptions import (
    period_containing,
    phase_at,
    plan_migrate_subscribers,
    subscription_add_addon,
    subscription_cancel,
    subscription_change_plan,
    subscription_estimate,
    subscription_preview,
    subscription_preview_change,
    subscription_subscribe,
)
from common.errors import Conflict, InvalidInput
from portal.audit import Actor
from portal.models import AuditLogEntry
from tests.factories import OrganizationFactory

SYSTEM = Actor.system("test")
D = Decimal


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def catalog(meters):
    ensure_demo_catalog(actor=SYSTEM)


@pytest.fixture
def old_usage_allowed(settings):
    """Lets tests record usage at fixed dates this year (the ledger refuses events older
    than the late-arrival window)."""
    settings.USAGE_LATE_ARRIVAL_DAYS = 3650


def plan(code: str) -> Plan:
    return Plan.objects.get(code=code)


def make_plan(code: str, *, base_fee="0", charges=(), **extra) -> Plan:
    body = {"code": code, "name": code.title(), "base_fee": base_fee, "charges": list(charges)}
    return plan_create(actor=SYSTEM, body={**body, **extra})


def subscribe(org, code: str, now: datetime | None = None, **extra) -> Subscription:
    return subscription_subscribe(
        actor=SYSTEM, organization=org, plan=plan(code), now=now or timezone.now(), **extra
    )


def record(org, meter: str, quantity: int, when: datetime) -> None:
    result = usage_ingest(
        events=[
            {
                "id": f"{meter}-{when.isoformat()}",
                "meter": meter,
                "customer": org.slug,
                "quantity": quantity,
                "timestamp": when.isoformat(),
            }
        ]
    )
    assert result.accepted == 1, result.rejected


def lines(quote, kind: str) -> list:
    return [line for line in quote.lines if line.kind == kind]


# --- Subscribing, trials, plan changes ----------------------------------------------------
def test_subscribing_to_a_plan_with_a_trial_starts_trialing(org, catalog):
    now = at(2026, 1, 1)
    subscription = subscribe(org, "pro", now)  # Pro has a 14-day trial
    assert subscription.status == Subscription.Status.TRIALING
    assert subscription.trial_ends_at == now + timedelta(days=14)
    assert (subscription.current_period_start, subscription.current_period_end) == (
        now,
        at(2026, 2, 1),
    )
    [phase] = subscription.phases.all()
    assert (phase.plan_version, phase.starts_at, phase.ends_at) == (
        plan("pro").current_version(),
        now,
        None,
    )
    assert AuditLogEntry.objects.filter(
        action="subscription.created", organization=org, target_id=str(subscription.pk)
    ).exists()


def test_subscribing_to_a_plan_without_a_trial_starts_active(org, catalog):
    subscription = subscribe(org, "free")
    assert subscription.status == Subscription.Status.ACTIVE
    assert subscription.trial_ends_at is None


def test_a_yearly_plan_has_a_year_long_period(org, meters):
    make_plan("annual", base_fee="1200", interval="year")
    subscription = subscribe(org, "annual", at(2028, 2, 29))
    assert subscription.current_period_end == at(2029, 2, 28)


def test_subscribing_again_changes_the_plan_and_splits_the_period_into_phases(org, catalog):
    first = subscribe(org, "pro", at(2026, 1, 1))
    again = subscribe(org, "business", at(2026, 1, 11))
    assert again.pk == first.pk  # one subscription, two phases
    old, new = SubscriptionPhase.objects.filter(subscription=first).order_by("starts_at")
    assert (old.plan_version.plan.code, old.starts_at, old.ends_at) == (
        "pro",
        at(2026, 1, 1),
        at(2026, 1, 11),
    )
    assert (new.plan_version.plan.code, new.starts_at, new.ends_at) == (
        "business",
        at(2026, 1, 11),
        None,
    )
    assert Subscription.objects.filter(organization=org).count() == 1
    assert AuditLogEntry.objects.filter(action="subscription.plan_changed").count() == 1


@pytest.mark.usefixtures("no_trials")
def test_the_preview_prorates_each_phase_base_fee_by_time(org, catalog):
    subscribe(org, "pro", at(2026, 1, 1))  # 49.00 a month
    subscription = subscribe(org, "business", at(2026, 1, 11))  # 499.00 a month
    preview = subscription_preview(subscription=subscription, now=at(2026, 1, 20))
    fees = lines(preview.to_date, "base_fee")
    # January has 31 days: Pro for 10 of them, Business for 21.
    # 49 x 10/31 = 15.806… -> 15.81; 499 x 21/31 = 338.032… -> 338.03
    assert [(line.amount, line.starts_at, line.ends_at) for line in fees] == [
        (D("15.81"), at(2026, 1, 1), at(2026, 1, 11)),
        (D("338.03"), at(2026, 1, 11), at(2026, 2, 1)),
    ]
    assert preview.to_date.total == D("353.84")  # no usage yet
    assert (preview.period_start, preview.period_end) == (at(2026, 1, 1), at(2026, 2, 1))


@pytest.mark.usefixtures("old_usage_allowed")
def test_usage_is_priced_under_the_version_in_force_when_it_happened(org, meters):
    make_plan("cents", charges=[{"meter": "requests", "model": "per_unit", "unit_amount": "0.01"}])
    make_plan("fifth", charges=[{"meter": "requests", "model": "per_unit", "unit_amount": "0.002"}])
    subscribe(org, "cents", at(2026, 3, 1))
    record(org, "requests", 100, at(2026, 3, 5))
    subscription = subscribe(org, "fifth", at(2026, 3, 11))
    record(org, "requests", 1000, at(2026, 3, 20))

    preview = subscription_preview(subscription=subscription, now=at(2026, 3, 25))
    usage = [(line.quantity, line.amount) for line in lines(preview.to_date, "usage")]
    assert usage == [(D(100), D("1.00")), (D(1000), D("2.00"))]
    assert preview.to_date.total == D("3.00")


@pytest.mark.usefixtures("old_usage_allowed")
def test_the_forecast_extends_additive_usage_to_the_period_end(org, meters):
    make_plan("cents", charges=[{"meter": "requests", "model": "per_unit", "unit_amount": "0.01"}])
    subscription = subscribe(org, "cents", at(2026, 4, 1))  # April: 30 days
    record(org, "requests", 100, at(2026, 4, 5))
    preview = subscription_preview(subscription=subscription, now=at(2026, 4, 16))  # day 15
    assert lines(preview.to_date, "usage")[0].quantity == D(100)
    assert lines(preview.forecast, "usage")[0].quantity == D(200)
    assert (preview.to_date.total, preview.forecast.total) == (D("1.00"), D("2.00"))


def test_changing_to_the_plan_already_in_force_is_refused(org, catalog):
    subscription = subscribe(org, "pro")
    with pytest.raises(Conflict) as raised:
        subscription_change_plan(actor=SYSTEM, subscription=subscription, plan=plan("pro"))
    assert raised.value.code == "already_on_plan"
    assert subscription.phases.count() == 1


def test_changing_to_a_plan_in_another_currency_is_refused(org, catalog):
    make_plan("yen", currency="JPY", base_fee="5000")
    subscription = subscribe(org, "pro")
    with pytest.raises(InvalidInput) as raised:
        subscription_change_plan(actor=SYSTEM, subscription=subscription, plan=plan("yen"))
    assert raised.value.code == "currency_mismatch"
    assert subscription.phases.count() == 1


def test_cancelling_takes_effect_at_period_end_and_a_plan_change_undoes_it(org, catalog):
    subscription = subscribe(org, "pro")
    subscription = subscription_cancel(actor=SYSTEM, subscription=subscription)
    assert subscription.cancel_at_period_end
    assert subscription.status != Subscription.Status.CANCELED  # still running until then
    subscription_cancel(actor=SYSTEM, subscription=subscription)  # twice: one audit row
    assert AuditLogEntry.objects.filter(action="subscription.cancel_scheduled").count() == 1
    subscription = subscribe(org, "business")
    assert not subscription.cancel_at_period_end


def test_previewing_a_change_saves_nothing(org, catalog):
    subscription = subscribe(org, "pro")
    before_audit = AuditLogEntry.objects.count()
    current, changed = subscription_preview_change(subscription=subscription, plan=plan("business"))
    assert current.plan == "pro" and changed.plan == "business"
    assert changed.total > current.total
    assert [phase.plan_version.plan.code for phase in subscription.phases.all()] == ["pro"]
    assert AuditLogEntry.objects.count() == before_audit


def test_an_estimate_prices_the_extra_units_on_top_of_the_period(org, catalog):
    subscription = subscribe(org, "pro")
    estimate = subscription_estimate(
        subscription=subscription,
        meter=subscription.phases.get()
        .plan_version.charges.get(meter__code="records_processed")
        .meter,
        quantity=D(2_000_000),
    )
    # Pro prices records in packages of 1,000 at 2.50: 2,000 packages.
    assert estimate.difference == D("5000.00")


# --- Grandfathering -----------------------------------------------------------------------
def new_version(code: str, base_fee: str) -> PlanVersion:
    body = next(body for body in DEMO_PLANS if body["code"] == code)
    return plan_version_create(actor=SYSTEM, plan=plan(code), body={**body, "base_fee": base_fee})


def test_subscribers_keep_their_version_when_a_new_one_is_created(org, other_org, catalog):
    old = plan("pro").current_version()
    subscribe(org, "pro")
    new = new_version("pro", "59.00")
    acme = Subscription.objects.get(organization=org)
    assert phase_at(acme, timezone.now()).plan_version == old  # grandfathered
    newcomer = subscribe(other_org, "pro")
    assert phase_at(newcomer, timezone.now()).plan_version == new


def test_a_migration_starts_at_the_next_period_and_is_shown_until_then(org, api, catalog):
    subscription = subscribe(org, "pro")
    old = plan("pro").current_version()
    new = new_version("pro", "59.00")

    assert plan_migrate_subscribers(actor=SYSTEM, version=new) == 1

    running, scheduled = subscription.phases.order_by("starts_at")
    assert (running.plan_version, running.ends_at) == (old, subscription.current_period_end)
    assert (scheduled.plan_version, scheduled.starts_at) == (new, subscription.current_period_end)
    body = api.get("/api/v1/subscriptions/current").json()
    assert (body["plan"], body["version"]) == ("pro", old.number)
    assert body["scheduled_migration"] == {
        "plan": "pro",
        "version": new.number,
        "at": subscription.current_period_end.isoformat().replace("+00:00", "Z"),
    }
    assert AuditLogEntry.objects.filter(action="subscription.migration_scheduled").count() == 1


def test_a_second_migration_replaces_the_scheduled_one(org, catalog):
    subscription = subscribe(org, "pro")
    second = new_version("pro", "59.00")
    plan_migrate_subscribers(actor=SYSTEM, version=second)
    third = new_version("pro", "69.00")

    assert plan_migrate_subscribers(actor=SYSTEM, version=third) == 1

    phases = list(subscription.phases.order_by("starts_at"))
    assert [phase.plan_version for phase in phases] == [
        plan("pro").versions.get(number=1),
        third,
    ]
    assert phases[0].ends_at == phases[1].starts_at == subscription.current_period_end


def test_migrating_to_the_version_already_scheduled_changes_nothing(org, catalog):
    subscribe(org, "pro")
    new = new_version("pro", "59.00")
    plan_migrate_subscribers(actor=SYSTEM, version=new)
    before = list(SubscriptionPhase.objects.values_list("id", "starts_at", "ends_at"))
    assert plan_migrate_subscribers(actor=SYSTEM, version=new) == 0
    assert list(SubscriptionPhase.objects.values_list("id", "starts_at", "ends_at")) == before


def test_an_explicit_plan_change_supersedes_a_scheduled_migration(org, catalog):
    subscription = subscribe(org, "pro")
    plan_migrate_subscribers(actor=SYSTEM, version=new_version("pro", "59.00"))
    subscribe(org, "business")
    codes = [phase.plan_version.plan.code for phase in subscription.phases.order_by("starts_at")]
    assert codes == ["pro", "business"]


# --- Immutable versions ---------------------------------------------------------------------
@pytest.fixture
def locked_version(org, catalog) -> PlanVersion:
    subscribe(org, "pro")
    version = plan("pro").current_version()
    assert version.is_locked
    return version


def test_a_locked_version_refuses_price_changes(locked_version):
    locked_version.base_fee = D("1.00")
    with pytest.raises(PlanVersionLocked) as raised:
        locked_version.save()
    assert raised.value.code == "plan_version_locked"
    assert PlanVersion.objects.get(pk=locked_version.pk).base_fee == D("49.00")


def test_a_locked_version_refuses_entitlement_changes(locked_version):
    locked_version.entitlements = {**locked_version.entitlements, "scopes": ["read", "admin"]}
    with pytest.raises(PlanVersionLocked):
        locked_version.save()


def test_saving_a_locked_version_unchanged_is_allowed(locked_version):
    PlanVersion.objects.get(pk=locked_version.pk).save()  # e.g. the admin's read-only form


def test_a_locked_versions_charges_cannot_change_be_added_or_removed(locked_version, meters):
    charge = locked_version.charges.get(meter__code="gpu_seconds")
    charge.unit_amount = D("0.0001")
    with pytest.raises(PlanVersionLocked):
        charge.save()
    with pytest.raises(PlanVersionLocked):
        Charge(
            version=locked_version, meter=meters["storage_gb"], model="per_unit", unit_amount=1
        ).save()
    with pytest.raises(PlanVersionLocked):
        locked_version.charges.get(meter__code="requests").delete()
    assert locked_version.charges.count() == 3


def test_a_version_nobody_subscribed_to_can_still_be_edited(catalog):
    version = plan("business").current_version()
    version.base_fee = D("450.00")
    version.save()
    charge = version.charges.get(meter__code="gpu_seconds")
    charge.unit_amount = D("0.0008")
    charge.save()
    assert PlanVersion.objects.get(pk=version.pk).base_fee == D("450.00")


def test_a_price_change_through_the_catalog_is_a_new_version(locked_version):
    new = new_version("pro", "59.00")
    assert new.number == locked_version.number + 1
    assert PlanVersion.objects.get(pk=locked_version.pk).base_fee == D("49.00")


# --- Coupons, credits, committed use ------------------------------------------------------
@pytest.mark.usefixtures("no_trials")
def test_a_percent_coupon_applies_for_its_number_of_periods(org, catalog):
    subscription = subscribe(org, "pro", coupon_code="launch20")  # 20% off for 3 periods
    preview = subscription_preview(subscription=subscription)
    assert preview.to_date.subtotal == D("49.00")
    assert preview.to_date.discount == D("9.80")
    assert preview.to_date.total == D("39.20")
    assert lines(preview.to_date, "discount")[0].amount == D("-9.80")

    subscription.coupon_periods_used = 2  # as invoicing will count them
    assert subscription_preview(subscription=subscription).to_date.discount == D("9.80")
    subscription.coupon_periods_used = 3
    after = subscription_preview(subscription=subscription).to_date
    assert (after.discount, after.total, lines(after, "discount")) == (D(0), D("49.00"), [])


@pytest.mark.usefixtures("no_trials")
def test_an_amount_coupon_never_takes_more_than_the_subtotal(org, catalog):
    Coupon.objects.create(code="big", name="Big", kind="amount", amount_off=100, currency="USD")
    subscription = subscribe(org, "pro", coupon_code="big")
    quote = subscription_preview(subscription=subscription).to_date
    assert (quote.discount, quote.total) == (D("49.00"), D("0.00"))


@pytest.mark.parametrize(
    ("coupon", "code"),
    [
        ({"code": "gone", "kind": "percent", "percent_off": 10, "active": False}, "unknown_coupon"),
        (
            {"code": "euro", "kind": "amount", "amount_off": 5, "currency": "EUR"},
            "validation_error",
        ),
    ],
)
def test_an_unusable_coupon_is_refused_and_nothing_is_created(org, catalog, coupon, code):
    Coupon.objects.create(name="x", **coupon)
    with pytest.raises(InvalidInput) as raised:
        subscribe(org, "pro", coupon_code=coupon["code"])
    assert raised.value.code == code
    assert not Subscription.objects.filter(organization=org).exists()


def grant(org, amount, **extra) -> CreditGrant:
    return CreditGrant.objects.create(
        organization=org, currency="USD", amount=D(amount), remaining=D(amount), **extra
    )


@pytest.mark.usefixtures("no_trials")
def test_credits_are_applied_up_to_the_total(org, catalog):
    subscription = subscribe(org, "pro")
    grant(org, 1000)
    quote = subscription_preview(subscription=subscription).to_date
    assert (quote.subtotal, quote.credits, quote.total) == (D("49.00"), D("49.00"), D("0.00"))
    assert lines(quote, "credit")[0].amount == D("-49.00")


@pytest.mark.usefixtures("no_trials")
def test_only_valid_credit_in_the_plan_currency_is_applied(org, other_org, catalog):
    subscription = subscribe(org, "pro")
    end = subscription.current_period_end
    grant(org, 10)
    grant(org, 5, expires_at=end)  # valid until the end of this period: counts
    grant(org, 7, expires_at=end - timedelta(seconds=1))  # expires before the bill
    CreditGrant.objects.create(organization=org, currency="EUR", amount=3, remaining=3)
    grant(other_org, 20)  # another organization's
    used = grant(org, 30)
    used.remaining = 0
    used.save()
    quote = subscription_preview(subscription=subscription).to_date
    assert (quote.credits, quote.total) == (D("15.00"), D("34.00"))


@pytest.mark.usefixtures("no_trials")
def test_a_coupon_applies_before_credits(org, catalog):
    subscription = subscribe(org, "pro", coupon_code="launch20")
    grant(org, 100)
    quote = subscription_preview(subscription=subscription).to_date
    assert (quote.discount, quote.credits, quote.total) == (D("9.80"), D("39.20"), D("0.00"))


def enterprise_quote(usage: dict, share: Decimal | None = None):
    version = plan("enterprise").current_version()
    segment = Segment(version=version, usage={k: D(v) for k, v in usage.items()})
    segment.base_fee_share = D(1) if share is None else share
    return build_quote(segments=[segment])


def test_committed_use_discounts_usage_and_trues_up_to_the_minimum(catalog):
    # Enterprise: 2,500 base, 5,000 minimum commitment, 20% off usage.
    quote = enterprise_quote({"requests": 10_000_000, "records_processed": 1_000_000})
    assert [(line.kind, line.amount) for line in quote.lines] == [
        ("base_fee", D("2500.00")),
        ("usage", D("1000.00")),
        ("usage", D("1000.00")),
        ("usage", D("0.00")),
        ("commitment_discount", D("-400.00")),
        ("commitment_true_up", D("900.00")),  # 2,500 + 2,000 - 400 = 4,100 -> 5,000
    ]
    assert quote.total == D("5000.00")


def test_committed_use_above_the_minimum_has_no_true_up(catalog):
    quote = enterprise_quote({"requests": 50_000_000})
    assert lines(quote, "commitment_true_up") == []
    assert lines(quote, "commitment_discount")[0].amount == D("-1000.00")
    assert quote.total == D("6500.00")  # 2,500 + 5,000 - 1,000


def test_the_minimum_commitment_is_prorated_with_the_phase(catalog):
    quote = enterprise_quote({}, share=D("0.5"))
    assert [(line.kind, line.amount) for line in quote.lines if line.kind != "usage"] == [
        ("base_fee", D("1250.00")),
        ("commitment_true_up", D("1250.00")),
    ]


# --- Add-ons and entitlements ---------------------------------------------------------------
@pytest.fixture
def fresh_cache(org):
    cache.delete(f"entitlements:{org.id}")
    yield
    cache.delete(f"entitlements:{org.id}")


@pytest.mark.usefixtures("fresh_cache")
def test_add_ons_merge_into_entitlements_and_drop_the_cached_answer(
    org, catalog, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        subscription = subscribe(org, "pro")
    before = entitlements.entitlements_for(org.id)
    assert cache.get(f"entitlements:{org.id}") is not None
    assert before["quotas"] == [{"meter": "requests", "limit": "5000000", "behaviour": "soft"}]

    with django_capture_on_commit_callbacks(execute=True):
        for code, quantity in (
            ("quota-pack-1m", 2),
            ("dedicated-throughput", 1),
            ("extended-retention", 1),
            ("priority-support", 1),
        ):
            subscription_add_addon(
                actor=SYSTEM,
                subscription=subscription,
                addon=AddOn.objects.get(code=code),
                quantity=quantity,
            )

    after = entitlements.entitlements_for(org.id)
    assert after["quotas"] == [{"meter": "requests", "limit": "7000000", "behaviour": "soft"}]
    assert {"limit": 500, "window_seconds": 1, "burst": 500, "scope": "org"} in after["rate_limits"]
    assert (after["retention_days"], after["support_level"]) == (730, "priority")
    assert after["addons"] == [
        "dedicated-throughput",
        "extended-retention",
        "priority-support",
        "quota-pack-1m",
    ]


@pytest.mark.usefixtures("fresh_cache")
def test_a_plan_change_drops_the_cached_entitlements(
    org, catalog, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        subscribe(org, "pro")
    assert entitlements.entitlements_for(org.id)["plan"] == "pro"
    with django_capture_on_commit_callbacks(execute=True):
        subscribe(org, "business")
    granted = entitlements.entitlements_for(org.id)
    assert (granted["plan"], granted["features"]["sso"]) == ("business", True)


@pytest.mark.usefixtures("fresh_cache")
def test_callers_cannot_change_the_cached_entitlements(org, catalog):
    entitlements.entitlements_for(org.id)["scopes"].append("admin")
    assert entitlements.entitlements_for(org.id)["scopes"] == ["read"]


@pytest.mark.usefixtures("fresh_cache")
def test_an_organization_without_a_subscription_gets_the_free_plan(org, catalog):
    granted = entitlements.entitlements_for(org.id)
    free = plan("free").current_version()
    assert (granted["plan"], granted["version"]) == ("free", free.number)
    assert granted["quotas"] == free.entitlements["quotas"]
    assert granted["scopes"] == ["read"] and granted["endpoint_groups"] == ["read"]


@pytest.mark.usefixtures("fresh_cache")
def test_a_canceled_subscription_falls_back_to_the_free_plan(org, catalog):
    subscription = subscribe(org, "business")
    Subscription.objects.filter(pk=subscription.pk).update(status=Subscription.Status.CANCELED)
    assert entitlements.entitlements_for(org.id)["plan"] == "free"


def test_without_a_free_plan_in_the_catalog_an_organization_gets_read_only(meters):
    org = OrganizationFactory()
    granted = entitlements.entitlements_for(org.id)
    assert (granted["plan"], granted["scopes"], granted["endpoint_groups"]) == (
        None,
        ["read"],
        ["read"],
    )


def test_an_add_on_in_another_currency_is_refused(org, catalog):
    subscription = subscribe(org, "pro")
    yen = AddOn.objects.create(code="yen-pack", name="Yen pack", currency="JPY", price=100)
    with pytest.raises(InvalidInput) as raised:
        subscription_add_addon(actor=SYSTEM, subscription=subscription, addon=yen)
    assert raised.value.code == "currency_mismatch"
    assert not subscription.addons.exists()


# --- Period math ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("moment", "period"),
    [
        (at(2027, 1, 31), (at(2027, 1, 31), at(2027, 2, 28))),  # the start itself
        (at(2027, 2, 27, 23, 59), (at(2027, 1, 31), at(2027, 2, 28))),
        (at(2027, 2, 28), (at(2027, 2, 28), at(2027, 3, 31))),  # an end starts the next
        (at(2027, 3, 30), (at(2027, 2, 28), at(2027, 3, 31))),
        (at(2027, 4, 15), (at(2027, 3, 31), at(2027, 4, 30))),
        (at(2027, 12, 31), (at(2027, 12, 31), at(2028, 1, 31))),  # across the year
        (at(2028, 2, 10), (at(2028, 1, 31), at(2028, 2, 29))),  # leap year
        (at(2028, 3, 1), (at(2028, 2, 29), at(2028, 3, 31))),
    ],
)
def test_monthly_periods_from_the_31st_end_on_the_last_day_of_shorter_months(moment, period):
    assert period_containing(at(2027, 1, 31), Plan.Interval.MONTH, moment) == period


@pytest.mark.parametrize(
    ("moment", "period"),
    [
        (at(2028, 6, 1), (at(2028, 2, 29), at(2029, 2, 28))),
        (at(2029, 2, 28), (at(2029, 2, 28), at(2030, 2, 28))),
        (at(2032, 3, 1), (at(2032, 2, 29), at(2033, 2, 28))),  # 4 years on: the 29th again
    ],
)
def test_yearly_periods_from_a_leap_day(moment, period):
    assert period_containing(at(2028, 2, 29), Plan.Interval.YEAR, moment) == period


def test_periods_many_years_on_are_found_directly():
    start = at(2020, 5, 15, 12, 30)
    assert period_containing(start, Plan.Interval.MONTH, at(2031, 8, 15, 12, 29)) == (
        at(2031, 7, 15, 12, 30),
        at(2031, 8, 15, 12, 30),
    )


def test_time_in_trial_is_free_base_fee_and_usage(org, catalog, old_usage_allowed):
    start = datetime(2026, 1, 1, tzinfo=UTC)  # Pro: 14-day trial, ends 15 January
    subscription = subscribe(org, "pro", start)
    assert subscription.trial_ends_at == datetime(2026, 1, 15, tzinfo=UTC)
    record(org, "records_processed", 5000, datetime(2026, 1, 10, tzinfo=UTC))  # in trial
    record(org, "records_processed", 2000, datetime(2026, 1, 16, tzinfo=UTC))  # billable
    preview = subscription_preview(subscription=subscription, now=datetime(2026, 1, 20, tzinfo=UTC))
    [base] = lines(preview.to_date, "base_fee")
    assert base.amount == Decimal("26.87")  # 49.00 x 17 of 31 days, HALF_UP
    [records] = [
        line for line in lines(preview.to_date, "usage") if line.meter == "records_processed"
    ]
    assert records.quantity == 2000 and records.amount == Decimal("5.00")


def test_a_period_entirely_in_trial_previews_at_zero(org, catalog):
    subscription = subscribe(org, "pro")
    Plan.objects.filter(code="pro").update(trial_days=60)
    subscription.trial_ends_at = subscription.current_period_end + timedelta(days=1)
    subscription.save(update_fields=["trial_ends_at"])
    preview = subscription_preview(subscription=subscription)
    assert preview.to_date.total == 0 and preview.forecast.total == 0
    assert lines(preview.to_date, "base_fee")[0].amount == 0
