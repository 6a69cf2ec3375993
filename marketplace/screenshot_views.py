"""Partner pages for an app's screenshots: add, delete, and serve the image.

Same rules as the other app pages (marketplace/views.py): owners and admins only
(MEMBERS_MANAGE), the app fetched through the partner's own organization, so another
organization's app or screenshot is a 404. Adding and deleting redirect back to the app's
page with a message saying what happened (or exactly why an image was refused).
"""

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST, require_safe

from common.errors import TollgateError
from marketplace import apps_selectors, screenshots, selectors
from marketplace.models import App
from portal.audit import Actor
from portal.decorators import org_member_required
from portal.roles import Permission


class ScreenshotForm(forms.Form):
    """Shape only; the caption's length and the image itself are checked by the service,
    whose messages say exactly what is wrong."""

    image = forms.FileField()
    caption = forms.CharField(required=False, strip=True)


def _app(request: HttpRequest, app_id) -> App:
    partner = selectors.partner_for(organization=request.organization)
    return apps_selectors.app_get(partner=partner, app_id=app_id)


def _back(request: HttpRequest, app: App) -> HttpResponse:
    return redirect("marketplace:app_detail", slug=request.organization.slug, app_id=app.id)


@require_POST
@org_member_required(Permission.MEMBERS_MANAGE)
def screenshot_add(request: HttpRequest, app_id) -> HttpResponse:
    app = _app(request, app_id)
    form = ScreenshotForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Choose an image file for the screenshot.")
        return _back(request, app)
    data = form.cleaned_data["image"].read(screenshots.MAX_SCREENSHOT_BYTES + 1)
    try:
        screenshots.screenshot_add(
            actor=Actor.from_request(request),
            app=app,
            data=data,
            caption=form.cleaned_data["caption"],
        )
    except TollgateError as error:
        messages.error(request, error.detail)
    else:
        app.refresh_from_db(fields=["state"])
        note = " The app is back in review." if app.state == App.State.IN_REVIEW else ""
        messages.success(request, f"Screenshot added.{note}")
    return _back(request, app)


@require_POST
@org_member_required(Permission.MEMBERS_MANAGE)
def screenshot_delete(request: HttpRequest, app_id, screenshot_id) -> HttpResponse:
    app = _app(request, app_id)
    try:
        updated = screenshots.screenshot_delete(
            actor=Actor.from_request(request), app=app, screenshot_id=screenshot_id
        )
    except TollgateError as error:
        if error.status == 404:
            raise
        messages.error(request, error.detail)
    else:
        note = " The app is back in review." if updated.state == App.State.IN_REVIEW else ""
        messages.success(request, f"Screenshot deleted.{note}")
    return _back(request, app)


@require_safe
@org_member_required(Permission.MEMBERS_MANAGE)
def screenshot_image(request: HttpRequest, app_id, screenshot_id) -> HttpResponse:
    """The stored bytes, with the type found when they were checked; nosniff so a browser
    never reinterprets them, private because an unlisted app's images are not public."""
    app = _app(request, app_id)
    screenshot = screenshots.screenshot_get(app=app, screenshot_id=screenshot_id)
    response = HttpResponse(bytes(screenshot.image), content_type=screenshot.content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=60"
    return response
