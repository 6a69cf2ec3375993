"""Deprecations (DOCS-7, GATE-7): the service marks the target so the gate agrees, the admin
refuses bad input, the public timeline, and the e-mail to organizations that called it."""

import copy
from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.core.cache import cache as django_cache
from django.urls import reverse
from django.utils import timezone

from billing.demo_catalog import ensure_demo_catalog
from billing.ingest import usage_ingest
from billing.models import UsageEvent, UsageRollup
from common.errors import Conflict, InvalidInput
from devdocs import changelog
from devdocs.models import ChangelogEntry, Deprecation, DeprecationNotice
from devdocs.tasks import send_deprecation_notices
from keys.gate_api import process_gate
from keys.models import ApiVersion, Endpoint
from keys.services import api_version_create
from portal.audit import Actor
from portal.models import AuditLogEntry
from portal.roles import Role
from tests.conftest import bearer_client
from tests.factories import (
    ApiKeyFactory,
    ApiTokenFactory,
    MembershipFactory,
    OrganizationFactory,
    ProjectFactory,
    UserFactory,
)
from tests.keys.test_products import DOCUMENT

SYSTEM = Actor.system("test")
VERIFY_URL = "/api/v1/verify"
TIMELINE_URL = "/changelog/deprecations"


def days(count: float) -> timedelta:
    return timedelta(days=count)


@pytest.fixture
def documents(db, meters):
    """The demo plans (the gate needs their entitlements) and documents v1."""
    django_cache.clear()
    ensure_demo_catalog(actor=SYSTEM)
    return api_version_create(
        actor=SYSTEM, product_code="documents", version="v1", document=DOCUMENT
    )


@pytest.fixture
def documents_v2(documents):
    document = copy.deepcopy(DOCUMENT)
    document["servers"] = [{"url": "https://api.example.com/v2"}]
    return api_version_create(
        actor=SYSTEM, product_code="documents", version="v2", document=document
    )


@pytest.fixture
def verifier(documents):
    return bearer_client(
        ApiTokenFactory(kind="operator", organization=None, scopes=["gate:verify"])
    )


def endpoint(version: ApiVersion, operation_id: str) -> Endpoint:
    return version.endpoints.get(operation_id=operation_id)


def verify(client, key, path="/v1/documents/7", method="GET", **extra):
    body = {"key": key.raw_key, "method": method, "path": path, **extra}
    return client.post(VERIFY_URL, body, format="json")


def deprecate(version, target=None, *, sunset_in=90, announced_ago=1, **extra) -> Deprecation:
    now = timezone.now()
    return changelog.deprecation_create(
        actor=SYSTEM,
        api_version=version,
        endpoint=target,
        announced_at=now - days(announced_ago),
        sunset_at=now + days(sunset_in),
        **extra,
    )


def future_announced(version, target, *, in_days: float) -> Deprecation:
    """A row announced in the future, as saved before such announcements were refused (the
    services no longer write one): still hidden and not e-mailed until its time."""
    now = timezone.now()
    return Deprecation.objects.create(
        api_version=version,
        endpoint=target,
        announced_at=now + days(in_days),
        sunset_at=now + days(90),
    )


# --- The service and the gate ------------------------------------------------------------
def test_a_deprecation_marks_the_endpoint_and_the_gate_sends_its_headers(verifier, documents, org):
    get_document = endpoint(documents, "getDocument")
    key = ApiKeyFactory(project=ProjectFactory(organization=org), scopes=["read"])
    assert "Deprecation" not in verify(verifier, key)  # before: a plain endpoint
    process_gate.cache_clear()  # a fresh catalog, as after its refresh interval

    deprecation = deprecate(documents, get_document, replacement="GET /v2/documents/{id}")
    get_document.refresh_from_db()
    assert get_document.deprecated and get_document.sunset_at == deprecation.sunset_at
    assert not endpoint(documents, "listDocuments").deprecated  # only the target
    response = verify(verifier, key)
    assert response.json()["allowed"] is True
    assert response["Deprecation"] == "true"
    assert response["Sunset"] == deprecation.sunset_at.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert response.json()["sunset"] == deprecation.sunset_at.isoformat()
    assert AuditLogEntry.objects.filter(
        action="deprecation.created", target_id=str(deprecation.pk)
    ).exists()


def test_after_the_sunset_the_gate_refuses_the_endpoint(verifier, documents, org):
    get_document = endpoint(documents, "getDocument")
    key = ApiKeyFactory(project=ProjectFactory(organization=org), scopes=["read"])
    deprecation = deprecate(documents, get_document)
    assert verify(verifier, key).json()["code"] == "ok"
    now = timezone.now()
    changelog.deprecation_update(
        actor=SYSTEM,
        deprecation=deprecation,
        api_version=documents,
        endpoint=get_document,
        announced_at=now - days(60),
        sunset_at=now - timedelta(minutes=1),
    )
    process_gate.cache_clear()
    body = verify(verifier, key).json()
    assert (body["allowed"], body["code"]) == (False, "endpoint_sunset")
    other = verify(verifier, key, path="/v1/documents").json()
    assert other["code"] == "ok"  # the rest of the version still works


