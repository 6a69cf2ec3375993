"""Screenshots of a listing (MKT-2): checked like the logo, at most 8, in order; every change
audited; a listed app goes back to review; another org never sees or touches them."""

import io
import os
import struct
import zlib

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from common.errors import Conflict, InvalidInput, NotFound
from marketplace.apps_services import app_create, app_logo_set, app_review, app_submit
from marketplace.models import App, AppScreenshot
from marketplace.screenshots import (
    MAX_SCREENSHOT_BYTES,
    screenshot_add,
    screenshot_delete,
    screenshot_list,
)
from marketplace.services import partner_apply, partner_decide
from portal.models import AuditLogEntry
from portal.roles import Role
from tests.factories import MembershipFactory, UserFactory
from tests.marketplace.test_apps import APP, SYSTEM, image_bytes, owner_of
from tests.marketplace.test_partners import APPLICATION

pytestmark = pytest.mark.django_db


def shot(fmt="PNG", size=(640, 400)) -> bytes:
    return image_bytes(fmt, size)


def noise_png(size: tuple[int, int]) -> bytes:
    """Random pixels do not compress: a PNG of real, valid pixels that is simply heavy."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def approved_partner(organization):
    applied = partner_apply(actor=SYSTEM, organization=organization, **APPLICATION)
    return partner_decide(actor=SYSTEM, partner=applied, status="approved")


@pytest.fixture
def app(org):
    made = app_create(actor=SYSTEM, partner=approved_partner(org), **APP)
    return app_logo_set(actor=SYSTEM, app=made, data=image_bytes())


@pytest.fixture
def listed_app(app):
    app_submit(actor=SYSTEM, app=app)
    return app_review(actor=SYSTEM, app=app, decision="listed")


def base_url(app: App) -> str:
    return f"/o/{app.partner.organization.slug}/partner/apps/{app.id}"


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")],
)
def test_png_jpeg_and_webp_are_accepted(app, fmt, content_type):
    added = screenshot_add(actor=SYSTEM, app=app, data=shot(fmt), caption="  The dashboard  ")

    stored = AppScreenshot.objects.get(pk=added.pk)
    assert stored.content_type == content_type
    assert bytes(stored.image) == shot(fmt)
    assert stored.caption == "The dashboard"


def test_the_size_bounds_are_inclusive(app):
    screenshot_add(actor=SYSTEM, app=app, data=shot(size=(320, 320)))
    screenshot_add(actor=SYSTEM, app=app, data=shot(size=(2560, 320)))
    assert AppScreenshot.objects.filter(app=app).count() == 2


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims huge pixels: refused before anything is decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def _truncated_jpeg() -> bytes:
    """Its header is sound (verify() passes); only decoding the pixels finds the cut."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (400, 400), os.urandom(400 * 400 * 3)).save(buffer, format="JPEG")
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


def _truncated_png() -> bytes:
    whole = noise_png((400, 400))
    return whole[: len(whole) // 2]


@pytest.mark.parametrize(
    ("data", "code", "reason"),
    [
        (
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)'
            b"</script></svg>",
            "invalid_screenshot",
            "SVG is refused",
        ),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg" width="640" height="400"/>',
            "invalid_screenshot",
            "SVG",
        ),
        (shot("GIF"), "invalid_screenshot", "not GIF"),
        (shot(size=(200, 200)), "invalid_screenshot", "320-2560 pixels a side (it is 200x200)"),
        (shot(size=(640, 319)), "invalid_screenshot", "320-2560 pixels"),
        (shot(size=(3000, 400)), "invalid_screenshot", "320-2560 pixels"),
        (noise_png((700, 700)), "invalid_screenshot_too_large", "at most 1 MB"),
        (b"this is plain text, not an image", "invalid_screenshot", "not an image we can read"),
        (b"", "invalid_screenshot", "empty"),
        (_truncated_png(), "invalid_screenshot", "The screenshot"),
        (_truncated_jpeg(), "invalid_screenshot", "damaged"),
        (_png_claiming(30000, 30000), "invalid_screenshot", "The screenshot"),
        (_png_claiming(4000, 1000), "invalid_screenshot", "(it is 4000x1000)"),
    ],
    ids=[
        "svg-xml",
        "svg",
        "gif",
        "too-small",
        "too-thin",
        "too-wide",
        "too-heavy",
        "text",
        "empty",
        "truncated",
        "truncated-jpeg",
        "bomb",
        "claims-too-wide",
    ],
)
def test_bad_files_are_refused_with_a_reason_and_nothing_is_stored(app, data, code, reason):
    with pytest.raises(InvalidInput) as refused:
        screenshot_add(actor=SYSTEM, app=app, data=data)

    assert refused.value.code == code
    assert reason in refused.value.detail
    assert refused.value.field == "image"
    assert not AppScreenshot.objects.exists()
    assert not AuditLogEntry.objects.filter(action__startswith="app.screenshot").exists()


