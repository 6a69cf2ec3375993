"""Invoices through the API and the portal: scoping, the documented shape, evidence CSV that
sums to the line, operator actions, billing details, and bad input as problem+json."""

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.catalog import plan_create
from billing.ingest import usage_ingest
from billing.invoicing import billing_run
from billing.models import BillingProfile, Invoice
from billing.subscriptions import subscription_subscribe
from portal.audit import Actor
from portal.roles import Role
from tests.conftest import bearer_client
from tests.factories import ApiTokenFactory, MembershipFactory

SYSTEM = Actor.system("test")
D = Decimal


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _old_usage(settings):
    settings.USAGE_LATE_ARRIVAL_DAYS = 3650


@pytest.fixture
def plan(meters):
    return plan_create(
        actor=SYSTEM,
        body={
            "code": "metered",
            "name": "Metered",
            "base_fee": "10.00",
            "charges": [{"meter": "requests", "model": "per_unit", "unit_amount": "0.01"}],
        },
    )


def record(org, quantity, when, ident, endpoint=""):
    event = {
        "id": ident,
        "meter": "requests",
        "customer": org.slug,
        "quantity": str(quantity),
        "timestamp": when.isoformat(),
    }
    assert usage_ingest(events=[event]).accepted == 1


@pytest.fixture
def invoices(org, other_org, plan):
    """acme: a January invoice (issued) and a February draft; globex: one issued invoice."""
    subscription_subscribe(actor=SYSTEM, organization=org, plan=plan, now=at(2026, 1, 1))
    subscription_subscribe(actor=SYSTEM, organization=other_org, plan=plan, now=at(2026, 1, 1))
    record(org, 100, at(2026, 1, 5), "a1")
    record(org, 250, at(2026, 1, 20), "a2")
    record(other_org, 7, at(2026, 1, 9), "g1")
    billing_run(as_of=at(2026, 2, 2))
    billing_run(as_of=at(2026, 3, 1, 0, 30))  # closes February, still in its grace hour
    return Invoice.objects.filter(organization=org).order_by("period_start")


def test_org_token_lists_its_invoices_with_drafts_as_upcoming(api, invoices):
    response = api.get("/api/v1/invoices")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [i["status"] for i in results] == ["upcoming", "open"]
    january = results[1]
    assert january["number"] == invoices[0].number and january["number"].startswith("INV-2026-0")
    assert set(january) >= {
        "id", "number", "status", "customer", "currency", "period_start", "period_end", "lines",
        "subtotal", "discount", "credits", "tax", "total", "issued_at", "due_at",
    }  # fmt: skip
    assert january["total"] == "13.50"
    usage = next(line for line in january["lines"] if line["kind"] == "usage")
    assert usage["quantity"] == "350" and usage["amount"] == "3.50" and usage["meter"] == "requests"
    assert set(usage) >= {"kind", "description", "meter", "quantity", "amount", "tiers"}
    assert usage["evidence_url"].startswith("http://testserver/api/v1/invoices/")


def test_evidence_csv_holds_exactly_the_billed_ledger_rows(api, invoices):
    january = api.get(f"/api/v1/invoices/{invoices[0].pk}").json()
    usage = next(line for line in january["lines"] if line["kind"] == "usage")
    response = api.get(usage["evidence_url"])
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted(row["event_id"] for row in rows) == ["a1", "a2"]
    assert sum(D(row["quantity"]) for row in rows) == D(usage["quantity"])
    query = api.get(usage["usage_query_url"])
    assert query.status_code == 200


def test_another_orgs_invoice_is_not_found(api, other_api, invoices):
    invoice = invoices[0]
    assert other_api.get(f"/api/v1/invoices/{invoice.pk}").status_code == 404
    line = invoice.lines.filter(kind="usage").first()
    evidence = other_api.get(f"/api/v1/invoices/{invoice.pk}/lines/{line.pk}/evidence.csv")
    assert evidence.status_code == 404
    theirs = other_api.get("/api/v1/invoices").json()["results"]
    assert {i["customer"]["slug"] for i in theirs} == {"globex"}


def test_operator_sees_every_customer_and_drafts_as_drafts(admin_api, invoices, org):
    everything = admin_api.get("/api/v1/invoices").json()["results"]
    assert len(everything) == 4
    only_acme = admin_api.get("/api/v1/invoices", {"customer": "acme"}).json()["results"]
    assert [i["status"] for i in only_acme] == ["draft", "open"]
    drafts = admin_api.get("/api/v1/invoices", {"status": "draft"}).json()["results"]
    assert len(drafts) == 2


def test_tokens_without_the_scope_are_refused(org, invoices):
    token = ApiTokenFactory(organization=org, scopes=["usage:read"])
    response = bearer_client(token).get("/api/v1/invoices")
    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "query,code", [({"status": "late"}, "invalid_status"), ({"cursor": "zzz"}, None)]
)
def test_bad_list_queries_are_problems(api, invoices, query, code):
    response = api.get("/api/v1/invoices", query)
    assert response.status_code in (400, 404)
    assert response["Content-Type"].startswith("application/problem+json")
    if code:
        assert response.json()["code"] == code


