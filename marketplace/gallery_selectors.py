"""Reads for the public gallery (MKT-3): listed apps of approved partners, and their reviews.

Nothing here needs a sign-in; everything public goes through `public_apps()`, so a draft,
an app in review, one with changes requested, a suspended app or any app of a partner that
is not approved never shows, nor its logo, screenshots or reviews. Hidden reviews are
neither shown nor counted.

App descriptions are written by partners, who are not trusted like the operator: they are
rendered as Markdown with raw HTML left as text, links kept only for http(s), images dropped
to their alt text, and headings moved below the page's own.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit
from xml.etree import ElementTree

import markdown as markdown_lib
from django.db.models import (
    Avg,
    Count,
    DecimalField,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce
from django.utils.safestring import SafeString, mark_safe

from common.errors import NotFound
from marketplace.models import CATEGORIES, App, AppReview, AppScreenshot, Install, Partner
from portal.models import Organization

SORTS = {"popular": "Most installed", "newest": "Newest", "rating": "Best rated"}
MAX_QUERY = 100
VISIBLE = Q(reviews__hidden=False)


@dataclass(frozen=True)
class GalleryFilters:
    query: str = ""
    category: str = ""
    sort: str = ""
    problems: tuple[str, ...] = ()


def _printable(value: str) -> str:
    """Control characters (NUL included, which PostgreSQL refuses) never reach a query or
    a message."""
    return "".join(ch for ch in value if ch.isprintable()).strip()


def gallery_filters_parse(params: Mapping[str, str]) -> GalleryFilters:
    """Reads `?q=`, `?category=`, `?sort=`; a value that names nothing is ignored and the
    page says so, never an error page."""
    problems = []
    query = _printable(params.get("q") or "")
    if len(query) > MAX_QUERY:
        problems.append(f"Searches are at most {MAX_QUERY} characters; yours was shortened.")
        query = query[:MAX_QUERY].strip()
    category = _printable(params.get("category") or "")
    if category and category not in CATEGORIES:
        problems.append(f"“{category[:40]}” is not a category; showing all categories.")
        category = ""
    sort = _printable(params.get("sort") or "")
    if sort and sort not in SORTS:
        problems.append(
            f"“{sort[:40]}” is not a sort order (use {', '.join(SORTS)}); "
            "showing featured partners first."
        )
        sort = ""
    return GalleryFilters(query=query, category=category, sort=sort, problems=tuple(problems))


def active_installs_subquery() -> QuerySet[Install]:
    """An app's active installs, for annotating apps (a subquery: joining installs would
    skew the review figures annotated beside it)."""
    return (
        Install.objects.filter(app=OuterRef("pk"), uninstalled_at__isnull=True)
        .order_by()
        .values("app")
        .annotate(count=Count("pk"))
        .values("count")
    )


def public_apps() -> QuerySet[App]:
    """Every app the public may see, with its visible reviews' count and average rating,
    and its active installs (a subquery: joining installs would skew the review figures)."""
    active_installs = active_installs_subquery()
    return (
        App.objects.filter(state=App.State.LISTED, partner__status=Partner.Status.APPROVED)
        .select_related("partner", "partner__tier")
        .annotate(
            review_count=Count("reviews", filter=VISIBLE),
            rating=Avg(
                "reviews__rating",
                filter=VISIBLE,
                output_field=DecimalField(max_digits=5, decimal_places=2),
            ),
            install_count=Coalesce(Subquery(active_installs, output_field=IntegerField()), 0),
        )
    )


def gallery_list(*, filters: GalleryFilters) -> QuerySet[App]:
    """ "Popular" is the most active installs (then reviews)."""
    apps = public_apps().defer("logo", "description")
    if filters.query:
        apps = apps.filter(
            Q(name__icontains=filters.query)
            | Q(summary__icontains=filters.query)
            | Q(partner__display_name__icontains=filters.query)
        )
    if filters.category:
        apps = apps.filter(categories__contains=[filters.category])
    rating = F("rating").desc(nulls_last=True)
    order = {
        "popular": ["-install_count", "-review_count", rating, "name"],
        "newest": [F("listed_at").desc(nulls_last=True), "name"],
        "rating": [rating, "-review_count", "name"],
    }.get(filters.sort, ["-partner__featured", "-review_count", "name"])
    return apps.order_by(*order, "id")


def gallery_app_get(*, slug: str) -> App:
    app = public_apps().filter(slug=slug).first()
    if app is None:
        raise NotFound("No such app in the marketplace.")
    return app


def gallery_logo_get(*, slug: str) -> tuple[bytes, str]:
    row = (
        App.objects.filter(
            slug=slug, state=App.State.LISTED, partner__status=Partner.Status.APPROVED
        )
        .values_list("logo", "logo_content_type")
        .first()
    )
    if row is None or not row[0]:
        raise NotFound("No such logo.")
    return bytes(row[0]), row[1]


def gallery_screenshot_get(*, slug: str, screenshot_id) -> tuple[bytes, str]:
    row = (
        AppScreenshot.objects.filter(
            pk=screenshot_id,
            app__slug=slug,
            app__state=App.State.LISTED,
            app__partner__status=Partner.Status.APPROVED,
        )
        .values_list("image", "content_type")
        .first()
    )
    if row is None:
        raise NotFound("No such screenshot.")
    return bytes(row[0]), row[1]


def app_screenshots(*, app: App) -> QuerySet[AppScreenshot]:
    return app.screenshots.defer("image").order_by("position", "created_at")


def visible_reviews(*, app: App) -> QuerySet[AppReview]:
    return (
        AppReview.objects.filter(app=app, hidden=False)
        .select_related("organization")
        .order_by("-updated_at", "id")
    )


def review_for(*, app: App, organization: Organization) -> AppReview | None:
    """The organization's own review, hidden or not (its author still edits it)."""
    return AppReview.objects.filter(app=app, organization=organization).first()


