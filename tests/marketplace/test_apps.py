"""Apps and their listing review (MKT-1, MKT-2): every transition and who may take it; a
partner can never list its own app; another org never sees or edits it; logos checked."""

import io

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from common.errors import Conflict, InvalidInput, PermissionDenied
from marketplace.apps_services import (
    app_create,
    app_logo_set,
    app_review,
    app_submit,
    app_update,
)
from marketplace.models import App
from marketplace.services import partner_apply, partner_decide
from portal.audit import Actor
from portal.models import AuditLogEntry
from portal.roles import Role
from tests.factories import MembershipFactory, UserFactory
from tests.marketplace.test_partners import APPLICATION

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")
APP = {
    "name": "Doc Sync",
    "summary": "Keeps your documents in sync with Drive.",
    "description": "Syncs **every** document.",
    "categories": ["documents", "automation"],
    "scopes": ["read", "write"],
    "redirect_uris": ["https://docsync.example.com/oauth/callback", "http://localhost:8080/cb"],
    "support_url": "https://docsync.example.com/support",
    "privacy_url": "https://docsync.example.com/privacy",
    "pricing_note": "Free up to 100 documents.",
}


def image_bytes(fmt="PNG", size=(128, 128)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 90, 200)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def partner(org):
    applied = partner_apply(actor=SYSTEM, organization=org, **APPLICATION)
    return partner_decide(actor=SYSTEM, partner=applied, status="approved")


@pytest.fixture
def app(partner):
    made = app_create(actor=SYSTEM, partner=partner, **APP)
    return app_logo_set(actor=SYSTEM, app=made, data=image_bytes())


def owner_of(org):
    user = UserFactory()
    MembershipFactory(organization=org, user=user, role=Role.OWNER)
    return user


def test_the_install_url_is_optional_and_https_or_localhost(partner):
    bare = app_create(actor=SYSTEM, partner=partner, **APP)
    assert bare.install_url == ""
    local = app_create(
        actor=SYSTEM, partner=partner, **{**APP, "install_url": "http://127.0.0.1:8001/install"}
    )
    assert local.install_url == "http://127.0.0.1:8001/install"


def test_only_an_approved_partner_creates_apps(org):
    applied = partner_apply(actor=SYSTEM, organization=org, **APPLICATION)
    with pytest.raises(PermissionDenied):
        app_create(actor=SYSTEM, partner=applied, **APP)
    assert not App.objects.exists()


def test_the_partner_submits_and_only_the_operator_lists(app, django_capture_on_commit_callbacks):
    owner = owner_of(app.partner.organization)
    assert app.state == App.State.DRAFT
    with pytest.raises(Conflict):
        app_review(actor=SYSTEM, app=app, decision="listed")  # not submitted: not reviewable

    with django_capture_on_commit_callbacks(execute=True):
        submitted = app_submit(actor=SYSTEM, app=app)
        listed = app_review(actor=SYSTEM, app=submitted, decision="listed", note="Looks good")

    assert listed.state == App.State.LISTED and listed.listed_at is not None
    assert [message.subject.split("] ")[-1] for message in mail.outbox] == [
        "Doc Sync is in review",
        "Doc Sync is listed in the marketplace",
    ]
    assert all(message.to == [owner.email] for message in mail.outbox)
    assert "Looks good" in mail.outbox[-1].body
    actions = list(
        AuditLogEntry.objects.filter(action__startswith="app.")
        .order_by("created_at")
        .values_list("action", flat=True)
    )
    assert actions == ["app.created", "app.logo_changed", "app.submitted", "app.listed"]


def test_changes_requested_then_resubmitted_then_suspended_and_reinstated(app):
    app_submit(actor=SYSTEM, app=app)
    asked = app_review(actor=SYSTEM, app=app, decision="changes_requested", note="Add a summary")
    assert asked.review_note == "Add a summary"
    with pytest.raises(Conflict):
        app_review(actor=SYSTEM, app=asked, decision="changes_requested")
    edited = app_update(actor=SYSTEM, app=asked, summary="Two-way sync with Drive.")
    assert edited.state == App.State.CHANGES_REQUESTED
    app_submit(actor=SYSTEM, app=edited)
    listed = app_review(actor=SYSTEM, app=edited, decision="listed", certified=True)
    assert listed.certified
    suspended = app_review(actor=SYSTEM, app=listed, decision="suspended", note="Abuse report")
    with pytest.raises(Conflict):
        app_update(actor=SYSTEM, app=suspended, name="Sneaky")
    with pytest.raises(Conflict):
        app_submit(actor=SYSTEM, app=suspended)
    assert app_review(actor=SYSTEM, app=suspended, decision="listed").state == App.State.LISTED