def test_a_whole_version_deprecation_marks_the_version_and_every_endpoint(documents):
    deprecation = deprecate(documents, sunset_in=30)
    documents.refresh_from_db()
    assert documents.deprecated_at == deprecation.announced_at
    assert documents.sunset_at == deprecation.sunset_at
    marks = {(e.deprecated, e.sunset_at) for e in documents.endpoints.all()}
    assert marks == {(True, deprecation.sunset_at)}


def test_an_endpoint_keeps_the_earliest_sunset_that_covers_it(documents):
    get_document = endpoint(documents, "getDocument")
    whole = deprecate(documents, sunset_in=30)
    own = deprecate(documents, get_document, sunset_in=200)
    get_document.refresh_from_db()
    assert get_document.sunset_at == whole.sunset_at  # the version goes first
    changelog.deprecation_delete(actor=SYSTEM, deprecation=whole)
    get_document.refresh_from_db()
    assert get_document.sunset_at == own.sunset_at
    documents.refresh_from_db()
    assert documents.deprecated_at is None and documents.sunset_at is None


def test_withdrawing_a_deprecation_restores_what_the_document_says(documents):
    delete_document = endpoint(documents, "deleteDocument")  # deprecated in the document
    document_sunset = delete_document.sunset_at
    get_document = endpoint(documents, "getDocument")
    deprecation = deprecate(documents, sunset_in=10)
    changelog.deprecation_delete(actor=SYSTEM, deprecation=deprecation)
    delete_document.refresh_from_db()
    get_document.refresh_from_db()
    assert (delete_document.deprecated, delete_document.sunset_at) == (True, document_sunset)
    assert (get_document.deprecated, get_document.sunset_at) == (False, None)
    assert not ChangelogEntry.objects.filter(kind="deprecated").exists()
    assert AuditLogEntry.objects.filter(action="deprecation.deleted").count() == 1


def test_moving_a_deprecation_to_another_endpoint_unmarks_the_first(documents):
    get_document = endpoint(documents, "getDocument")
    search = endpoint(documents, "searchDocuments")
    deprecation = deprecate(documents, get_document)
    changelog.deprecation_update(
        actor=SYSTEM,
        deprecation=deprecation,
        api_version=documents,
        endpoint=search,
        announced_at=deprecation.announced_at,
        sunset_at=deprecation.sunset_at,
    )
    get_document.refresh_from_db()
    search.refresh_from_db()
    assert not get_document.deprecated and get_document.sunset_at is None
    assert search.deprecated and search.sunset_at == deprecation.sunset_at


@pytest.mark.parametrize(
    ("kwargs", "error", "code"),
    [
        ({"sunset_in": -2, "announced_ago": 1}, InvalidInput, "sunset_before_announcement"),
        ({"sunset_in": -1, "announced_ago": 1}, InvalidInput, "sunset_before_announcement"),
        ({"other_version": True}, InvalidInput, "endpoint_not_in_version"),
        ({"twice": True}, Conflict, "deprecation_exists"),
        ({"announced_ago": -1}, InvalidInput, "announcement_in_future"),
        ({"announced_ago": -0.001}, InvalidInput, "announcement_in_future"),
    ],
)
def test_the_service_refuses_bad_deprecations_and_changes_nothing(
    documents, documents_v2, kwargs, error, code
):
    get_document = endpoint(documents, "getDocument")
    if kwargs.pop("twice", False):
        deprecate(documents, get_document)
    before = Deprecation.objects.count()
    target = (
        endpoint(documents_v2, "getDocument")
        if kwargs.pop("other_version", False)
        else get_document
    )
    fresh_target = Endpoint.objects.get(pk=target.pk)
    with pytest.raises(error) as raised:
        deprecate(documents, target, **kwargs)
    assert raised.value.code == code
    assert Deprecation.objects.count() == before
    target.refresh_from_db()
    assert (target.deprecated, target.sunset_at) == (
        fresh_target.deprecated,
        fresh_target.sunset_at,
    )


# --- Admin ----------------------------------------------------------------------------------
@pytest.fixture
def operator(client, db):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def admin_form(version, target=None, *, announced, sunset, **extra) -> dict:
    return {
        "api_version": str(version.pk),
        "endpoint": str(target.pk) if target else "",
        "announced_at_0": announced.strftime("%Y-%m-%d"),
        "announced_at_1": announced.strftime("%H:%M:%S"),
        "sunset_at_0": sunset.strftime("%Y-%m-%d"),
        "sunset_at_1": sunset.strftime("%H:%M:%S"),
        "replacement": extra.get("replacement", ""),
        "migration_guide": extra.get("migration_guide", ""),
        "notices-TOTAL_FORMS": "0",
        "notices-INITIAL_FORMS": "0",
        "notices-MIN_NUM_FORMS": "0",
        "notices-MAX_NUM_FORMS": "1000",
    }