def test_operator_actions_and_their_refusals(admin_api, api, invoices):
    january, february = invoices
    url = f"/api/v1/invoices/{january.pk}"
    refused = admin_api.post(f"{url}/credit-notes", {"amount": "100", "reason": "x"}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "credit_exceeds_invoice"
    bad = admin_api.post(f"{url}/credit-notes", {"amount": "abc", "reason": "x"}, format="json")
    assert bad.status_code == 400
    note = admin_api.post(f"{url}/credit-notes", {"amount": "3.50", "reason": "SLA"}, format="json")
    assert note.status_code == 201 and note.json()["amount_due"] == "10.00"
    # Customers cannot act on invoices.
    assert api.post(f"{url}/void").status_code == 403
    finalized = admin_api.post(f"/api/v1/invoices/{february.pk}/finalize")
    assert finalized.status_code == 200 and finalized.json()["number"] == "INV-2026-000003"
    again = admin_api.post(f"/api/v1/invoices/{february.pk}/finalize")
    assert again.status_code == 409
    voided = admin_api.post(f"/api/v1/invoices/{february.pk}/void")
    assert voided.status_code == 200 and voided.json()["status"] == "void"
    assert admin_api.post(f"/api/v1/invoices/{february.pk}/void").status_code == 409


def test_billing_profile_api_validates_and_scopes(api, other_api, org):
    response = api.patch(
        "/api/v1/billing-profile",
        {"country": "de", "tax_id": "DE1", "timezone": "Europe/Berlin"},
        format="json",
    )
    assert response.status_code == 200 and response.json()["country"] == "DE"
    for body, field in (
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"country": "Germany"}, "country"),
        ({"billing_email": "nope"}, "billing_email"),
        ({"colour": "red"}, "colour"),
        ({"tax_id": 5}, "tax_id"),
    ):
        refused = api.patch("/api/v1/billing-profile", body, format="json")
        assert refused.status_code == 400, body
        assert refused.json()["errors"][0]["field"] == field
    assert BillingProfile.objects.get(organization=org).timezone == "Europe/Berlin"
    assert other_api.get("/api/v1/billing-profile").json()["country"] == ""


# --- Portal ------------------------------------------------------------------------------------
@pytest.fixture
def member(org):
    return MembershipFactory(organization=org, role=Role.BILLING).user


