"""The portal's usage page: pooled figures, forecast, breakdowns, CSV, roles and isolation."""

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from billing.ingest import usage_ingest
from billing.models import Meter
from billing.views import current_period, forecast
from portal.roles import Role
from tests.factories import ApiKeyFactory, MembershipFactory, ProjectFactory


@pytest.fixture
def member(client, org):
    def log_in(role=Role.VIEWER):
        membership = MembershipFactory(organization=org, role=role)
        client.force_login(membership.user)
        return membership

    return log_in


def usage_url(org, **params):
    url = reverse("billing:usage", kwargs={"slug": org.slug})
    return url + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


@pytest.mark.parametrize("role", list(Role))
def test_every_member_sees_pooled_usage_of_all_projects(client, member, org, meters, role):
    first, second = ProjectFactory(organization=org), ProjectFactory(organization=org)
    usage_ingest(
        events=[
            {
                "id": "a",
                "meter": "records_processed",
                "customer": org.slug,
                "project": str(first.id),
                "quantity": "40",
            },
            {
                "id": "b",
                "meter": "records_processed",
                "customer": org.slug,
                "project": str(second.id),
                "quantity": "2",
            },
        ]
    )
    member(role)
    response = client.get(usage_url(org, meter="records_processed"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-meter="records_processed">42 ' in html
    assert first.name in html and second.name in html
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org", "")


def test_test_usage_is_shown_apart(client, member, org, meters):
    usage_ingest(
        events=[
            {"id": "live", "meter": "requests", "customer": org.slug},
            {"id": "t1", "meter": "requests", "customer": org.slug, "environment": "test"},
            {"id": "t2", "meter": "requests", "customer": org.slug, "environment": "test"},
        ]
    )
    member()
    live = client.get(usage_url(org, meter="requests")).content.decode()
    test = client.get(usage_url(org, meter="requests", environment="test")).content.decode()
    assert 'data-meter="requests">1 ' in live
    assert 'data-meter="requests">2 ' in test


def test_breakdown_names_keys_and_endpoints(client, member, org, meters):
    key = ApiKeyFactory(
        project=ProjectFactory(organization=org), environment="live", name="checkout"
    )
    usage_ingest(
        events=[
            {"id": "k", "meter": "requests", "api_key": key.raw_key, "endpoint": "GET /v1/orders"}
        ]
    )
    member()
    html = client.get(usage_url(org, meter="requests")).content.decode()
    assert "checkout" in html and "GET /v1/orders" in html


def test_csv_download_holds_the_rows_behind_the_figure(client, member, org, meters):
    usage_ingest(
        events=[
            {"id": f"r{i}", "meter": "records_processed", "customer": org.slug, "quantity": "5"}
            for i in range(3)
        ]
    )
    member()
    response = client.get(
        reverse("billing:usage_csv", kwargs={"slug": org.slug}) + "?meter=records_processed"
    )
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted(row["event_id"] for row in rows) == ["r0", "r1", "r2"]
    assert sum(Decimal(row["quantity"]) for row in rows) == 15


def test_another_orgs_member_gets_404_and_sees_nothing(client, org, other_org, meters):
    usage_ingest(events=[{"id": "x", "meter": "requests", "customer": org.slug}])
    outsider = MembershipFactory(organization=other_org).user
    client.force_login(outsider)
    assert client.get(usage_url(org)).status_code == 404
    csv_url = reverse("billing:usage_csv", kwargs={"slug": org.slug}) + "?meter=requests"
    assert client.get(csv_url).status_code == 404
    own = client.get(usage_url(other_org, meter="requests")).content.decode()
    assert 'data-meter="requests">0 ' in own


def test_anonymous_visitors_are_sent_to_login(client, org):
    response = client.get(usage_url(org))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_forecast_extrapolates_additive_meters_and_holds_gauges(meters):
    start, end = current_period(datetime(2026, 11, 16, tzinfo=UTC))
    assert (start, end) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    halfway = datetime(2026, 11, 16, tzinfo=UTC)
    assert forecast(meters["requests"], Decimal(100), start, end, halfway) == Decimal(200)
    assert forecast(meters["storage_gb"], Decimal(7), start, end, halfway) == Decimal(7)
    assert forecast(meters["requests"], None, start, end, halfway) is None
    assert Meter.objects.count() >= 5


def test_period_follows_the_subscription_anniversary(org, meters):
    from billing.demo_catalog import ensure_demo_catalog
    from billing.models import Plan
    from billing.subscriptions import subscription_subscribe
    from portal.audit import Actor

    ensure_demo_catalog(actor=Actor.system("test"))
    started = datetime(2026, 10, 10, 9, 30, tzinfo=UTC)
    subscription_subscribe(
        actor=Actor.system("test"), organization=org, plan=Plan.objects.get(code="pro"), now=started
    )
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert current_period(now, org) == (
        datetime(2026, 11, 10, 9, 30, tzinfo=UTC),
        datetime(2026, 12, 10, 9, 30, tzinfo=UTC),
    )
    assert current_period(now) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
