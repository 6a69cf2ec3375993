"""The public status page (DOCS-6): `/status`, `/status.json` and each incident's page.

No sign-in: everything shown is public by construction (devdocs/status.py leaves out
private products and incidents that touch only them). The page and the feed render the
same cached snapshot.
"""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_safe

from common.errors import NotFound
from devdocs import status
from devdocs.health import BOUNDS_MS, WINDOWS
from devdocs.reader import site_url

FEED_MAX_AGE = 30


@require_safe
def status_page(request: HttpRequest) -> HttpResponse:
    snapshot = status.status_snapshot()
    response = render(
        request,
        "devdocs/status/page.html",
        {
            "snapshot": snapshot,
            "windows": [window.code for window in WINDOWS],
            "slowest_bound": BOUNDS_MS[-1],
        },
    )
    # The top bar differs for signed-in readers: only their own browser may keep a copy.
    patch_cache_control(response, private=True, max_age=FEED_MAX_AGE)
    return response


@require_safe
def status_feed(request: HttpRequest) -> JsonResponse:
    snapshot = status.status_snapshot()
    response = JsonResponse(
        status.status_json(snapshot, site_url=site_url(request)), json_dumps_params={"indent": 1}
    )
    patch_cache_control(response, public=True, max_age=FEED_MAX_AGE)
    response["Access-Control-Allow-Origin"] = "*"  # public data, read by other sites' widgets
    return response


@require_safe
def incident_page(request: HttpRequest, incident_id) -> HttpResponse:
    try:
        incident = status.incident_get(incident_id=incident_id)
    except NotFound:
        return render(request, "404.html", {"message": "No such incident."}, status=404)
    return render(request, "devdocs/status/incident.html", {"incident": incident})