def test_portal_lists_shows_and_exports_invoices(client, member, invoices, org):
    client.force_login(member)
    page = client.get(f"/o/{org.slug}/billing/invoices/")
    assert page.status_code == 200
    body = page.content.decode()
    january = invoices[0]
    assert january.number in body and "upcoming" in body
    detail = client.get(f"/o/{org.slug}/billing/invoices/{january.pk}/")
    assert detail.status_code == 200 and "$13.50" in detail.content.decode()
    pdf = client.get(f"/o/{org.slug}/billing/invoices/{january.pk}/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    exported = client.get(f"/o/{org.slug}/billing/invoices/?format=csv")
    text = b"".join(exported.streaming_content).decode()
    assert january.number in text and "13.50" in text
    line = january.lines.get(kind="usage")
    evidence = client.get(
        f"/o/{org.slug}/billing/invoices/{january.pk}/lines/{line.pk}/evidence.csv"
    )
    assert b"a1" in b"".join(evidence.streaming_content)


def test_portal_hides_other_orgs_invoices_and_from_developers(
    client, member, other_org, invoices, org
):
    client.force_login(member)
    theirs = Invoice.objects.filter(organization=other_org).first()
    assert client.get(f"/o/{org.slug}/billing/invoices/{theirs.pk}/").status_code == 404
    assert client.get(f"/o/{other_org.slug}/billing/invoices/").status_code in (403, 404)
    developer = MembershipFactory(organization=org, role=Role.DEVELOPER).user
    client.force_login(developer)
    assert client.get(f"/o/{org.slug}/billing/invoices/").status_code == 403


def test_portal_billing_details_form(client, member, org):
    client.force_login(member)
    bad = client.post(f"/o/{org.slug}/billing/details", {"timezone": "Nowhere/Land"})
    assert bad.status_code == 200 and "IANA" in bad.content.decode()
    assert not BillingProfile.objects.filter(organization=org).exists()
    ok = client.post(
        f"/o/{org.slug}/billing/details",
        {"timezone": "Asia/Kolkata", "country": "IN", "legal_name": "Acme India"},
    )
    assert ok.status_code == 302
    assert BillingProfile.objects.get(organization=org).timezone == "Asia/Kolkata"


# --- Credentials: which token kinds and scopes may call each endpoint -----------------------
# (method, path, {token kind: granting scope}, body), counted by tests/portal/test_api.py.
INVOICE_ENDPOINTS = [
    ("get", "/api/v1/invoices", {"org": "invoices:read", "operator": "admin"}, None),
    ("get", "/api/v1/invoices/{invoice}", {"org": "invoices:read", "operator": "admin"}, None),
    (
        "get",
        "/api/v1/invoices/{invoice}/lines/{line}/evidence.csv",
        {"org": "invoices:read", "operator": "admin"},
        None,
    ),
    ("post", "/api/v1/invoices/{invoice}/finalize", {"operator": "admin"}, None),
    ("post", "/api/v1/invoices/{invoice}/void", {"operator": "admin"}, None),
    ("post", "/api/v1/invoices/{invoice}/mark-uncollectible", {"operator": "admin"}, None),
    (
        "post",
        "/api/v1/invoices/{invoice}/credit-notes",
        {"operator": "admin"},
        {"amount": "1", "reason": "test"},
    ),
    ("get", "/api/v1/billing-profile", {"org": "billing:read", "operator": "admin"}, None),
    ("patch", "/api/v1/billing-profile", {"org": "billing:write", "operator": "admin"}, {}),
]
INVOICE_IDS = [f"{method.upper()} {path}" for method, path, _kinds, _body in INVOICE_ENDPOINTS]


def _credential_call(client, method, path, body, invoices):
    invoice = invoices[0]
    line = invoice.lines.get(kind="usage")
    path = path.replace("{invoice}", str(invoice.pk)).replace("{line}", str(line.pk))
    if "billing-profile" in path:
        path += "?customer=acme"
    if method == "get":
        return client.get(path)
    if method == "patch":
        return client.patch(path, body, format="json")
    return client.post(path, body, format="json")


def _states():
    return list(Invoice.objects.order_by("pk").values_list("status", "amount_credited"))


@pytest.mark.parametrize(("method", "path", "kinds", "body"), INVOICE_ENDPOINTS, ids=INVOICE_IDS)
def test_invoice_endpoints_without_a_token_are_401(
    anonymous_api, invoices, method, path, kinds, body
):
    before = _states()
    response = _credential_call(anonymous_api, method, path, body, invoices)
    assert response.status_code == 401 and response.json()["code"] == "authentication_required"
    assert _states() == before


@pytest.mark.parametrize(("method", "path", "kinds", "body"), INVOICE_ENDPOINTS, ids=INVOICE_IDS)
def test_invoice_endpoints_refuse_wrong_kinds_and_scopes(org, invoices, method, path, kinds, body):
    before = _states()
    for kind in ("org", "operator"):
        if kind in kinds:
            scopes = ["keys:read"] if kind == "org" else ["gate:verify"]
            expected = "insufficient_scope"
        else:
            scopes = None
            expected = "wrong_token_kind"
        token = ApiTokenFactory(
            kind=kind,
            organization=org if kind == "org" else None,
            **({"scopes": scopes} if scopes else {}),
        )
        response = _credential_call(bearer_client(token), method, path, body, invoices)
        assert response.status_code == 403, (kind, response.content)
        assert response.json()["code"] == expected
    assert _states() == before


@pytest.mark.parametrize(("method", "path", "kinds", "body"), INVOICE_ENDPOINTS, ids=INVOICE_IDS)
def test_invoice_endpoints_let_the_granting_scope_through(org, invoices, method, path, kinds, body):
    for kind, scope in kinds.items():
        token = ApiTokenFactory(
            kind=kind, organization=org if kind == "org" else None, scopes=[scope]
        )
        response = _credential_call(bearer_client(token), method, path, body, invoices)
        assert response.status_code not in (401, 403, 404), (kind, response.content)


# --- Bad input is a problem, never a 500, and changes nothing ----------------------------------
NUL = "a\u0000b"


@pytest.mark.parametrize(
    "body", [{"actor": "x"}, {"organization": "x"}, {"legal_name": NUL}, {"values": {}}]
)
def test_billing_profile_refuses_odd_fields_and_nul_characters(api, org, body):
    response = api.patch("/api/v1/billing-profile", body, format="json")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    assert not BillingProfile.objects.filter(organization=org).exists()


def test_nul_characters_anywhere_are_problems(api, admin_api, invoices):
    january = invoices[0]
    before = list(Invoice.objects.values_list("pk", "amount_credited", "status"))
    responses = [
        admin_api.post(
            f"/api/v1/invoices/{january.pk}/credit-notes",
            {"amount": "1", "reason": NUL},
            format="json",
        ),
        admin_api.get("/api/v1/invoices", {"customer": "ac\u0000me"}),
        api.post("/api/v1/simulations", {"plan": "pro\u0000"}, format="json"),
        admin_api.get("/api/v1/alerts", {"organization": "ac\u0000me"}),
        api.post(
            "/api/v1/alert-thresholds",
            {"kind": "usage", "meter": "req\u0000", "value": "5"},
            format="json",
        ),
    ]
    for response in responses:
        assert response.status_code in (400, 404), response.content
        assert response["Content-Type"].startswith("application/problem+json")
    assert list(Invoice.objects.values_list("pk", "amount_credited", "status")) == before


def test_a_credit_note_that_rounds_to_nothing_is_refused(admin_api, invoices):
    from billing.models import CreditNote

    response = admin_api.post(
        f"/api/v1/invoices/{invoices[0].pk}/credit-notes",
        {"amount": "0.001", "reason": "rounding"},
        format="json",
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid_amount"
    assert not CreditNote.objects.exists()
