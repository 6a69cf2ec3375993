"""Every place Tollgate emits an event: keys, subscriptions, invoices, payments, alerts,
anomalies and the gate's hard quotas. Each test runs each flow for real; every Event row a
test leaves is checked against the catalog (the `every_event_matches_the_catalog` fixture),
events roll back with the change that caused them, and none carries a secret."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache as django_cache
from django.db import transaction
from django.utils import timezone

from billing import payments
from billing.alerts import (
    QUOTA_CROSSINGS_STREAM,
    alert_threshold_create,
    alerts_check,
    quota_crossings_consume,
)
from billing.anomalies import anomalies_detect
from billing.catalog import plan_create, plan_version_create
from billing.demo_catalog import DEMO_PLANS, ensure_demo_catalog
from billing.entitlements import entitlements_for
from billing.ingest import usage_ingest
from billing.invoicing import billing_run
from billing.models import AddOn, Plan
from billing.subscriptions import (
    plan_migrate_subscribers,
    subscription_add_addon,
    subscription_cancel,
    subscription_change_plan,
    subscription_preview_change,
    subscription_subscribe,
)
from common.errors import Conflict
from common.redis import get_redis
from keys import services as key_services
from keys.gate import current_period
from keys.gate_usage import CROSSINGS_KEY, record_crossing
from keys.quota import quota_key
from portal.audit import Actor
from tests.billing import conftest as billing_fixtures
from tests.billing.fake_stripe import DECLINED, GOOD_CARD
from tests.factories import ApiKeyFactory, ProjectFactory
from tests.keys.conftest import call, make_gate
from tests.keys.test_products import DOCUMENT
from webhooks.catalog import payload_errors
from webhooks.models import Event

SYSTEM = Actor.system("test")
D = Decimal

# Billing's payment fixtures (the fake Stripe server, open invoices), used as they are there.
fake_stripe_server = billing_fixtures.fake_stripe_server
fake_stripe = billing_fixtures.fake_stripe
no_stripe = billing_fixtures.no_stripe
make_open_invoice = billing_fixtures.make_open_invoice


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def assert_events_match_the_catalog() -> int:
    """Every stored event's body is valid by the catalog and agrees with its row; returns
    how many were checked."""
    checked = 0
    for event in Event.objects.all():
        assert payload_errors(event.payload) == [], (event.type, event.payload)
        body = event.payload
        assert (body["id"], body["type"], body["version"]) == (event.id, event.type, event.version)
        assert body["organization"] == str(event.organization_id)
        assert body["environment"] == event.environment
        checked += 1
    return checked


@pytest.fixture(autouse=True)
def every_event_matches_the_catalog(db):
    """Runs after each test of this module: whatever it emitted must validate."""
    yield
    assert_events_match_the_catalog()


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.USAGE_LATE_ARRIVAL_DAYS = 3650
    settings.INVOICE_GRACE_SECONDS = 3600


@pytest.fixture(autouse=True)
def empty_crossings():
    client = get_redis()
    client.delete(QUOTA_CROSSINGS_STREAM)
    yield
    client.delete(QUOTA_CROSSINGS_STREAM)


@pytest.fixture
def catalog(meters):
    ensure_demo_catalog(actor=SYSTEM)
    Plan.objects.update(trial_days=0)


def events(type_: str, organization=None) -> list[dict]:
    """Bodies of the events of `type_`, oldest first."""
    rows = Event.objects.filter(type=type_).order_by("created_at")
    if organization is not None:
        rows = rows.filter(organization=organization)
    return [row.payload for row in rows]


def subscribe(org, code="pro", now=None):
    return subscription_subscribe(
        actor=SYSTEM, organization=org, plan=Plan.objects.get(code=code), now=now
    )


def record(org, meter: str, quantity, when: datetime) -> None:
    result = usage_ingest(
        events=[
            {
                "id": f"{meter}-{when.isoformat()}-{quantity}",
                "meter": meter,
                "customer": org.slug,
                "quantity": quantity,
                "timestamp": when.isoformat(),
            }
        ]
    )
    assert result.accepted == 1, result.rejected


# --- Keys -------------------------------------------------------------------------------------
def test_issuing_rotating_and_revoking_a_key_emit_events_without_the_secret(org, other_org):
    project = ProjectFactory(organization=org)
    key, raw = key_services.key_create(
        actor=SYSTEM, project=project, name="Server", environment="live", scopes=["read"]
    )
    new, new_raw = key_services.key_rotate(actor=SYSTEM, key=key, grace_period_seconds=60)
    key_services.key_revoke(actor=SYSTEM, key=new)
    key_services.key_revoke(actor=SYSTEM, key=new)  # idempotent: no second event

    [created] = events("key.created")
    assert created["organization"] == str(org.id) and created["environment"] == "live"
    assert created["data"]["id"] == str(key.id)
    assert (created["data"]["prefix"], created["data"]["scopes"]) == (key.prefix, ["read"])
    assert created["data"]["expires_at"] is None
    [rotated] = events("key.rotated")
    assert rotated["data"]["id"] == str(key.id)
    assert rotated["data"]["new_key"] == {"id": str(new.id), "prefix": new.prefix}
    [revoked] = events("key.revoked")
    assert revoked["data"]["id"] == str(new.id)
    everything = json.dumps([row.payload for row in Event.objects.all()])
    assert raw not in everything and new_raw not in everything
    assert key.key_hash not in everything
    assert not Event.objects.filter(organization=other_org).exists()


def test_a_test_key_emits_in_the_test_environment(org):
    key, _raw = key_services.key_create(
        actor=SYSTEM, project=ProjectFactory(organization=org), name="Sandbox", environment="test"
    )
    key_services.key_revoke(actor=SYSTEM, key=key)
    assert {row.environment for row in Event.objects.all()} == {"test"}
    assert [body["environment"] for body in events("key.created")] == ["test"]


def test_a_key_event_rolls_back_with_its_change(org):
    project = ProjectFactory(organization=org)
    with pytest.raises(RuntimeError), transaction.atomic():
        key_services.key_create(actor=SYSTEM, project=project, name="Gone", environment="live")
        raise RuntimeError("the caller's transaction fails after the key was made")
    assert not Event.objects.exists()


def test_a_refused_rotation_emits_nothing(org):
    key = ApiKeyFactory(project=ProjectFactory(organization=org), environment="live")
    key_services.key_revoke(actor=SYSTEM, key=key)
    with pytest.raises(Conflict):
        key_services.key_rotate(actor=SYSTEM, key=key)
    assert [event.type for event in Event.objects.all()] == ["key.revoked"]


# --- Subscriptions ----------------------------------------------------------------------------
def test_subscribing_and_changing_a_subscription_emit_events(org, catalog):
    subscription = subscribe(org, "pro")
    [created] = events("subscription.created")
    assert created["data"]["id"] == str(subscription.id)
    assert (created["data"]["plan"], created["data"]["status"]) == ("pro", "active")

    subscription_change_plan(
        actor=SYSTEM, subscription=subscription, plan=Plan.objects.get(code="business")
    )
    subscription_add_addon(
        actor=SYSTEM,
        subscription=subscription,
        addon=AddOn.objects.get(code="quota-pack-1m"),
        quantity=2,
    )
    subscription_cancel(actor=SYSTEM, subscription=subscription)
    subscription_cancel(actor=SYSTEM, subscription=subscription)  # already scheduled

    changed, addon, canceled = events("subscription.updated")
    assert changed["data"]["change"] == "plan_changed"
    assert changed["data"]["plan"] == "business"
    assert changed["data"]["previous"] == {"plan": "pro", "plan_version": 1}
    assert addon["data"]["change"] == "addon_added"
    assert addon["data"]["addon"] == {"code": "quota-pack-1m", "quantity": 2}
    assert canceled["data"]["change"] == "cancel_scheduled"
    assert canceled["data"]["cancel_at_period_end"] is True
    assert canceled["data"]["plan"] == "business"
    assert canceled["data"]["effective_at"] == created["data"]["current_period_end"]


def test_subscribing_again_is_a_plan_change(org, catalog):
    subscribe(org, "pro")
    subscribe(org, "business")
    assert len(events("subscription.created")) == 1
    [changed] = events("subscription.updated")
    assert changed["data"]["change"] == "plan_changed"


def test_a_plan_change_preview_emits_nothing(org, catalog):
    subscription = subscribe(org, "pro")
    subscription_preview_change(subscription=subscription, plan=Plan.objects.get(code="business"))
    assert events("subscription.updated") == []


def test_a_scheduled_migration_is_announced(org, catalog):
    subscribe(org, "pro")
    body = next(body for body in DEMO_PLANS if body["code"] == "pro")
    new = plan_version_create(
        actor=SYSTEM, plan=Plan.objects.get(code="pro"), body={**body, "base_fee": "59.00"}
    )
    assert plan_migrate_subscribers(actor=SYSTEM, version=new) == 1
    [migration] = events("subscription.updated")
    assert migration["data"]["change"] == "migration_scheduled"
    assert migration["data"]["next"] == {"plan": "pro", "plan_version": new.number}
    assert migration["data"]["plan_version"] == 1  # still the running one


# --- Invoices and payments --------------------------------------------------------------------
def metered_plan(base_fee="10.00") -> Plan:
    return plan_create(
        actor=SYSTEM,
        body={
            "code": f"metered-{base_fee}".replace(".", "-"),
            "name": "Metered",
            "base_fee": base_fee,
            "charges": [
                {
                    "meter": "requests",
                    "model": "per_unit",
                    "unit_amount": "0.01",
                }
            ],
        },
    )


def test_finalizing_invoices_emits_one_event_each(org, other_org, meters, no_stripe):
    plan = metered_plan()
    subscription_subscribe(actor=SYSTEM, organization=org, plan=plan, now=at(2026, 1, 15))
    subscription_subscribe(actor=SYSTEM, organization=other_org, plan=plan, now=at(2026, 1, 15))
    record(org, "requests", 250, at(2026, 1, 20))
    closed = billing_run(as_of=at(2026, 2, 15, 0, 10)).closed
    assert events("invoice.finalized") == []  # drafts, in their grace period: no event yet
    finalized = billing_run(as_of=at(2026, 2, 15, 1)).finalized
    assert len(closed) == len(finalized) == 2

    [acme] = events("invoice.finalized", org)
    invoice = next(invoice for invoice in finalized if invoice.organization_id == org.id)
    assert acme["data"]["id"] == str(invoice.id) and acme["data"]["number"] == invoice.number
    assert (acme["data"]["status"], acme["data"]["currency"]) == ("open", "USD")
    assert acme["data"]["total"] == "12.50" == acme["data"]["amount_due"]
    assert len(events("invoice.finalized", other_org)) == 1
    assert events("invoice.paid") == []
    billing_run(as_of=at(2026, 2, 23))  # nothing left to finalize: nothing new
    assert len(events("invoice.finalized")) == 2


def test_a_zero_invoice_is_finalized_and_paid(org, meters):
    subscription_subscribe(
        actor=SYSTEM, organization=org, plan=metered_plan("0"), now=at(2026, 1, 15)
    )
    billing_run(as_of=at(2026, 2, 16))
    [finalized] = events("invoice.finalized")
    [paid] = events("invoice.paid")
    assert finalized["data"]["status"] == "paid" and finalized["data"]["total"] == "0.00"
    assert paid["data"]["id"] == finalized["data"]["id"]


def card_on_file(org, payment_method: str) -> None:
    customer_id = payments.stripe_customer_ensure(actor=SYSTEM, organization=org)
    payments.payment_method_save(
        actor=SYSTEM, organization=org, customer_id=customer_id, payment_method_id=payment_method
    )


def test_a_card_payment_emits_invoice_paid(org, fake_stripe, make_open_invoice):
    card_on_file(org, GOOD_CARD)
    invoice = make_open_invoice(org, "49.00")
    payments.on_invoice_finalized(invoice.pk)
    [paid] = events("invoice.paid")
    assert paid["data"]["id"] == str(invoice.id)
    assert (paid["data"]["amount_paid"], paid["data"]["amount_due"]) == ("49.00", "0.00")
    assert paid["data"]["paid_at"] is not None


def test_a_declined_card_emits_payment_failed_until_past_due(
    org, fake_stripe, make_open_invoice, settings
):
    settings.DUNNING_RETRY_DAYS = [1]
    card_on_file(org, DECLINED)
    invoice = make_open_invoice(org, "49.00")
    payments.on_invoice_finalized(invoice.pk)
    payments.dunning_run(now=timezone.now() + timedelta(days=2))
    first, last = events("invoice.payment_failed")
    assert (first["data"]["attempt"], last["data"]["attempt"]) == (1, 2)
    assert first["data"]["failure_code"] == "generic_decline"
    assert first["data"]["failure_message"] == "Your card was declined."
    assert first["data"]["next_payment_attempt_at"] is not None
    assert last["data"]["next_payment_attempt_at"] is None  # retries over: past due
    assert first["data"]["amount_due"] == "49.00"
    assert events("invoice.paid") == []


def test_a_part_payment_is_not_paid_and_the_rest_is(org, no_stripe, make_open_invoice):
    invoice = make_open_invoice(org, "49.00")
    payments.invoice_mark_paid(actor=SYSTEM, invoice=invoice, amount=D("20.00"))
    assert events("invoice.paid") == []
    payments.invoice_mark_paid(actor=SYSTEM, invoice=invoice)
    [paid] = events("invoice.paid")
    assert paid["data"]["amount_paid"] == "49.00"


# --- Alerts, quotas and anomalies -------------------------------------------------------------
def test_usage_and_spend_thresholds_emit_threshold_reached(org, catalog):
    subscribe(org, "pro", now=at(2026, 1, 1))
    usage = alert_threshold_create(
        actor=SYSTEM, organization=org, kind="usage", value="1000", meter_code="requests"
    )
    spend = alert_threshold_create(actor=SYSTEM, organization=org, kind="spend", value="10")
    record(org, "requests", 1200, at(2026, 1, 7))
    assert len(alerts_check(organization=org, now=at(2026, 1, 8)).fired) == 2
    alerts_check(organization=org, now=at(2026, 1, 9))  # fired already this period
    by_threshold = {
        body["data"]["threshold"]: body["data"] for body in events("usage.threshold_reached")
    }
    assert set(by_threshold) == {str(usage.id), str(spend.id)}
    assert by_threshold[str(usage.id)] | {"alert": None, "fired_at": None} == {
        "alert": None,
        "source": "threshold",
        "kind": "usage",
        "threshold": str(usage.id),
        "meter": "requests",
        "value": "1200",
        "limit": "1000",
        "currency": None,
        "period_start": "2026-01-01T00:00:00Z",
        "fired_at": None,
    }
    spent = by_threshold[str(spend.id)]
    assert (spent["kind"], spent["meter"], spent["currency"]) == ("spend", None, "USD")
    assert D(spent["value"]) >= D(10)


def test_a_soft_quota_crossing_emits_threshold_reached(org, catalog):
    record(org, "requests", 5_000_100, at(2026, 1, 20))
    record_crossing(
        get_redis(),
        organization_id=str(org.id),
        meter="requests",
        period_start=at(2026, 1, 1),
        limit=5_000_000,
    )
    assert quota_crossings_consume(get_redis()) == 1
    [reached] = events("usage.threshold_reached")
    assert (reached["data"]["source"], reached["data"]["threshold"]) == ("soft_quota", None)
    assert (reached["data"]["kind"], reached["data"]["limit"]) == ("usage", "5000000")


@pytest.fixture
def gate(meters):
    django_cache.clear()
    ensure_demo_catalog(actor=SYSTEM)
    key_services.api_version_create(
        actor=SYSTEM, product_code="documents", version="v1", document=DOCUMENT
    )
    return make_gate()


def test_a_hard_quota_refusal_is_reported_once_and_emits_quota_exhausted(gate, org, other_org):
    key = ApiKeyFactory(
        project=ProjectFactory(organization=org), environment="live", scopes=["read"]
    )
    client = get_redis()
    start, end = current_period(entitlements_for(org.id), timezone.now())
    client.set(quota_key(org.id, "requests", start), 10_000)  # the Free plan's hard quota
    assert call(gate, key).code == "quota_exhausted"
    assert call(gate, key).code == "quota_exhausted"
    import keys.gate

    keys.gate._exhaustions_reported.clear()  # another process: the shared flag still holds
    assert call(make_gate(), key).code == "quota_exhausted"
    [(_id, entry)] = client.xrange(CROSSINGS_KEY)
    assert entry[b"behaviour"] == b"hard" and entry[b"meter"] == b"requests"

    # Reported again (the gate's flag lost with Redis): still one event.
    client.xadd(CROSSINGS_KEY, entry)
    assert quota_crossings_consume(client) == 2
    [exhausted] = events("quota.exhausted")
    assert exhausted["organization"] == str(org.id) and exhausted["environment"] == "live"
    assert exhausted["data"]["meter"] == "requests"
    assert (exhausted["data"]["limit"], exhausted["data"]["used"]) == ("10000", "10000")
    assert exhausted["data"]["period_start"] == start.isoformat().replace("+00:00", "Z")
    assert exhausted["data"]["period_end"] == end.isoformat().replace("+00:00", "Z")
    assert events("usage.threshold_reached") == []  # a hard quota is not a soft alert
    assert not Event.objects.filter(organization=other_org).exists()


def test_allowed_calls_under_a_hard_quota_report_nothing(gate, org):
    key = ApiKeyFactory(
        project=ProjectFactory(organization=org), environment="live", scopes=["read"]
    )
    assert call(gate, key).allowed
    assert get_redis().xlen(CROSSINGS_KEY) == 0


def test_a_call_too_big_for_what_is_left_does_not_exhaust_the_quota(gate, org):
    key = ApiKeyFactory(
        project=ProjectFactory(organization=org), environment="live", scopes=["read"]
    )
    start, _end = current_period(entitlements_for(org.id), timezone.now())
    get_redis().set(quota_key(org.id, "requests", start), 9_997)
    assert call(gate, key, cost=5).code == "quota_exhausted"
    assert get_redis().xlen(CROSSINGS_KEY) == 0  # 3 left: smaller calls still pass
    assert call(gate, key, cost=3).allowed
    assert call(gate, key).code == "quota_exhausted"
    assert get_redis().xlen(CROSSINGS_KEY) == 1


def test_an_anomaly_emits_an_event(org, meters):
    steady = [950, 1000, 1050] * 9 + [1000]
    day = at(2026, 11, 3).date()
    quantities = [*steady, 12_400]
    first = day - timedelta(days=len(quantities) - 1)
    usage_ingest(
        events=[
            {
                "id": f"day-{offset}",
                "meter": "requests",
                "customer": org.slug,
                "quantity": quantity,
                "timestamp": datetime.combine(
                    first + timedelta(days=offset), datetime.min.time(), tzinfo=UTC
                ).isoformat(),
            }
            for offset, quantity in enumerate(quantities)
        ]
    )
    [anomaly] = anomalies_detect(day=day)
    assert anomalies_detect(day=day) == []
    [detected] = events("usage.anomaly_detected")
    assert detected["organization"] == str(org.id)
    assert detected["data"]["anomaly"] == str(anomaly.id)
    assert (detected["data"]["day"], detected["data"]["observed"]) == ("2026-11-03", "12400")
    assert detected["data"]["explanation"] == anomaly.explanation


# --- The checker itself -----------------------------------------------------------------------
def test_the_checker_catches_a_payload_that_breaks_its_schema(org):
    Event.objects.create(
        organization=org,
        type="key.revoked",
        payload={
            "id": "msg_00000000000000000000000000000000",
            "type": "key.revoked",
            "version": 1,
            "created_at": "2026-11-05T08:00:00Z",
            "organization": str(org.id),
            "environment": "live",
            "data": {"id": "k", "prefix": "tg_live_x", "revoked_at": "yesterday"},
        },
    )
    with pytest.raises(AssertionError):
        assert_events_match_the_catalog()
    Event.objects.all().delete()


def test_events_of_one_org_never_name_another(org, other_org, catalog):
    subscribe(org, "pro")
    subscribe(other_org, "pro")
    for organization in (org, other_org):
        [body] = events("subscription.created", organization)
        assert body["organization"] == str(organization.id)
