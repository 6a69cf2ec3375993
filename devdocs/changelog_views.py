"""The public changelog pages and its Atom feed (DOCS-7). Thin: devdocs.changelog reads.

No sign-in: entries of private products, drafts and future-dated entries never show (the
selectors decide). Filters come as query parameters; a value that names nothing is ignored
and the page says so, never an error page.
"""

import re
from dataclasses import dataclass

from django.contrib.syndication.views import Feed
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.feedgenerator import Atom1Feed
from django.utils.http import urlencode

from common.errors import NotFound
from devdocs import changelog
from devdocs.markdown import render_markdown
from devdocs.models import ChangelogEntry

PAGE_SIZE = 20
FEED_SIZE = 50
# Root-relative links in entry bodies ("/changelog/deprecations"), made absolute for feed
# readers, which resolve them against nothing useful.
ROOT_RELATIVE_LINK = re.compile(r'(href|src)="/(?!/)')
# Buttons the page's script brings to life (copy code): dead text in a feed reader.
BUTTON = re.compile(r"<button\b[^>]*>.*?</button>", re.DOTALL)


def _filter_query(filters: changelog.ChangelogFilters) -> dict[str, str]:
    query = {}
    if filters.product is not None:
        query["product"] = filters.product.code
    if filters.kind:
        query["kind"] = filters.kind
    return query


def changelog_list(request: HttpRequest) -> HttpResponse:
    filters = changelog.changelog_filters_parse(request.GET)
    page = Paginator(changelog.changelog_list(filters=filters), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    entries = [
        {
            "entry": entry,
            "product": changelog.entry_product(entry),
            "body": render_markdown(entry.body),
        }
        for entry in page
    ]
    query = _filter_query(filters)
    return render(
        request,
        "devdocs/changelog/list.html",
        {
            "page": page,
            "entries": entries,
            "filters": filters,
            "products": changelog.public_products(),
            "kinds": ChangelogEntry.Kind.values,
            "feed_url": reverse("changelog:feed") + (f"?{urlencode(query)}" if query else ""),
        },
    )


def changelog_entry(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        entry = changelog.changelog_entry_get(slug=slug)
    except NotFound as error:
        raise Http404(error.detail) from error
    return render(
        request,
        "devdocs/changelog/entry.html",
        {
            "entry": entry,
            "product": changelog.entry_product(entry),
            "body": render_markdown(entry.body),
            "feed_url": reverse("changelog:feed"),
        },
    )


def deprecations(request: HttpRequest) -> HttpResponse:
    upcoming, past = changelog.deprecation_timeline()
    return render(
        request,
        "devdocs/changelog/deprecations.html",
        {
            "upcoming": [_timeline_row(row) for row in upcoming],
            "past": [_timeline_row(row) for row in past],
            "now": timezone.now(),
            "feed_url": reverse("changelog:feed") + "?kind=deprecated",
        },
    )


def _timeline_row(row: changelog.DeprecationRow) -> dict:
    return {
        "deprecation": row.deprecation,
        "version": row.deprecation.api_version,
        "product": row.deprecation.api_version.product,
        "endpoints": row.endpoints,
        "whole_version": row.deprecation.endpoint_id is None,
        "days_left": row.days_left,
        "guide": render_markdown(row.deprecation.migration_guide),
        "entry_slug": f"{changelog.DEPRECATION_SLUG_PREFIX}{row.deprecation.pk}",
    }


# --- Atom feed ----------------------------------------------------------------------------
@dataclass(frozen=True)
class FeedRequest:
    filters: changelog.ChangelogFilters
    base_url: str


class ChangelogAtom(Atom1Feed):
    """Atom 1.0 with each entry's full body as HTML `content` (Django's Atom writes only a
    `summary`)."""

    def add_item_elements(self, handler, item):
        super().add_item_elements(handler, item)
        handler.addQuickElement("content", item["content_html"], {"type": "html"})


class ChangelogFeed(Feed):
    """/changelog.atom, with the list's filters (`?product=`, `?kind=`; unknown values are
    ignored). Entry ids are `urn:uuid:<entry id>`, so they stay the same when an entry's
    title, slug or body is edited."""

    feed_type = ChangelogAtom
    title = "Tollgate changelog"
    subtitle = "Changes, deprecations and fixes of the APIs documented here."
    author_name = "Tollgate"

    def get_object(self, request: HttpRequest) -> FeedRequest:
        return FeedRequest(
            filters=changelog.changelog_filters_parse(request.GET),
            base_url=request.build_absolute_uri("/").rstrip("/"),
        )

    def link(self, obj: FeedRequest) -> str:
        query = _filter_query(obj.filters)
        return reverse("changelog:list") + (f"?{urlencode(query)}" if query else "")

    def feed_url(self, obj: FeedRequest) -> str:
        query = _filter_query(obj.filters)
        return reverse("changelog:feed") + (f"?{urlencode(query)}" if query else "")

    def items(self, obj: FeedRequest) -> list[ChangelogEntry]:
        entries = list(changelog.changelog_list(filters=obj.filters)[:FEED_SIZE])
        for entry in entries:
            entry.feed_base_url = obj.base_url  # per request: the feed object is shared
        return entries

    def item_title(self, item: ChangelogEntry) -> str:
        return item.title  # Atom titles are text: the XML writer escapes them

    def item_link(self, item: ChangelogEntry) -> str:
        return reverse("changelog:entry", kwargs={"slug": item.slug})

    def item_guid(self, item: ChangelogEntry) -> str:
        return item.id.urn

    def item_pubdate(self, item: ChangelogEntry):
        return item.published_at

    def item_updateddate(self, item: ChangelogEntry):
        return max(item.published_at, item.updated_at)

    def item_description(self, item: ChangelogEntry) -> None:
        return None  # the whole body goes in <content>

    def item_categories(self, item: ChangelogEntry) -> list[str]:
        product = changelog.entry_product(item)
        return [item.kind] + ([product.code] if product is not None else [])

    def item_extra_kwargs(self, item: ChangelogEntry) -> dict:
        base = item.feed_base_url
        html = BUTTON.sub("", str(render_markdown(item.body)))
        html = ROOT_RELATIVE_LINK.sub(lambda match: f'{match.group(1)}="{base}/', html)
        return {"content_html": html}
