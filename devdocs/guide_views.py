"""Public guide pages: the index and one guide, with the reader's own values filled in.

No sign-in is needed. A signed-in reader whose role may use keys sees their organization's
test key in every sample (devdocs/reader.py), so those responses are never cached; everyone
else sees placeholders and a note saying how to get their own values in.
"""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.views.decorators.http import require_safe

from common.errors import NotFound
from devdocs import guides
from devdocs.reader import Reader, key_organizations, reader_for


def _reader_context(request: HttpRequest, reader: Reader) -> dict:
    return {
        "reader": reader,
        "key_organizations": key_organizations(request),
        "signed_in": request.user.is_authenticated,
    }


def _personal(response: HttpResponse, request: HttpRequest) -> HttpResponse:
    """A page that may hold the reader's key must not be stored by any cache."""
    patch_vary_headers(response, ["Cookie"])
    if request.user.is_authenticated:
        add_never_cache_headers(response)
    return response


@require_safe
def guide_index(request: HttpRequest) -> HttpResponse:
    response = render(request, "devdocs/guides/index.html", {"guides": guides.guide_list()})
    return _personal(response, request)


@require_safe
def guide_detail(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        page = guides.guide_get(slug=slug)
    except NotFound as error:
        raise Http404(error.detail) from error
    reader = reader_for(request)
    values = guides.guide_values(reader=reader)
    body, toc = guides.guide_render(page=page, values=values)
    context = {
        "guide": page,
        "body": body,
        "toc": toc,
        "values": values,
        "uses_key": guides.guide_uses_key(page=page),
        "guides": guides.guide_list(),
        **_reader_context(request, reader),
    }
    response = render(request, "devdocs/guides/detail.html", context)
    return _personal(response, request)
