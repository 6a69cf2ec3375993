"""Bill simulation: past periods re-priced on another plan with the shared engine, the
actual side priced like the preview, bad input refused with stable codes, tenants apart."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from billing.catalog import plan_create
from billing.demo_catalog import ensure_demo_catalog
from billing.ingest import usage_ingest
from billing.models import AddOn, Plan, Subscription, SubscriptionAddOn, SubscriptionPhase
from billing.simulations import simulate
from billing.subscriptions import (
    subscription_add_addon,
    subscription_change_plan,
    subscription_preview,
    subscription_subscribe,
)
from common.errors import InvalidInput, NotFound
from common.problems import PROBLEM_CONTENT_TYPE
from portal.audit import Actor
from portal.models import Organization
from portal.roles import Role
from tests.conftest import bearer_client
from tests.factories import ApiTokenFactory, MembershipFactory

SYSTEM = Actor.system("test")
D = Decimal
SIMULATIONS = "/api/v1/simulations"


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def catalog(meters):
    ensure_demo_catalog(actor=SYSTEM)
    Plan.objects.update(trial_days=0)


@pytest.fixture(autouse=True)
def old_usage_allowed(settings):
    settings.USAGE_LATE_ARRIVAL_DAYS = 3650


def plan(code: str) -> Plan:
    return Plan.objects.get(code=code)


def subscribe(org, code: str, now: datetime) -> Subscription:
    return subscription_subscribe(actor=SYSTEM, organization=org, plan=plan(code), now=now)


def record(org, meter: str, quantity, when: datetime) -> None:
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


@pytest.fixture
def three_months_on_pro(org, catalog):
    """Pro from 1 January: 1M requests in January, 2M in February, none in March."""
    subscribe(org, "pro", at(2026, 1, 1))
    record(org, "requests", 1_000_000, at(2026, 1, 10))
    record(org, "requests", 2_000_000, at(2026, 2, 10))
    return org


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["request_id"] == response["X-Request-Id"]
    return body


# --- The service -----------------------------------------------------------------------------
def test_the_last_three_periods_are_priced_both_ways(three_months_on_pro):
    result = simulate(
        organization=three_months_on_pro, plan=plan("business"), periods=3, now=at(2026, 4, 15)
    )
    assert [(p.start, p.end, p.partial) for p in result.periods] == [
        (at(2026, 1, 1), at(2026, 2, 1), False),
        (at(2026, 2, 1), at(2026, 3, 1), False),
        (at(2026, 3, 1), at(2026, 4, 1), False),
    ]
    # Pro: 49.00 + 10,000 free, 0.0004 to 1M billable, 0.0002 beyond.
    assert [p.actual.total for p in result.periods] == [D("445.00"), D("647.00"), D("49.00")]
    # Business: 499.00 + 100,000 free, then 0.0003.
    assert [p.simulated.total for p in result.periods] == [D("769.00"), D("1069.00"), D("499.00")]
    assert [p.difference for p in result.periods] == [D("324.00"), D("422.00"), D("450.00")]
    assert (result.actual_total, result.simulated_total, result.difference) == (
        D("1141.00"),
        D("2337.00"),
        D("1196.00"),
    )
    assert {p.simulated.plan for p in result.periods} == {"business"}


def test_with_fewer_closed_periods_the_current_one_is_included_as_partial(org, catalog):
    subscribe(org, "pro", at(2026, 3, 10))
    record(org, "requests", 20_000, at(2026, 4, 12))
    result = simulate(organization=org, plan=plan("business"), periods=3, now=at(2026, 4, 15))
    assert [(p.start, p.end, p.partial) for p in result.periods] == [
        (at(2026, 3, 10), at(2026, 4, 10), False),
        (at(2026, 4, 10), at(2026, 5, 10), True),
    ]
    assert result.periods[1].actual.total == D("53.00")  # 49.00 + 10,000 billable x 0.0004


def test_the_current_period_is_priced_as_the_preview_prices_it(org, catalog):
    """Phases, proration and the version in force when usage happened: the actual side is
    the preview's own segments (with no coupon or credit, the totals are equal)."""
    subscription = subscribe(org, "pro", at(2026, 1, 1))
    record(org, "requests", 500_000, at(2026, 1, 5))
    subscription_change_plan(
        actor=SYSTEM, subscription=subscription, plan=plan("business"), now=at(2026, 1, 11)
    )
    record(org, "requests", 300_000, at(2026, 1, 20))
    now = at(2026, 1, 25)
    [period] = simulate(organization=org, plan=plan("pro"), periods=1, now=now).periods
    assert period.partial
    preview = subscription_preview(subscription=subscription, now=now)
    assert period.actual.total == preview.to_date.total
    assert [line.kind for line in period.actual.lines].count("base_fee") == 2
    # On Pro for the whole period: 49.00 + (800,000 - 10,000) x 0.0004 = 365.00.
    assert period.simulated.total == D("365.00")