def test_the_heavy_fixture_really_is_over_the_limit_and_otherwise_valid():
    data = noise_png((700, 700))
    assert len(data) > MAX_SCREENSHOT_BYTES
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG" and image.size == (700, 700)


def test_a_caption_is_at_most_200_characters(app):
    screenshot_add(actor=SYSTEM, app=app, data=shot(), caption="x" * 200)
    with pytest.raises(InvalidInput) as refused:
        screenshot_add(actor=SYSTEM, app=app, data=shot(), caption="x" * 201)
    assert refused.value.code == "caption_too_long"
    assert AppScreenshot.objects.filter(app=app).count() == 1


def test_at_most_eight_in_the_order_added_and_a_deleted_one_frees_a_place(app):
    added = [
        screenshot_add(actor=SYSTEM, app=app, data=shot(), caption=f"Step {number}")
        for number in range(1, 9)
    ]
    with pytest.raises(Conflict) as ninth:
        screenshot_add(actor=SYSTEM, app=app, data=shot(), caption="Step 9")
    assert ninth.value.code == "too_many_screenshots"
    assert [item.caption for item in screenshot_list(app=app)] == [
        f"Step {number}" for number in range(1, 9)
    ]

    screenshot_delete(actor=SYSTEM, app=app, screenshot_id=added[2].id)
    last = screenshot_add(actor=SYSTEM, app=app, data=shot(), caption="Step 9")

    captions = [item.caption for item in screenshot_list(app=app)]
    assert captions == [
        "Step 1",
        "Step 2",
        "Step 4",
        "Step 5",
        "Step 6",
        "Step 7",
        "Step 8",
        "Step 9",
    ]
    assert last.position > added[-1].position


def test_screenshots_change_only_while_the_app_is_editable(app):
    kept = screenshot_add(actor=SYSTEM, app=app, data=shot())
    app_submit(actor=SYSTEM, app=app)  # in review: the operator is looking at it

    with pytest.raises(Conflict):
        screenshot_add(actor=SYSTEM, app=app, data=shot())
    with pytest.raises(Conflict):
        screenshot_delete(actor=SYSTEM, app=app, screenshot_id=kept.id)
    assert list(AppScreenshot.objects.values_list("id", flat=True)) == [kept.id]


def test_a_screenshot_of_another_app_is_not_found(app, other_org):
    other_app = app_create(
        actor=SYSTEM, partner=approved_partner(other_org), **{**APP, "name": "Other Sync"}
    )
    theirs = screenshot_add(actor=SYSTEM, app=other_app, data=shot())
    with pytest.raises(NotFound):
        screenshot_delete(actor=SYSTEM, app=app, screenshot_id=theirs.id)
    assert AppScreenshot.objects.filter(pk=theirs.pk).exists()


def test_adding_to_a_listed_app_sends_it_back_to_review(
    listed_app, django_capture_on_commit_callbacks
):
    owner = owner_of(listed_app.partner.organization)
    with django_capture_on_commit_callbacks(execute=True):
        screenshot_add(actor=SYSTEM, app=listed_app, data=shot(), caption="New screen")

    reloaded = App.objects.get(pk=listed_app.pk)
    assert reloaded.state == App.State.IN_REVIEW
    assert reloaded.submitted_at > listed_app.listed_at
    assert mail.outbox[-1].subject.endswith("Doc Sync is in review")
    assert mail.outbox[-1].to == [owner.email]
    entry = AuditLogEntry.objects.get(action="app.screenshot_added")
    assert entry.target_id == str(listed_app.pk)
    assert entry.changes["caption"] == "New screen"
    assert entry.changes["state"] == "in_review"
    assert entry.changes["type"] == "image/png"