def test_editing_a_listed_app_sends_it_back_to_review(app):
    app_submit(actor=SYSTEM, app=app)
    app_review(actor=SYSTEM, app=app, decision="listed")

    edited = app_update(actor=SYSTEM, app=app, scopes=["read"])

    assert edited.state == App.State.IN_REVIEW
    assert App.objects.get(pk=app.pk).scopes == ["read"]


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("redirect_uris", ["http://docsync.example.com/cb"], "invalid_redirect_uri"),
        ("redirect_uris", ["https://docsync.example.com/cb#frag"], "invalid_redirect_uri"),
        ("redirect_uris", ["javascript:alert(1)"], "invalid_redirect_uri"),
        ("redirect_uris", [], "validation_error"),
        ("scopes", ["read", "admin:everything"], "invalid_scopes"),
        ("categories", ["gambling"], "invalid_categories"),
        ("install_url", "javascript:alert(1)", "invalid_install_url"),
        ("install_url", "http://docsync.example.com/install", "invalid_install_url"),
        ("install_url", 42, "invalid_install_url"),
    ],
)
def test_bad_app_fields_are_refused_and_nothing_changes(partner, field, value, code):
    with pytest.raises(InvalidInput) as refused:
        app_create(actor=SYSTEM, partner=partner, **{**APP, field: value})
    assert refused.value.code == code
    assert not App.objects.exists()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (
            b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
            "invalid_logo",
        ),
        (b"GIF89a not really", "invalid_logo"),
        (image_bytes("GIF"), "invalid_logo"),
        (image_bytes(size=(16, 16)), "invalid_logo"),
        (image_bytes(size=(2000, 300)), "invalid_logo"),
        (b"\x89PNG" + b"0" * (300 * 1024), "logo_too_large"),
    ],
)
def test_logos_are_checked_by_decoding_them(partner, data, code):
    app = app_create(actor=SYSTEM, partner=partner, **APP)
    with pytest.raises(InvalidInput) as refused:
        app_logo_set(actor=SYSTEM, app=app, data=data)
    assert refused.value.code == code
    assert App.objects.get(pk=app.pk).logo is None
    with pytest.raises(InvalidInput) as no_logo:
        app_submit(actor=SYSTEM, app=app)
    assert no_logo.value.code == "logo_missing"


def test_jpeg_and_webp_logos_are_accepted(partner):
    app = app_create(actor=SYSTEM, partner=partner, **APP)
    for fmt, content_type in (("JPEG", "image/jpeg"), ("WEBP", "image/webp")):
        saved = app_logo_set(actor=SYSTEM, app=app, data=image_bytes(fmt))
        assert saved.logo_content_type == content_type


def test_the_partner_pages_create_upload_and_submit(client, partner):
    org = partner.organization
    client.force_login(owner_of(org))
    base = f"/o/{org.slug}/partner/apps"
    response = client.post(
        f"{base}/new",
        {**APP, "redirect_uris": "\n".join(APP["redirect_uris"])},
    )
    app = App.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{base}/{app.id}/"
    upload = SimpleUploadedFile("logo.png", image_bytes(), content_type="image/png")
    client.post(f"{base}/{app.id}/logo", {"logo": upload})
    logo = client.get(f"{base}/{app.id}/logo.img")
    assert logo["Content-Type"] == "image/png" and logo["X-Content-Type-Options"] == "nosniff"
    client.post(f"{base}/{app.id}/submit")
    assert App.objects.get().state == App.State.IN_REVIEW
    page = client.get(f"{base}/{app.id}/").content.decode()
    assert 'data-app-state="in_review"' in page


def test_another_org_can_neither_see_nor_touch_the_app(client, app, other_org):
    client.force_login(owner_of(other_org))
    base = f"/o/{app.partner.organization.slug}/partner/apps/{app.id}"
    assert client.get(f"{base}/").status_code == 404
    own_base = f"/o/{other_org.slug}/partner/apps/{app.id}"
    assert client.get(f"{own_base}/").status_code == 404
    assert client.post(f"{own_base}/submit").status_code == 404
    assert client.get(f"{own_base}/logo.img").status_code == 404
    assert (
        client.post(
            f"{own_base}/", {**APP, "name": "Hijacked", "redirect_uris": "https://x.example/cb"}
        ).status_code
        == 404
    )
    assert App.objects.get(pk=app.pk).name == "Doc Sync"
    assert App.objects.get(pk=app.pk).state == App.State.DRAFT


def test_developers_cannot_manage_apps(client, app):
    developer = UserFactory()
    MembershipFactory(organization=app.partner.organization, user=developer, role=Role.DEVELOPER)
    client.force_login(developer)
    base = f"/o/{app.partner.organization.slug}/partner/apps/{app.id}"
    assert client.post(f"{base}/submit").status_code == 403
    assert App.objects.get(pk=app.pk).state == App.State.DRAFT


def test_the_operator_reviews_in_admin(admin_client, app):
    app_submit(actor=SYSTEM, app=app)

    admin_client.post(
        reverse("admin:marketplace_app_changelist"),
        {"action": "app_listed_certified", "_selected_action": [str(app.pk)], "note": "Nice"},
    )

    app.refresh_from_db()
    assert (app.state, app.certified, app.review_note) == (App.State.LISTED, True, "Nice")
    assert (
        admin_client.get(reverse("admin:marketplace_app_change", args=[app.pk])).status_code == 200
    )