def test_add_ons_held_during_a_period_count_on_both_sides(org, catalog):
    subscription = subscribe(org, "pro", at(2026, 1, 1))
    addon = AddOn.objects.filter(currency="USD").exclude(price=0).first()
    item = subscription_add_addon(actor=SYSTEM, subscription=subscription, addon=addon)
    SubscriptionAddOn.objects.filter(pk=item.pk).update(added_at=at(2026, 2, 5))
    january, february = simulate(
        organization=org, plan=plan("business"), periods=2, now=at(2026, 3, 15)
    ).periods
    assert [line.kind for line in january.actual.lines].count("addon") == 0
    assert [line.kind for line in february.actual.lines].count("addon") == 1
    assert [line.kind for line in february.simulated.lines].count("addon") == 1
    assert february.actual.total == D("49.00") + addon.price
    assert january.difference == february.difference == D("450.00")  # the base fees only


def test_without_a_subscription_the_free_plan_is_compared_by_calendar_month(org, catalog):
    Organization.objects.filter(pk=org.pk).update(created_at=at(2026, 1, 15))
    org.refresh_from_db()
    record(org, "requests", 30_000, at(2026, 2, 3))
    result = simulate(organization=org, plan=plan("pro"), periods=12, now=at(2026, 4, 15))
    assert [(p.start, p.partial) for p in result.periods] == [
        (at(2026, 1, 1), False),
        (at(2026, 2, 1), False),
        (at(2026, 3, 1), False),
        (at(2026, 4, 1), True),
    ]
    assert {p.actual.plan for p in result.periods} == {"free"}
    assert result.actual_total == 0
    assert result.periods[1].simulated.total == D("57.00")  # 49.00 + 20,000 x 0.0004


def test_simulating_changes_nothing(three_months_on_pro):
    before = (Subscription.objects.count(), list(SubscriptionPhase.objects.values_list("id")))
    simulate(organization=three_months_on_pro, plan=plan("business"), now=at(2026, 4, 15))
    assert (
        Subscription.objects.count(),
        list(SubscriptionPhase.objects.values_list("id")),
    ) == before


@pytest.mark.parametrize("periods", [0, 13, -1, "3", 2.5, D("2"), True, None])
def test_periods_must_be_a_whole_number_from_1_to_12(three_months_on_pro, periods):
    with pytest.raises(InvalidInput) as error:
        simulate(organization=three_months_on_pro, plan=plan("business"), periods=periods)
    assert (error.value.code, error.value.field) == ("invalid_periods", "periods")


def test_a_plan_in_another_currency_or_interval_cannot_be_compared(three_months_on_pro):
    euro = plan_create(actor=SYSTEM, body={"code": "euro", "name": "Euro", "currency": "EUR"})
    yearly = plan_create(
        actor=SYSTEM, body={"code": "yearly", "name": "Yearly", "interval": "year"}
    )
    with pytest.raises(InvalidInput) as error:
        simulate(organization=three_months_on_pro, plan=euro)
    assert error.value.code == "currency_mismatch"
    with pytest.raises(InvalidInput) as error:
        simulate(organization=three_months_on_pro, plan=yearly)
    assert error.value.code == "interval_mismatch"


def test_without_a_subscription_or_a_free_plan_there_is_nothing_to_compare(org, meters):
    other = plan_create(actor=SYSTEM, body={"code": "solo", "name": "Solo", "base_fee": "5"})
    with pytest.raises(NotFound) as error:
        simulate(organization=org, plan=other)
    assert error.value.code == "no_subscription"


# --- The API ---------------------------------------------------------------------------------
@pytest.fixture
def frozen_now(monkeypatch):
    import billing.simulations

    monkeypatch.setattr(billing.simulations.timezone, "now", lambda: at(2026, 4, 15))


@pytest.mark.usefixtures("frozen_now")
def test_the_api_answers_each_period_and_the_totals(api, three_months_on_pro):
    response = api.post(SIMULATIONS, {"plan": "business"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {
        "plan",
        "version",
        "currency",
        "as_of",
        "periods",
        "actual_total",
        "simulated_total",
        "difference",
    }
    assert (body["plan"], body["currency"]) == ("business", "USD")
    assert (body["actual_total"], body["simulated_total"], body["difference"]) == (
        "1141.00",
        "2337.00",
        "1196.00",
    )
    first = body["periods"][0]
    assert (first["start"], first["end"], first["partial"]) == (
        "2026-01-01T00:00:00Z",
        "2026-02-01T00:00:00Z",
        False,
    )
    assert (first["actual"]["plan"], first["actual"]["total"]) == ("pro", "445.00")
    assert (first["simulated"]["plan"], first["simulated"]["total"]) == ("business", "769.00")
    assert first["difference"] == "324.00"
    usage = [line for line in first["simulated"]["lines"] if line["meter"] == "requests"]
    assert usage[0]["quantity"] == "1000000"
    one = api.post(SIMULATIONS, {"plan": "business", "periods": 1}, format="json").json()
    assert [period["start"] for period in one["periods"]] == ["2026-03-01T00:00:00Z"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"plan": "nope"}, 404, "unknown_plan"),
        ({"plan": None}, 404, "unknown_plan"),
        ({"plan": 5}, 404, "unknown_plan"),
        ({}, 404, "unknown_plan"),
        ({"plan": "business", "periods": 0}, 400, "invalid_periods"),
        ({"plan": "business", "periods": 13}, 400, "invalid_periods"),
        ({"plan": "business", "periods": "3"}, 400, "invalid_periods"),
        ({"plan": "business", "periods": 2.0}, 400, "invalid_periods"),
        ({"plan": "business", "periods": True}, 400, "invalid_periods"),
        ({"plan": "business", "periods": None}, 400, "invalid_periods"),
        (["business"], 400, "validation_error"),
    ],
)
def test_bad_simulations_are_problems(api, three_months_on_pro, body, status, code):
    assert_problem(api.post(SIMULATIONS, body, format="json"), status, code)