def reported_review_ids(*, app: App, organization: Organization) -> set:
    return set(
        AppReview.objects.filter(app=app, reports__organization=organization).values_list(
            "id", flat=True
        )
    )


def rating_stars(rating) -> str:
    """★★★★☆ for 4.2 (rounded to whole stars); empty without a rating."""
    if rating is None:
        return ""
    whole = max(0, min(5, round(rating)))
    return "★" * whole + "☆" * (5 - whole)


# --- Partner-written Markdown ------------------------------------------------------------
SAFE_SCHEMES = {"http", "https"}
EXTENSIONS = ["fenced_code", "tables", "sane_lists"]


class _UntrustedTreeprocessor(markdown_lib.treeprocessors.Treeprocessor):
    """Links only to http(s) (others become plain text), no images (their alt text stays,
    so nothing is fetched from elsewhere), headings from h3 down."""

    def run(self, root: ElementTree.Element) -> None:
        for parent in root.iter():
            for index, child in enumerate(list(parent)):
                if child.tag == "img":
                    replacement = ElementTree.Element("span")
                    replacement.text = child.get("alt", "")
                    replacement.tail = child.tail
                    parent.remove(child)
                    parent.insert(index, replacement)
        for element in root.iter():
            if element.tag == "a":
                href = (element.get("href") or "").strip()
                if urlsplit(href).scheme.lower() in SAFE_SCHEMES and "\\" not in href:
                    element.attrib = {"href": href, "rel": "nofollow noopener ugc"}
                else:
                    element.tag = "span"
                    element.attrib = {}
            elif element.tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
                element.tag = f"h{min(6, int(element.tag[1]) + 2)}"
                element.attrib = {}


class UntrustedMarkdown(markdown_lib.extensions.Extension):
    """Raw HTML is not passed through: the block and inline HTML rules are removed, so a
    `<script>` stays text and is escaped when the tree is written out."""

    def extendMarkdown(self, md: markdown_lib.Markdown) -> None:
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")
        md.treeprocessors.register(_UntrustedTreeprocessor(md), "untrusted", 0)


def render_untrusted_markdown(text: str) -> SafeString:
    converter = markdown_lib.Markdown(extensions=[*EXTENSIONS, UntrustedMarkdown()])
    return mark_safe(converter.convert(text or ""))  # noqa: S308 -- raw HTML disabled above


def safe_link(url: str) -> str:
    """The URL if it is http(s), else empty: URLField also accepts ftp, which no page links."""
    return url if urlsplit(url or "").scheme.lower() in SAFE_SCHEMES else ""
