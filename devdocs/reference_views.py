"""The API reference pages and collection downloads (DOCS-1, DOCS-4): thin views.

Public for public products, no sign-in needed; a private product is a 404 for everyone but
staff. A signed-in reader sees their own test key in samples and collections, so those
responses are never stored by a cache; anonymous ones hold only the placeholder.
"""

import re

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers, patch_cache_control, patch_vary_headers

from common.errors import NotFound
from devdocs import collections, reference
from devdocs.reader import Reader, key_organizations, reader_for
from keys.models import ApiProduct, ApiVersion

ANONYMOUS_MAX_AGE = 300


def _version(request: HttpRequest, product_code: str, version: str) -> ApiVersion:
    try:
        product = reference.product_get(user=request.user, code=product_code)
        return reference.version_get(product=product, version=version)
    except NotFound as error:
        raise Http404(error.detail) from error


def _caching(
    response: HttpResponse, request: HttpRequest, reader: Reader, product: ApiProduct
) -> HttpResponse:
    """A response for a signed-in reader (their key, their e-mail in the top bar) or about a
    private product is never stored; an anonymous one may be, briefly, by any cache."""
    patch_vary_headers(response, ["Cookie"])
    if request.user.is_authenticated or reader.signed_in_with_key or product.private:
        add_never_cache_headers(response)
        patch_cache_control(response, private=True)
    else:
        patch_cache_control(response, public=True, max_age=ANONYMOUS_MAX_AGE)
    return response


def docs_index(request: HttpRequest) -> HttpResponse:
    products = reference.products_for_reader(user=request.user)
    response = render(request, "devdocs/reference/index.html", {"products": products})
    patch_vary_headers(response, ["Cookie"])
    return response


def product_latest(request: HttpRequest, product: str) -> HttpResponse:
    """The newest version; `?version=` picks another (the switcher's form without JS)."""
    try:
        found = reference.product_get(user=request.user, code=product)
        wanted = request.GET.get("version")
        if wanted:
            api_version = reference.version_get(product=found, version=wanted)
        else:
            api_version = reference.newest_version(found)
    except NotFound as error:
        raise Http404(error.detail) from error
    return redirect("reference:version", product=found.code, version=api_version.version)


def version_reference(request: HttpRequest, product: str, version: str) -> HttpResponse:
    api_version = _version(request, product, version)
    reader = reader_for(request)
    page = reference.reference_page(
        api_version=api_version, reader=reader, query=request.GET.get("q", "")
    )
    response = render(
        request,
        "devdocs/reference/version.html",
        {
            "page": page,
            "reader": reader,
            "signed_in": request.user.is_authenticated,
            "key_organizations": key_organizations(request),
            "postman_url": reverse("reference:postman", args=[product, version]),
            "insomnia_url": reverse("reference:insomnia", args=[product, version]),
        },
    )
    return _caching(response, request, reader, api_version.product)


def _filename(api_version: ApiVersion, suffix: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{api_version.product.code}-{api_version.version}")
    return f"{stem.strip('-.') or 'api'}.{suffix}"


def _download(
    data: dict, filename: str, request: HttpRequest, reader: Reader, product: ApiProduct
) -> HttpResponse:
    response = JsonResponse(data, json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return _caching(response, request, reader, product)


def postman(request: HttpRequest, product: str, version: str) -> HttpResponse:
    api_version = _version(request, product, version)
    reader = reader_for(request)
    data = collections.postman_collection(api_version=api_version, reader=reader)
    filename = _filename(api_version, "postman_collection.json")
    return _download(data, filename, request, reader, api_version.product)


def insomnia(request: HttpRequest, product: str, version: str) -> HttpResponse:
    api_version = _version(request, product, version)
    reader = reader_for(request)
    data = collections.insomnia_export(api_version=api_version, reader=reader)
    filename = _filename(api_version, "insomnia.json")
    return _download(data, filename, request, reader, api_version.product)