def test_a_malformed_body_is_a_problem(api, three_months_on_pro):
    response = api.post(SIMULATIONS, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE


def test_a_plan_in_another_currency_is_a_problem(api, admin_api, three_months_on_pro):
    created = admin_api.post(
        "/api/v1/plans", {"code": "euro", "name": "Euro", "currency": "EUR"}, format="json"
    )
    assert created.status_code == 201
    assert_problem(api.post(SIMULATIONS, {"plan": "euro"}, format="json"), 400, "currency_mismatch")


def test_private_plans_are_for_operators_only(api, admin_api, three_months_on_pro):
    Plan.objects.filter(code="business").update(public=False)
    assert_problem(api.post(SIMULATIONS, {"plan": "business"}, format="json"), 404, "unknown_plan")
    response = admin_api.post(
        SIMULATIONS, {"plan": "business", "organization": "acme"}, format="json"
    )
    assert response.status_code == 200, response.content


def test_operators_name_an_existing_organization(admin_api, three_months_on_pro):
    assert_problem(
        admin_api.post(SIMULATIONS, {"plan": "business"}, format="json"), 400, "validation_error"
    )
    assert_problem(
        admin_api.post(SIMULATIONS, {"plan": "business", "organization": "nobody"}, format="json"),
        404,
        "not_found",
    )
    by_id = admin_api.post(
        SIMULATIONS,
        {"plan": "business", "organization": str(three_months_on_pro.id)},
        format="json",
    )
    assert by_id.status_code == 200


def test_an_org_token_only_ever_simulates_its_own_organization(
    other_api, three_months_on_pro, other_org
):
    """The other org has no subscription; naming acme changes nothing."""
    response = other_api.post(
        SIMULATIONS, {"plan": "pro", "organization": "acme", "periods": 1}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["periods"][0]["actual"]["plan"] == "free"
    assert response.json()["actual_total"] == "0.00"


def test_a_token_without_billing_scopes_cannot_simulate(org, three_months_on_pro):
    client = bearer_client(ApiTokenFactory(organization=org, scopes=["keys:read"]))
    assert_problem(
        client.post(SIMULATIONS, {"plan": "business"}, format="json"), 403, "insufficient_scope"
    )
    reader = bearer_client(ApiTokenFactory(organization=org, scopes=["billing:read"]))
    assert reader.post(SIMULATIONS, {"plan": "business"}, format="json").status_code == 200


# --- The portal ------------------------------------------------------------------------------
def simulate_url(org) -> str:
    return reverse("org_billing:simulate", kwargs={"slug": org.slug})


def test_the_simulate_page_shows_the_table(client, owner, three_months_on_pro, frozen_now):
    client.force_login(owner)
    page = client.get(simulate_url(three_months_on_pro))
    assert page.status_code == 200 and b'id="simulation"' not in page.content
    page = client.get(simulate_url(three_months_on_pro), {"plan": "business", "periods": 3})
    assert page.status_code == 200
    content = page.content.decode()
    assert "$1,141.00" in content and "$2,337.00" in content and "+$1,196.00" in content
    billing_page = client.get(reverse("org_billing:overview", kwargs={"slug": "acme"}))
    assert simulate_url(three_months_on_pro) in billing_page.content.decode()


def test_the_simulate_page_shows_bad_input_next_to_the_form(client, owner, three_months_on_pro):
    client.force_login(owner)
    page = client.get(simulate_url(three_months_on_pro), {"plan": "business", "periods": 13})
    assert page.status_code == 200
    assert b'id="simulation"' not in page.content
    assert b"errors" in page.content


def test_viewers_may_simulate_and_strangers_get_404(client, three_months_on_pro, other_org):
    viewer = MembershipFactory(organization=three_months_on_pro, role=Role.VIEWER).user
    client.force_login(viewer)
    assert client.get(simulate_url(three_months_on_pro), {"plan": "business"}).status_code == 200
    assert client.get(simulate_url(other_org), {"plan": "business"}).status_code == 404