def test_the_admin_action_e_mails_now_and_the_change_page_lists_the_notices(
    client, operator, callers, documents, org, django_capture_on_commit_callbacks
):
    deprecation = deprecate(documents, endpoint(documents, "getDocument"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:devdocs_deprecation_changelist"),
            {"action": "send_notices_now", "_selected_action": [deprecation.pk]},
        )
    assert response.status_code == 302
    assert len(mail.outbox) == 2
    page = client.get(reverse("admin:devdocs_deprecation_change", args=[deprecation.pk]))
    assert page.status_code == 200
    assert org.name in page.content.decode() and callers["acme"]["owner"] in page.content.decode()


def test_admin_pages_open(client, operator, documents):
    deprecation = deprecate(documents, endpoint(documents, "getDocument"))
    assert client.get(reverse("admin:devdocs_deprecation_changelist")).status_code == 200
    add = client.get(reverse("admin:devdocs_deprecation_add"))
    assert add.status_code == 200
    assert "documents v1 · GET /documents/{id}" in add.content.decode()
    change = client.get(reverse("admin:devdocs_deprecation_change", args=[deprecation.pk]))
    assert change.status_code == 200


def test_admin_creates_a_deprecation_through_the_service(client, operator, documents):
    get_document = endpoint(documents, "getDocument")
    now = timezone.now().replace(microsecond=0)
    response = client.post(
        reverse("admin:devdocs_deprecation_add"),
        admin_form(
            documents,
            get_document,
            announced=now - days(1),
            sunset=now + days(60),
            replacement="GET /v2/documents/{id}",
            migration_guide="Call **v2**.",
        ),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    deprecation = Deprecation.objects.get()
    get_document.refresh_from_db()
    assert get_document.deprecated and get_document.sunset_at == now + days(60)
    assert deprecation.replacement == "GET /v2/documents/{id}"
    assert AuditLogEntry.objects.filter(action="deprecation.created").exists()
    assert ChangelogEntry.objects.get(kind="deprecated").published_at == now - days(1)


def test_admin_edits_go_through_the_service(client, operator, documents):
    get_document = endpoint(documents, "getDocument")
    deprecation = deprecate(documents, get_document)
    later = (timezone.now() + days(120)).replace(microsecond=0)
    response = client.post(
        reverse("admin:devdocs_deprecation_change", args=[deprecation.pk]),
        admin_form(documents, get_document, announced=deprecation.announced_at, sunset=later),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    get_document.refresh_from_db()
    assert get_document.sunset_at == later
    assert AuditLogEntry.objects.filter(action="deprecation.updated").exists()


def test_admin_delete_goes_through_the_service(client, operator, documents):
    get_document = endpoint(documents, "getDocument")
    deprecation = deprecate(documents, get_document)
    response = client.post(
        reverse("admin:devdocs_deprecation_delete", args=[deprecation.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    get_document.refresh_from_db()
    assert not Deprecation.objects.exists() and not get_document.deprecated


@pytest.mark.parametrize(
    ("case", "field", "message"),
    [
        ("sunset_before_announcement", "sunset_at", "after the announcement"),
        ("endpoint_of_another_version", "endpoint", "not of documents v1"),
        ("duplicate", "endpoint", "already has a deprecation"),
        ("no_sunset", "sunset_at", "required"),
        ("garbage_date", "announced_at", "Enter a valid"),
        ("announced_in_future", "announced_at", "announce now or in the past"),
    ],
)
def test_admin_shows_form_errors_and_changes_nothing(
    client, operator, documents, documents_v2, case, field, message
):
    get_document = endpoint(documents, "getDocument")
    now = timezone.now().replace(microsecond=0)
    target, announced, sunset = get_document, now, now + days(30)
    if case == "sunset_before_announcement":
        sunset = now - days(1)
    elif case == "endpoint_of_another_version":
        target = endpoint(documents_v2, "getDocument")
    elif case == "duplicate":
        deprecate(documents, get_document)
    elif case == "announced_in_future":
        announced = now + days(2)
    data = admin_form(documents, target, announced=announced, sunset=sunset)
    if case == "no_sunset":
        data["sunset_at_0"] = data["sunset_at_1"] = ""
    elif case == "garbage_date":
        data["announced_at_0"] = "2026-02-31"
    existing = set(Deprecation.objects.values_list("pk", flat=True))
    marks_before = list(Endpoint.objects.order_by("pk").values_list("deprecated", "sunset_at"))

    response = client.post(reverse("admin:devdocs_deprecation_add"), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field]), errors
    assert set(Deprecation.objects.values_list("pk", flat=True)) == existing
    assert (
        list(Endpoint.objects.order_by("pk").values_list("deprecated", "sunset_at")) == marks_before
    )


# --- The public timeline and the changelog --------------------------------------------------
def test_the_timeline_lists_upcoming_soonest_first_then_past(client, documents):
    soon = deprecate(
        documents,
        endpoint(documents, "getDocument"),
        sunset_in=10,
        replacement="GET /v2/documents/{id}",
        migration_guide="Replace `/v1` with `/v2`.\n\n```bash\ncurl https://api.example.com/v2\n```",
    )
    later = deprecate(documents, endpoint(documents, "listDocuments"), sunset_in=200)
    gone = deprecate(
        documents, endpoint(documents, "searchDocuments"), sunset_in=-5, announced_ago=90
    )
    gone_earlier = deprecate(
        documents, endpoint(documents, "createDocument"), sunset_in=-20, announced_ago=90
    )
    page = client.get(TIMELINE_URL)
    assert page.status_code == 200
    html = page.content.decode()
    # Upcoming: soonest sunset first; then past: the most recent sunset first.
    order = [html.index(f'data-deprecation="{d.pk}"') for d in (soon, later, gone, gone_earlier)]
    assert order == sorted(order)
    assert 'data-days-left="10"' in html and 'data-days-left="200"' in html
    upcoming_section, past_section = html.split('id="past-heading"')
    assert f'data-deprecation="{gone.pk}"' in past_section
    assert f'data-deprecation="{gone.pk}"' not in upcoming_section
    assert "<code>GET /v2/documents/{id}</code>" in html
    assert "<code>GET /v1/documents/{id}</code>" in html  # with the base path, as called
    assert "<code>/v1</code>" in html and 'class="codehilite"' in html  # the rendered guide


def test_a_whole_version_lists_its_endpoints(client, documents):
    deprecate(documents, sunset_in=30)
    html = client.get(TIMELINE_URL).content.decode()
    assert "(the whole version)" in html and "6 endpoints" in html
    assert "<code>POST /v1/documents/bulk</code>" in html


def test_the_timeline_hides_private_products_and_unannounced_deprecations(client, documents):
    internal = api_version_create(
        actor=SYSTEM, product_code="internal", version="v1", document=DOCUMENT, private=True
    )
    hidden = deprecate(internal, endpoint(internal, "getDocument"))
    unannounced = future_announced(documents, endpoint(documents, "getDocument"), in_days=3)
    html = client.get(TIMELINE_URL).content.decode()
    assert str(hidden.pk) not in html and str(unannounced.pk) not in html
    assert "Nothing is scheduled to go away." in html
    assert client.get(f"/changelog/deprecation-{hidden.pk}").status_code == 404
    assert client.get(f"/changelog/deprecation-{unannounced.pk}").status_code == 404


def test_each_deprecation_is_a_deprecated_item_of_the_changelog_and_the_feed(client, documents):
    deprecation = deprecate(
        documents, endpoint(documents, "getDocument"), migration_guide="Use **v2**."
    )
    entry = ChangelogEntry.objects.get(slug=f"deprecation-{deprecation.pk}")
    assert entry.kind == "deprecated" and entry.product == documents.product
    listed = client.get("/changelog", {"kind": "deprecated"})
    assert [item["entry"].pk for item in listed.context["entries"]] == [entry.pk]
    page = client.get(f"/changelog/deprecation-{deprecation.pk}").content.decode()
    assert "Use <strong>v2</strong>." in page and f"#deprecation-{deprecation.pk}" in page
    feed = client.get("/changelog.atom", {"kind": "deprecated"}).content.decode()
    assert entry.id.urn in feed and '<category term="deprecated"' in feed
    first_id = entry.id
    changelog.deprecation_update(
        actor=SYSTEM,
        deprecation=deprecation,
        api_version=documents,
        endpoint=deprecation.endpoint,
        announced_at=deprecation.announced_at,
        sunset_at=deprecation.sunset_at + days(30),
    )
    entry.refresh_from_db()
    assert entry.id == first_id and f"{deprecation.sunset_at:%Y-%m-%d}" in entry.title


# --- E-mail to the organizations that called it ----------------------------------------------
def member(organization, role: str) -> str:
    return MembershipFactory(organization=organization, role=role).user.email


@pytest.fixture
def callers(verifier, documents, org, other_org):
    """acme calls GET /documents/{id} with a test key, globex with a live key; initech calls
    something else; hooli called it 40 days ago."""
    acme = {role: member(org, role) for role in Role}
    globex_owner = member(other_org, Role.OWNER)
    initech = OrganizationFactory(slug="initech")
    member(initech, Role.OWNER)
    hooli = OrganizationFactory(slug="hooli")
    member(hooli, Role.OWNER)

    test_key = ApiKeyFactory(project=ProjectFactory(organization=org), scopes=["read"])
    live_key = ApiKeyFactory(
        project=ProjectFactory(organization=other_org), environment="live", scopes=["read"]
    )
    other_key = ApiKeyFactory(project=ProjectFactory(organization=initech), scopes=["read"])
    assert verify(verifier, test_key).json()["allowed"]
    assert verify(verifier, live_key).json()["allowed"]
    assert verify(verifier, other_key, path="/v1/documents").json()["allowed"]
    UsageRollup.objects.create(
        organization=hooli,
        meter_id=UsageRollup.objects.values_list("meter_id", flat=True).first(),
        environment="live",
        endpoint="GET /documents/{id}",
        hour=(timezone.now() - days(40)).replace(minute=0, second=0, microsecond=0),
        event_count=3,
    )
    return {"acme": acme, "globex": globex_owner, "initech": initech, "hooli": hooli}


def sent_to() -> list[list[str]]:
    return sorted(sorted(message.to) for message in mail.outbox)


def test_the_notice_goes_once_to_the_callers_owners_admins_and_developers(
    callers, documents, org, other_org, django_capture_on_commit_callbacks
):
    labels = set(UsageRollup.objects.values_list("organization__slug", "environment", "endpoint"))
    assert ("acme", "test", "GET /documents/{id}") in labels  # real usage, from the gate
    assert ("globex", "live", "GET /documents/{id}") in labels
    deprecation = deprecate(
        documents,
        endpoint(documents, "getDocument"),
        replacement="GET /v2/documents/{id}",
        migration_guide="Call v2 instead.",
    )
    with django_capture_on_commit_callbacks(execute=True):
        run = changelog.deprecation_notices_send()
    assert run.sent == 2
    acme = callers["acme"]
    assert sent_to() == sorted(
        [sorted([acme["owner"], acme["admin"], acme["developer"]]), [callers["globex"]]]
    )
    everyone = {address for message in mail.outbox for address in message.to}
    assert acme["billing"] not in everyone and acme["viewer"] not in everyone
    message = next(m for m in mail.outbox if acme["owner"] in m.to)
    assert message.subject.startswith("[Tollgate] GET /documents/{id} (documents v1) stops")
    assert "GET /v1/documents/{id}" in message.body and "GET /v2/documents/{id}" in message.body
    assert "Call v2 instead." in message.body
    assert f"/changelog/deprecations#deprecation-{deprecation.pk}" in message.body
    notices = DeprecationNotice.objects.filter(deprecation=deprecation)
    assert {n.organization_id for n in notices} == {org.pk, other_org.pk}
    audits = AuditLogEntry.objects.filter(action="deprecation_notice.sent")
    assert {a.organization_id for a in audits} == {org.pk, other_org.pk}
    assert {a.actor_label for a in audits} == {"system:deprecation-notices"}

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert send_deprecation_notices.delay().get() == 0  # the task, run again
    assert mail.outbox == []
    assert notices.count() == 2


def test_a_whole_version_notice_counts_calls_to_any_of_its_endpoints(
    callers, documents, django_capture_on_commit_callbacks
):
    deprecate(documents, sunset_in=30)
    with django_capture_on_commit_callbacks(execute=True):
        changelog.deprecation_notices_send()
    initech_owner = callers["initech"].memberships.get().user.email
    assert [initech_owner] in sent_to()  # it called GET /documents, also in v1
    hooli_owner = callers["hooli"].memberships.get().user.email
    assert [hooli_owner] not in sent_to()  # its call was 40 days ago
    assert len(mail.outbox) == 3


def test_no_notice_after_the_sunset_or_before_the_announcement(
    callers, documents, django_capture_on_commit_callbacks
):
    deprecate(documents, endpoint(documents, "getDocument"), sunset_in=-1, announced_ago=30)
    future_announced(documents, endpoint(documents, "listDocuments"), in_days=2)
    with django_capture_on_commit_callbacks(execute=True):
        assert changelog.deprecation_notices_send().sent == 0
    assert mail.outbox == [] and not DeprecationNotice.objects.exists()


def test_the_same_path_in_another_version_also_notifies(
    callers, documents, documents_v2, django_capture_on_commit_callbacks
):
    """Usage labels carry no version: a v2 deprecation of GET /documents/{id} reaches the
    orgs that called it in v1 too (over-notify rather than miss anyone)."""
    deprecate(documents_v2, endpoint(documents_v2, "getDocument"))
    with django_capture_on_commit_callbacks(execute=True):
        assert changelog.deprecation_notices_send().sent == 2


def test_saving_a_deprecation_queues_its_notices_after_commit(
    callers, documents, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        deprecate(documents, endpoint(documents, "getDocument"))
    assert len(mail.outbox) == 2  # the task ran once the deprecation committed


def test_an_org_without_anyone_to_tell_is_tried_again_later(
    verifier, documents, org, django_capture_on_commit_callbacks
):
    billing_only = member(org, Role.BILLING)
    key = ApiKeyFactory(project=ProjectFactory(organization=org), scopes=["read"])
    assert verify(verifier, key).json()["allowed"]
    deprecation = deprecate(documents, endpoint(documents, "getDocument"))
    with django_capture_on_commit_callbacks(execute=True):
        run = changelog.deprecation_notices_send()
    assert (run.sent, run.without_recipients) == (0, 1)
    assert mail.outbox == [] and not DeprecationNotice.objects.exists()
    developer = member(org, Role.DEVELOPER)
    with django_capture_on_commit_callbacks(execute=True):
        assert changelog.deprecation_notices_send(deprecation_id=deprecation.pk).sent == 1
    assert sent_to() == [[developer]] and billing_only not in mail.outbox[0].to


def test_a_notice_already_recorded_is_never_sent_again(
    callers, documents, org, other_org, django_capture_on_commit_callbacks
):
    """As when a concurrent run inserted the row first: the unique row wins, no e-mail."""
    deprecation = deprecate(documents, endpoint(documents, "getDocument"))
    DeprecationNotice.objects.create(deprecation=deprecation, organization=org, recipients=[])
    with django_capture_on_commit_callbacks(execute=True):
        assert changelog.deprecation_notices_send().sent == 1  # globex only
    assert sent_to() == [[callers["globex"]]]
    # A run that read "not told yet" just before another inserted the row: the insert fails
    # on the unique constraint, and that run sends nothing.
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert changelog._notice_send(deprecation, other_org, timezone.now()) is False
    assert mail.outbox == [] and DeprecationNotice.objects.count() == 2


# --- A private product with the same paths as a public one (review fix) ----------------------
@pytest.fixture
def secret_internal(documents):
    """A private product whose paths are those of documents (base path /internal/v1)."""
    document = copy.deepcopy(DOCUMENT)
    document["info"]["title"] = "Secret Internal API"
    document["servers"] = [{"url": "https://api.example.com/internal/v1"}]
    version = api_version_create(
        actor=SYSTEM, product_code="secretinternal", version="v1", document=document, private=True
    )
    process_gate.cache_clear()  # the gate's catalog sees it at once
    return version


def gate_event(key, label: str, *, properties: dict | None = None, request_id: str) -> dict:
    """A usage event as the gate writes it (keys/gate_usage.py call_events)."""
    event = {
        "id": request_id,
        "meter": "requests",
        "quantity": 1,
        "key_id": str(key.id),
        "environment": key.environment,
        "endpoint": label,
        "request_id": request_id,
        "timestamp": timezone.now().isoformat(),
    }
    if properties is not None:
        event["properties"] = properties
    return event


@pytest.fixture
def mixed_callers(callers, verifier, secret_internal):
    """On top of `callers` (acme and globex call documents' GET /documents/{id}):
    initrode calls secretinternal's GET /documents/{id} through the gate; umbrella has a
    ledger row of GET /documents/{id} from before the gate named the API; vandelay posted a
    usage event of its own claiming to be a secretinternal call."""
    orgs = {}
    for slug in ("initrode", "umbrella", "vandelay"):
        orgs[slug] = OrganizationFactory(slug=slug, name=slug.capitalize())
        orgs[f"{slug}_owner"] = member(orgs[slug], Role.OWNER)
    keys = {
        slug: ApiKeyFactory(project=ProjectFactory(organization=orgs[slug]), scopes=["read"])
        for slug in ("initrode", "umbrella", "vandelay")
    }
    response = verify(verifier, keys["initrode"], path="/internal/v1/documents/7").json()
    assert response["allowed"], response
    assert usage_ingest(
        events=[gate_event(keys["umbrella"], "GET /documents/{id}", request_id="req_legacy")],
        source="gate",
    ).accepted
    assert usage_ingest(
        events=[
            gate_event(
                keys["vandelay"],
                "GET /documents/{id}",
                properties={"api": "secretinternal/v1"},
                request_id="req_forged",
            )
        ],
        source="api",
    ).accepted
    return orgs


def test_the_gate_names_the_api_of_each_call_in_the_ledger(mixed_callers, org):
    apis = set(
        UsageEvent.objects.filter(endpoint="GET /documents/{id}", source="gate").values_list(
            "organization_id", "properties__api"
        )
    )
    assert (org.pk, "documents/v1") in apis
    assert (mixed_callers["initrode"].pk, "secretinternal/v1") in apis
    assert (mixed_callers["umbrella"].pk, None) in apis  # written before the gate named it


def test_a_private_products_notice_never_reaches_callers_of_a_public_one(
    mixed_callers, secret_internal, django_capture_on_commit_callbacks
):
    deprecate(
        secret_internal,
        endpoint(secret_internal, "getDocument"),
        migration_guide="The secret migration guide.",
    )
    with django_capture_on_commit_callbacks(execute=True):
        run = changelog.deprecation_notices_send()
    # Only initrode called it; acme and globex called documents, umbrella's row does not
    # say which API (not counted for a private product), vandelay's was not a gate call.
    assert sent_to() == [[mixed_callers["initrode_owner"]]]
    assert run.sent == 1
    assert "Secret Internal API" in mail.outbox[0].body


def test_a_public_products_notice_is_confirmed_in_the_ledger_when_the_path_is_shared(
    mixed_callers, callers, documents, django_capture_on_commit_callbacks
):
    deprecate(documents, endpoint(documents, "getDocument"))
    with django_capture_on_commit_callbacks(execute=True):
        changelog.deprecation_notices_send()
    told = {address for message in mail.outbox for address in message.to}
    assert callers["globex"] in told and callers["acme"]["owner"] in told
    assert mixed_callers["umbrella_owner"] in told  # an old row: over-notify, as before
    assert mixed_callers["initrode_owner"] not in told  # it called the private product
    assert mixed_callers["vandelay_owner"] not in told
    assert len(mail.outbox) == 3


def test_a_whole_private_version_is_confirmed_with_any_of_its_labels(
    mixed_callers, secret_internal, django_capture_on_commit_callbacks
):
    deprecate(secret_internal, sunset_in=30)
    with django_capture_on_commit_callbacks(execute=True):
        changelog.deprecation_notices_send()
    assert sent_to() == [[mixed_callers["initrode_owner"]]]


def test_a_label_no_other_product_has_needs_no_ledger_lookup(
    verifier, documents, org, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    key = ApiKeyFactory(project=ProjectFactory(organization=org), scopes=["read"])
    member(org, Role.OWNER)
    assert verify(verifier, key).json()["allowed"]
    deprecation = deprecate(documents, endpoint(documents, "getDocument"))
    with django_assert_max_num_queries(3) as captured:  # labels, rollups, other products
        callers = changelog.deprecation_callers(deprecation=deprecation, now=timezone.now())
    assert callers == {org.pk}
    assert not any("billing_usageevent" in q["sql"] for q in captured.captured_queries)


# --- Announcements are now or past (review fix) -----------------------------------------------
def test_a_future_announcement_is_refused_so_the_gate_never_runs_ahead_of_the_timeline(
    verifier, client, documents, org
):
    get_document = endpoint(documents, "getDocument")
    key = ApiKeyFactory(project=ProjectFactory(organization=org), scopes=["read"])
    with pytest.raises(InvalidInput) as raised:
        deprecate(documents, get_document, announced_ago=-3)
    assert "announce now or in the past" in raised.value.detail
    get_document.refresh_from_db()
    assert not get_document.deprecated and get_document.sunset_at is None
    assert "Deprecation" not in verify(verifier, key)  # no header before any announcement
    # Moving an announced deprecation's announcement into the future is refused too.
    deprecation = deprecate(documents, get_document)
    with pytest.raises(InvalidInput):
        changelog.deprecation_update(
            actor=SYSTEM,
            deprecation=deprecation,
            api_version=documents,
            endpoint=get_document,
            announced_at=timezone.now() + days(1),
            sunset_at=deprecation.sunset_at,
        )
    deprecation.refresh_from_db()
    assert deprecation.announced_at < timezone.now()


def test_a_row_announced_in_the_future_before_the_rule_can_still_be_edited(documents):
    legacy = future_announced(documents, endpoint(documents, "getDocument"), in_days=5)
    changelog.deprecation_update(
        actor=SYSTEM,
        deprecation=legacy,
        api_version=documents,
        endpoint=legacy.endpoint,
        sunset_at=legacy.sunset_at + days(10),  # announced_at left as it was
    )
    legacy.refresh_from_db()
    assert legacy.announced_at > timezone.now()


# --- Withdrawing keeps what the operator set by hand (review fix) -----------------------------
def test_deleting_a_whole_version_deprecation_keeps_version_dates_changed_by_hand(documents):
    deprecation = deprecate(documents, sunset_in=30)
    by_hand = timezone.now() + days(400)
    ApiVersion.objects.filter(pk=documents.pk).update(sunset_at=by_hand)  # in the admin
    changelog.deprecation_delete(actor=SYSTEM, deprecation=deprecation)
    documents.refresh_from_db()
    assert documents.sunset_at == by_hand  # not the deprecation's: kept
    assert documents.deprecated_at is None  # the deprecation's own value: cleared


def test_deleting_a_deprecation_keeps_an_endpoint_sunset_changed_by_hand(documents):
    get_document = endpoint(documents, "getDocument")
    search = endpoint(documents, "searchDocuments")
    deprecation = deprecate(documents, get_document, sunset_in=60)
    by_hand = timezone.now() + days(20)
    Endpoint.objects.filter(pk=get_document.pk).update(sunset_at=by_hand)  # in the admin
    changelog.deprecation_update(  # moved away from getDocument
        actor=SYSTEM,
        deprecation=deprecation,
        api_version=documents,
        endpoint=search,
        announced_at=deprecation.announced_at,
        sunset_at=deprecation.sunset_at,
    )
    get_document.refresh_from_db()
    assert (get_document.deprecated, get_document.sunset_at) == (True, by_hand)
    Endpoint.objects.filter(pk=search.pk).update(deprecated=False)  # by hand, again
    changelog.deprecation_delete(actor=SYSTEM, deprecation=deprecation)
    search.refresh_from_db()
    assert (search.deprecated, search.sunset_at) == (False, deprecation.sunset_at)


def test_deleting_keeps_a_hand_set_sunset_under_another_deprecation(documents):
    get_document = endpoint(documents, "getDocument")
    whole = deprecate(documents, sunset_in=30)
    deprecate(documents, get_document, sunset_in=200)
    by_hand = timezone.now() + days(10)
    Endpoint.objects.filter(pk=get_document.pk).update(sunset_at=by_hand)
    changelog.deprecation_delete(actor=SYSTEM, deprecation=whole)
    get_document.refresh_from_db()
    assert get_document.sunset_at == by_hand
    list_documents = endpoint(documents, "listDocuments")  # untouched by hand: restored
    assert (list_documents.deprecated, list_documents.sunset_at) == (False, None)


# --- A sunset moved earlier is announced again (review fix) ----------------------------------
def test_moving_the_sunset_earlier_tells_the_organizations_again_once(
    callers, documents, org, django_capture_on_commit_callbacks
):
    get_document = endpoint(documents, "getDocument")
    deprecation = deprecate(documents, get_document, sunset_in=90)
    with django_capture_on_commit_callbacks(execute=True):
        assert changelog.deprecation_notices_send().sent == 2
    first_sent = dict(
        DeprecationNotice.objects.filter(deprecation=deprecation).values_list(
            "organization_id", "sent_at"
        )
    )
    mail.outbox.clear()

    def move(sunset_in: float) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            changelog.deprecation_update(
                actor=SYSTEM,
                deprecation=Deprecation.objects.get(pk=deprecation.pk),
                api_version=documents,
                endpoint=get_document,
                sunset_at=timezone.now() + days(sunset_in),
            )

    move(120)  # later: nobody needs to hurry, nothing is sent
    assert mail.outbox == []
    move(20)  # earlier: everyone already told hears the new date
    assert len(mail.outbox) == 2
    acme = next(m for m in mail.outbox if callers["acme"]["owner"] in m.to)
    assert "now stops working on" in acme.subject and "moved EARLIER" in acme.body
    new_sunset = Deprecation.objects.get(pk=deprecation.pk).sunset_at
    assert f"{new_sunset:%Y-%m-%d}" in acme.body
    notices = DeprecationNotice.objects.filter(deprecation=deprecation)
    assert notices.count() == 2
    assert all(n.sent_at > first_sent[n.organization_id] for n in notices)
    assert AuditLogEntry.objects.filter(action="deprecation_notice.resent").count() == 2

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert changelog.deprecation_notices_send().sent == 0  # a run with no change
    move(20.0001)  # a tiny bit later again: nothing
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        changelog.deprecation_update(  # another target: its callers were not the ones told
            actor=SYSTEM,
            deprecation=Deprecation.objects.get(pk=deprecation.pk),
            api_version=documents,
            endpoint=endpoint(documents, "searchDocuments"),
            sunset_at=timezone.now() + days(5),
        )
    assert mail.outbox == []


def test_a_notice_says_the_dates_stored_when_it_is_sent_not_a_stale_copy(
    callers, documents, org, django_capture_on_commit_callbacks
):
    """A run that read the deprecation before a change committed mails the changed dates
    (it locks and re-reads the row), and nothing for a deprecation deleted meanwhile."""
    deprecation = deprecate(documents, endpoint(documents, "getDocument"), sunset_in=90)
    stale = Deprecation.objects.select_related("api_version__product", "endpoint").get(
        pk=deprecation.pk
    )
    Deprecation.objects.filter(pk=deprecation.pk).update(sunset_at=timezone.now() + days(9))
    with django_capture_on_commit_callbacks(execute=True):
        assert changelog._notice_send(stale, org, timezone.now()) is True
    moved = Deprecation.objects.get(pk=deprecation.pk).sunset_at
    assert f"{moved:%Y-%m-%d}" in mail.outbox[0].subject
    changelog.deprecation_delete(actor=SYSTEM, deprecation=Deprecation.objects.get(pk=stale.pk))
    other_org = callers["initech"]
    with django_capture_on_commit_callbacks(execute=True):
        assert changelog._notice_send(stale, other_org, timezone.now()) is False
    assert len(mail.outbox) == 1


# --- The rate-limits guide says what a refused call uses (review fix) -------------------------
def test_a_quota_refusal_uses_the_rate_limit_as_the_guide_says(documents, org):
    """The gate checks rate limits before quotas, so each `quota_exhausted` answer has spent
    a rate-limit call; the developer guide must not promise otherwise."""
    from billing.demo_catalog import DEMO_PLANS
    from tests.keys.conftest import call, make_gate, on_hourly_limit

    free = next(body for body in DEMO_PLANS if body["code"] == "free")
    [quota] = [q for q in free["entitlements"]["quotas"] if q["meter"] == "requests"]
    on_hourly_limit(org, limit=3)  # Free's hard quota, and 3 calls an hour
    usage_ingest(
        events=[
            {"id": f"old-{n}", "meter": "requests", "customer": org.slug}
            for n in range(int(quota["limit"]))
        ]
    )
    live_key = ApiKeyFactory(
        project=ProjectFactory(organization=org), environment="live", scopes=["read"]
    )
    gate = make_gate()
    codes = [call(gate, live_key).code for _ in range(4)]
    assert codes == ["quota_exhausted"] * 3 + ["rate_limited"]

    guide = (settings.BASE_DIR / "docs" / "portal" / "rate-limits.md").read_text()
    assert "A refused call uses neither rate limit nor quota" not in guide
    assert "A `quota_exhausted`\n  call has already **passed the rate limits**" in guide
