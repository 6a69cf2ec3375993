"""Writes (and the one read) for the screenshots of an app's listing (MKT-2).

Screenshots are part of what the operator reviews, so they follow the app's rules: they
change only while the app is editable (draft, changes requested, listed), and adding or
deleting one on a listed app sends it back to review, exactly as editing its text does
(apps_services.app_update), so nothing unreviewed is ever shown in the gallery. Each change
is audited. The images are checked like the logo (marketplace.images), with larger bounds.
"""

from django.db import transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from common.errors import Conflict, InvalidInput, NotFound
from marketplace.apps_services import EDITABLE, _notify, _record
from marketplace.images import check_image
from marketplace.models import App, AppScreenshot
from portal.audit import Actor

MAX_SCREENSHOTS = 8
MAX_SCREENSHOT_BYTES = 1024 * 1024
SCREENSHOT_MIN_SIDE, SCREENSHOT_MAX_SIDE = 320, 2560
MAX_CAPTION = 200
State = App.State


def screenshot_list(*, app: App) -> QuerySet[AppScreenshot]:
    """The app's screenshots in the partner's order, without their bytes (a page lists up to
    8 MB of images otherwise; the bytes are served one by one by their own view)."""
    return AppScreenshot.objects.filter(app=app).defer("image").order_by("position", "created_at")


def screenshot_get(*, app: App, screenshot_id) -> AppScreenshot:
    """Only through its app, which the caller fetched scoped to its partner (app_get)."""
    screenshot = AppScreenshot.objects.filter(app=app, pk=screenshot_id).first()
    if screenshot is None:
        raise NotFound("No such screenshot.")
    return screenshot


def _lock_editable(app: App) -> App:
    locked = App.objects.select_for_update().select_related("partner__organization").get(pk=app.pk)
    if locked.state not in EDITABLE:
        raise Conflict(
            f"An app that is {locked.state.replace('_', ' ')} cannot be edited now.",
            code="app_not_editable",
        )
    return locked


def _touch(locked: App) -> bool:
    """Marks the app changed; a listed app goes back to review. True if it did."""
    relisting = locked.state == State.LISTED
    if relisting:
        locked.state = State.IN_REVIEW
        locked.submitted_at = timezone.now()
    locked.updated_at = timezone.now()
    locked.save(update_fields=["state", "submitted_at", "updated_at"])
    return relisting


def screenshot_add(*, actor: Actor, app: App, data: bytes, caption: str = "") -> AppScreenshot:
    """Adds a screenshot last. PNG, JPEG or WebP, 320-2560 px a side, at most 1 MB;
    at most 8 per app (counted under the app's row lock, so two uploads cannot make 9)."""
    caption = (caption or "").strip()
    if len(caption) > MAX_CAPTION:
        raise InvalidInput(
            f"The caption may be at most {MAX_CAPTION} characters.",
            field="caption",
            code="caption_too_long",
        )
    content_type = check_image(
        data,
        what="The screenshot",
        field="image",
        code="invalid_screenshot",
        max_bytes=MAX_SCREENSHOT_BYTES,
        min_side=SCREENSHOT_MIN_SIDE,
        max_side=SCREENSHOT_MAX_SIDE,
    )
    with transaction.atomic():
        locked = _lock_editable(app)
        existing = AppScreenshot.objects.filter(app=locked)
        if existing.count() >= MAX_SCREENSHOTS:
            raise Conflict(
                f"An app has at most {MAX_SCREENSHOTS} screenshots; delete one first.",
                code="too_many_screenshots",
            )
        last = existing.aggregate(last=Max("position"))["last"]
        screenshot = AppScreenshot.objects.create(
            app=locked,
            image=data,
            content_type=content_type,
            caption=caption,
            position=0 if last is None else last + 1,
        )
        relisting = _touch(locked)
        _record(
            actor,
            locked,
            "app.screenshot_added",
            {
                "screenshot": str(screenshot.id),
                "caption": caption,
                "bytes": len(data),
                "type": content_type,
                "state": locked.state,
            },
        )
        if relisting:
            _notify(locked)
    return screenshot


def screenshot_delete(*, actor: Actor, app: App, screenshot_id) -> App:
    """Deletes one screenshot of an editable app (the others keep their order)."""
    with transaction.atomic():
        locked = _lock_editable(app)
        screenshot = screenshot_get(app=locked, screenshot_id=screenshot_id)
        caption = screenshot.caption
        screenshot.delete()
        relisting = _touch(locked)
        _record(
            actor,
            locked,
            "app.screenshot_deleted",
            {"screenshot": str(screenshot_id), "caption": caption, "state": locked.state},
        )
        if relisting:
            _notify(locked)
    return locked
