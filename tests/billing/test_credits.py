"""Prepaid credit: grants, and rollover of unused credit into the next period up to a cap."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.credits import credit_grant_create, credits_roll_over
from billing.demo_catalog import ensure_demo_catalog
from billing.models import CreditGrant, Plan
from billing.subscriptions import credits_available, subscription_subscribe
from common.errors import InvalidInput
from portal.audit import Actor
from portal.models import AuditLogEntry

SYSTEM = Actor.system("test")
D = Decimal
PERIOD_END = datetime(2026, 12, 1, tzinfo=UTC)


def create(org, amount="100.00", **extra) -> CreditGrant:
    return credit_grant_create(
        actor=SYSTEM, organization=org, amount=D(amount), currency="USD", **extra
    )


def rolling(org, amount="100.00", cap=None, expires_at=PERIOD_END) -> CreditGrant:
    return create(org, amount, expires_at=expires_at, rolls_over=True, rollover_cap=cap)


def spend(grant: CreditGrant, amount: str) -> None:
    """What an invoice will do: draw on the grant."""
    grant.remaining -= D(amount)
    grant.save(update_fields=["remaining"])


def roll(org, period_end=PERIOD_END) -> list[CreditGrant]:
    return credits_roll_over(actor=SYSTEM, organization=org, period_end=period_end)


# --- Granting -------------------------------------------------------------------------------
def test_a_grant_starts_with_its_whole_amount_and_is_audited(org):
    grant = create(org, "250.00", reason="Onboarding credit")
    assert (grant.amount, grant.remaining, grant.currency) == (D("250.00"), D("250.00"), "USD")
    entry = AuditLogEntry.objects.get(action="credit.granted", target_id=str(grant.pk))
    assert entry.organization == org
    assert entry.changes["amount"] == "250.00"


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"amount": D(0)}, "amount"),
        ({"amount": D(-5)}, "amount"),
        ({"amount": D("1.005")}, "amount"),  # more digits than USD has
        ({"amount": "ten"}, "amount"),
        ({"amount": 1.5}, "amount"),  # a float is never money
        ({"amount": D("1e20")}, "amount"),
        ({"currency": "XXX"}, "currency"),
        ({"rolls_over": True}, "expires_at"),  # rolls over when it expires: needs an expiry
        ({"rollover_cap": D(10), "expires_at": PERIOD_END}, "rollover_cap"),  # not rolling
        ({"expires_at": datetime(2026, 12, 1)}, "expires_at"),  # no time zone
        (
            {"rolls_over": True, "expires_at": PERIOD_END, "rollover_cap": D(-1)},
            "rollover_cap",
        ),
    ],
)
def test_bad_grants_are_refused_and_nothing_is_stored(org, arguments, field):
    with pytest.raises(InvalidInput) as raised:
        credit_grant_create(
            actor=SYSTEM, organization=org, **{"amount": D(10), "currency": "USD", **arguments}
        )
    assert raised.value.field == field
    assert not CreditGrant.objects.exists()
    assert not AuditLogEntry.objects.filter(action="credit.granted").exists()


def test_yen_credit_is_in_whole_yen(org):
    grant = credit_grant_create(actor=SYSTEM, organization=org, amount=D(500), currency="JPY")
    assert grant.amount == D(500)
    with pytest.raises(InvalidInput):
        credit_grant_create(actor=SYSTEM, organization=org, amount=D("0.5"), currency="JPY")


# --- Rolling over ---------------------------------------------------------------------------
def test_unused_credit_rolls_over_up_to_the_cap(org):
    old = rolling(org, "100.00", cap=D("20.00"))
    spend(old, "70.00")  # 30.00 left

    [new] = roll(org)

    assert (new.amount, new.remaining, new.currency) == (D("20.00"), D("20.00"), "USD")
    assert new.rolled_over_from == old
    assert new.granted_at == PERIOD_END
    assert new.expires_at == datetime(2027, 1, 1, tzinfo=UTC)  # one (monthly) period later
    assert not new.rolls_over  # rolled-over credit does not roll again
    old.refresh_from_db()
    # The old grant keeps only what expired with it (above the cap): 30 - 20.
    assert (old.amount, old.remaining, old.expires_at) == (D("100.00"), D("10.00"), PERIOD_END)
    moved = AuditLogEntry.objects.get(action="credit.rolled_over", target_id=str(old.pk))
    assert (moved.changes["moved"], moved.changes["forfeited"]) == ("20.00", "10.00")
    assert AuditLogEntry.objects.filter(action="credit.granted", target_id=str(new.pk)).exists()


def test_without_a_cap_all_unused_credit_rolls_over(org):
    old = rolling(org, "100.00")
    spend(old, "60.00")
    [new] = roll(org)
    assert new.amount == D("40.00")
    old.refresh_from_db()
    assert old.remaining == 0


def test_rolling_over_twice_moves_the_credit_once(org):
    old = rolling(org, "100.00", cap=D("20.00"))
    assert len(roll(org)) == 1
    assert roll(org) == []
    assert CreditGrant.objects.filter(rolled_over_from=old).count() == 1
    assert AuditLogEntry.objects.filter(action="credit.rolled_over").count() == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda org: create(org, expires_at=PERIOD_END),  # does not roll over: it lapses
        lambda org: rolling(org, expires_at=PERIOD_END + timedelta(seconds=1)),  # not yet due
        lambda org: spend(rolling(org), "100.00"),  # nothing left
        lambda org: rolling(org, cap=D(0)),  # a zero cap: nothing may move
    ],
    ids=["not-rolling", "expires-later", "used-up", "zero-cap"],
)
def test_nothing_rolls_over_that_should_not(org, make):
    make(org)
    before = list(CreditGrant.objects.values_list("id", "remaining"))
    assert roll(org) == []
    assert list(CreditGrant.objects.values_list("id", "remaining")) == before


def test_a_grant_that_expired_before_the_period_end_still_rolls_over(org):
    rolling(org, expires_at=PERIOD_END - timedelta(days=3))
    [new] = roll(org)
    assert new.amount == D("100.00")


def test_rolling_over_touches_only_the_given_organization(org, other_org):
    rolling(other_org)
    assert roll(org) == []
    assert not CreditGrant.objects.filter(rolled_over_from__isnull=False).exists()


def test_rolled_over_credit_expires_at_the_end_of_the_subscriptions_next_period(org, meters):
    # Anniversary billing from Jan 31: the period ending Feb 28 is followed by one ending
    # Mar 31 (not Mar 28).
    ensure_demo_catalog(actor=SYSTEM)
    subscription_subscribe(
        actor=SYSTEM,
        organization=org,
        plan=Plan.objects.get(code="free"),
        now=datetime(2027, 1, 31, tzinfo=UTC),
    )
    february_end = datetime(2027, 2, 28, tzinfo=UTC)
    rolling(org, expires_at=february_end)
    [new] = roll(org, february_end)
    assert new.expires_at == datetime(2027, 3, 31, tzinfo=UTC)


def test_rolled_over_credit_counts_for_the_next_period_and_not_twice(org):
    old = rolling(org, "100.00", cap=D("20.00"))
    spend(old, "70.00")
    next_end = datetime(2027, 1, 1, tzinfo=UTC)
    # Before the rollover, this period's bill may use the 30.00 left.
    assert credits_available(org, "USD", PERIOD_END) == D("30.00")
    roll(org)
    # The period that ends at PERIOD_END is closed by then; the next one gets the 20.00.
    assert credits_available(org, "USD", next_end) == D("20.00")


def test_a_period_end_without_a_time_zone_is_refused(org):
    with pytest.raises(InvalidInput):
        credits_roll_over(actor=SYSTEM, organization=org, period_end=datetime(2026, 12, 1))
