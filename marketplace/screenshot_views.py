"""Partner pages for an app's screenshots (filled in by their owner)."""

from django.http import Http404, HttpRequest, HttpResponse


def screenshot_add(request: HttpRequest, slug: str, app_id) -> HttpResponse:
    raise Http404


def screenshot_delete(request: HttpRequest, slug: str, app_id, screenshot_id) -> HttpResponse:
    raise Http404


def screenshot_image(request: HttpRequest, slug: str, app_id, screenshot_id) -> HttpResponse:
    raise Http404
