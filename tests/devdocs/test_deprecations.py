"""Deprecations (DOCS-7, GATE-7): the service marks the target so the gate agrees, the admin
refuses bad input, the public timeline, and the e-mail to organizations that called it."""

import copy
from datetime import timedelta

import pytest
from django.core import mail
from django.core.cache import cache as django_cache
from django.urls import reverse
from django.utils import timezone

from billing.demo_catalog import ensure_demo_catalog
from billing.models import UsageRollup
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
    unannounced = deprecate(documents, endpoint(documents, "getDocument"), announced_ago=-3)
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
    deprecate(documents, endpoint(documents, "listDocuments"), announced_ago=-2)
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