def test_deleting_from_a_listed_app_sends_it_back_to_review(
    app, django_capture_on_commit_callbacks
):
    owner = owner_of(app.partner.organization)
    added = screenshot_add(actor=SYSTEM, app=app, data=shot(), caption="Old screen")
    app_submit(actor=SYSTEM, app=app)
    app_review(actor=SYSTEM, app=app, decision="listed")
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        screenshot_delete(actor=SYSTEM, app=app, screenshot_id=added.id)

    assert App.objects.get(pk=app.pk).state == App.State.IN_REVIEW
    assert not AppScreenshot.objects.exists()
    assert [message.subject.split("] ")[-1] for message in mail.outbox] == ["Doc Sync is in review"]
    assert mail.outbox[0].to == [owner.email]
    entry = AuditLogEntry.objects.get(action="app.screenshot_deleted")
    assert entry.changes == {
        "screenshot": str(added.id),
        "caption": "Old screen",
        "state": "in_review",
    }


def test_a_draft_stays_a_draft_and_sends_no_mail(app, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        added = screenshot_add(actor=SYSTEM, app=app, data=shot())
        screenshot_delete(actor=SYSTEM, app=app, screenshot_id=added.id)
    assert App.objects.get(pk=app.pk).state == App.State.DRAFT
    assert mail.outbox == []
    actions = list(
        AuditLogEntry.objects.filter(action__startswith="app.screenshot")
        .order_by("created_at")
        .values_list("action", flat=True)
    )
    assert actions == ["app.screenshot_added", "app.screenshot_deleted"]


# --- Pages -------------------------------------------------------------------------------


def test_the_partner_uploads_sees_and_deletes_a_screenshot(client, app):
    owner = owner_of(app.partner.organization)
    client.force_login(owner)
    base = base_url(app)
    upload = SimpleUploadedFile(
        "screen.webp", shot("WEBP"), content_type="application/octet-stream"
    )

    response = client.post(f"{base}/screenshots/new", {"image": upload, "caption": "Settings <b>"})

    assert response.status_code == 302 and response["Location"] == f"{base}/"
    added = AppScreenshot.objects.get(app=app)
    page = client.get(f"{base}/").content.decode()
    assert "Screenshot added." in page
    assert f"{base}/screenshots/{added.id}.img" in page
    assert "Settings &lt;b&gt;" in page and "Settings <b>" not in page  # escaped
    assert f"{base}/screenshots/{added.id}/delete" in page
    assert 'action="' + f"{base}/screenshots/new" + '"' in page

    image = client.get(f"{base}/screenshots/{added.id}.img")
    assert image.status_code == 200
    assert image["Content-Type"] == "image/webp"  # what was decoded, not what was declared
    assert image["X-Content-Type-Options"] == "nosniff"
    assert "private" in image["Cache-Control"]
    assert image.content == shot("WEBP")

    response = client.post(f"{base}/screenshots/{added.id}/delete")
    assert response.status_code == 302
    assert not AppScreenshot.objects.exists()
    assert "Screenshot deleted." in client.get(f"{base}/").content.decode()
    assert client.get(f"{base}/screenshots/{added.id}.img").status_code == 404
    actors = set(
        AuditLogEntry.objects.filter(action__startswith="app.screenshot").values_list(
            "actor_user", flat=True
        )
    )
    assert actors == {owner.pk}


@pytest.mark.parametrize(
    ("upload", "caption", "message"),
    [
        (
            SimpleUploadedFile("logo.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
            "",
            "SVG is refused",
        ),
        (
            SimpleUploadedFile("fake.png", b"not a png at all", content_type="image/png"),
            "",
            "not an image",
        ),
        (SimpleUploadedFile("anim.gif", shot("GIF"), content_type="image/gif"), "", "not GIF"),
        (SimpleUploadedFile("tiny.png", shot(size=(100, 100))), "", "320-2560 pixels"),
        (SimpleUploadedFile("huge.png", noise_png((700, 700))), "", "at most 1 MB"),
        (SimpleUploadedFile("ok.png", shot()), "y" * 201, "at most 200 characters"),
        (None, "no file", "Choose an image file"),
    ],
    ids=["svg", "not-image", "gif", "too-small", "too-heavy", "long-caption", "no-file"],
)
def test_the_page_says_why_a_file_was_refused(client, app, upload, caption, message):
    client.force_login(owner_of(app.partner.organization))
    base = base_url(app)
    data = {"caption": caption} | ({"image": upload} if upload is not None else {})

    response = client.post(f"{base}/screenshots/new", data, follow=True)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not AppScreenshot.objects.exists()


def test_the_ninth_is_refused_on_the_page_and_the_form_is_gone(client, app):
    for _ in range(8):
        screenshot_add(actor=SYSTEM, app=app, data=shot())
    client.force_login(owner_of(app.partner.organization))
    base = base_url(app)

    page = client.get(f"{base}/").content.decode()
    assert f"{base}/screenshots/new" not in page
    assert page.count('.img"') >= 8
    response = client.post(
        f"{base}/screenshots/new", {"image": SimpleUploadedFile("s.png", shot())}, follow=True
    )
    assert "at most 8 screenshots" in response.content.decode()
    assert AppScreenshot.objects.filter(app=app).count() == 8


def test_a_listed_app_goes_back_to_review_from_the_page(client, listed_app):
    client.force_login(owner_of(listed_app.partner.organization))
    base = base_url(listed_app)
    page = client.get(f"{base}/").content.decode()
    assert "sends the app back to review" in page

    response = client.post(
        f"{base}/screenshots/new", {"image": SimpleUploadedFile("s.png", shot())}, follow=True
    )

    assert "The app is back in review." in response.content.decode()
    assert App.objects.get(pk=listed_app.pk).state == App.State.IN_REVIEW
    # In review: no upload form, no delete buttons, the screenshot still shown.
    page = response.content.decode()
    assert f"{base}/screenshots/new" not in page and "/delete" not in page
    assert ".img" in page


def test_another_org_gets_404_on_every_route(client, app, other_org):
    mine = screenshot_add(actor=SYSTEM, app=app, data=shot())
    # The intruder is an approved partner with an app of its own, to rule out "no partner".
    their_app = app_create(
        actor=SYSTEM, partner=approved_partner(other_org), **{**APP, "name": "Globex Sync"}
    )
    theirs = screenshot_add(actor=SYSTEM, app=their_app, data=shot())
    client.force_login(owner_of(other_org))
    upload = {"image": SimpleUploadedFile("s.png", shot())}

    for base in (base_url(app), f"/o/{other_org.slug}/partner/apps/{app.id}"):
        assert client.post(f"{base}/screenshots/new", upload).status_code == 404
        assert client.post(f"{base}/screenshots/{mine.id}/delete").status_code == 404
        assert client.get(f"{base}/screenshots/{mine.id}.img").status_code == 404
    # Through its own app, the other org's screenshot id leads nowhere either.
    own = base_url(their_app)
    assert client.get(f"{own}/screenshots/{mine.id}.img").status_code == 404
    assert client.post(f"{own}/screenshots/{mine.id}/delete").status_code == 404
    assert client.get(f"{own}/screenshots/{theirs.id}.img").status_code == 200  # control

    assert AppScreenshot.objects.filter(app=app).count() == 1
    assert AppScreenshot.objects.filter(app=their_app).count() == 1
    assert (
        not AuditLogEntry.objects.filter(
            action__startswith="app.screenshot", organization=app.partner.organization
        )
        .exclude(actor_type="system")
        .exists()
    )


def test_developers_get_403_on_every_route(client, app):
    added = screenshot_add(actor=SYSTEM, app=app, data=shot())
    developer = UserFactory()
    MembershipFactory(organization=app.partner.organization, user=developer, role=Role.DEVELOPER)
    client.force_login(developer)
    base = base_url(app)

    upload = {"image": SimpleUploadedFile("s.png", shot())}
    assert client.post(f"{base}/screenshots/new", upload).status_code == 403
    assert client.post(f"{base}/screenshots/{added.id}/delete").status_code == 403
    assert client.get(f"{base}/screenshots/{added.id}.img").status_code == 403
    assert AppScreenshot.objects.filter(app=app).count() == 1


def test_add_and_delete_only_by_post(client, app):
    added = screenshot_add(actor=SYSTEM, app=app, data=shot())
    client.force_login(owner_of(app.partner.organization))
    base = base_url(app)
    assert client.get(f"{base}/screenshots/new").status_code == 405
    assert client.get(f"{base}/screenshots/{added.id}/delete").status_code == 405
    assert client.post(f"{base}/screenshots/{added.id}.img").status_code == 405
    assert AppScreenshot.objects.filter(app=app).count() == 1
