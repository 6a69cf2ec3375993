"""Guides: Markdown files in docs/portal/, overridden or added by Guide rows from admin.

A file `docs/portal/<slug>.md` starts with a small front matter block:

    ---
    title: Get a key and make your first call
    summary: Sign up, issue a test key, call the sandbox.
    position: 10
    ---

A published Guide row of the same slug replaces the file's title, summary, position and
text, so an operator fixes a quickstart without a deploy; an unpublished row hides the slug
even when a file exists; a row without a file adds a guide. Nothing here is tenant data:
guides are public. The reader's own values are filled in by `guide_values`.
"""

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from common.errors import NotFound
from devdocs.markdown import PLACEHOLDER, render_with_toc
from devdocs.models import Guide
from devdocs.reader import Reader
from keys.models import ApiVersion

logger = logging.getLogger(__name__)

GUIDES_DIR: Path = settings.BASE_DIR / "docs" / "portal"
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")  # file names, and new slugs in admin
ANY_SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,80}$")  # what a Guide row may hold (SlugField)
FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(?P<meta>.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
FRONT_MATTER_KEYS = ("title", "summary", "position")
DEFAULT_POSITION = 100
# Shown instead of the sandbox URL's parts when no public API product is uploaded yet.
PRODUCT_PLACEHOLDER = "PRODUCT"
VERSION_PLACEHOLDER = "VERSION"


@dataclass(frozen=True)
class GuidePage:
    slug: str
    title: str
    summary: str
    position: int
    body: str  # Markdown, placeholders still in it
    source: str  # "file" or "admin"


@dataclass(frozen=True)
class FrontMatter:
    meta: dict[str, str]
    body: str
    problems: list[str]


def front_matter_parse(text: str) -> FrontMatter:
    """Splits `---`-fenced `key: value` lines from the body; never raises.

    Problems (no block, unknown keys, a position that is not a whole number) are returned,
    not raised: a guide with a slip still renders with fallbacks, and the test suite checks
    that every shipped file has none."""
    problems: list[str] = []
    match = FRONT_MATTER.match(text)
    if match is None:
        return FrontMatter(meta={}, body=text, problems=["no front matter block (--- … ---)"])
    meta: dict[str, str] = {}
    for number, line in enumerate(match.group("meta").splitlines(), start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, separator, value = line.partition(":")
        name = name.strip().lower()
        if not separator or name not in FRONT_MATTER_KEYS:
            problems.append(f"line {number}: expected one of {', '.join(FRONT_MATTER_KEYS)}")
            continue
        meta[name] = value.strip().strip("\"'").strip()
    if not meta.get("title"):
        problems.append("no title")
    position = meta.get("position")
    if position is not None and not position.isdigit():
        problems.append(f"position {position!r} is not a whole number")
    return FrontMatter(meta=meta, body=text[match.end() :].lstrip("\r\n"), problems=problems)


def _position(value: str | None) -> int:
    return int(value) if value and value.isdigit() else DEFAULT_POSITION


def _file_slugs() -> dict[str, Path]:
    """The guide files by slug. Only names that are valid slugs count, so a URL can never
    name a path outside the folder."""
    if not GUIDES_DIR.is_dir():
        return {}
    return {path.stem: path for path in GUIDES_DIR.glob("*.md") if SLUG.match(path.stem)}


def guide_file_text(*, slug: str) -> str | None:
    """The raw text of docs/portal/<slug>.md (front matter included), or None."""
    path = _file_slugs().get(slug)
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        logger.exception("could not read the guide file %s", path)
        return None


def guide_from_file(*, slug: str) -> GuidePage | None:
    """The guide as its file has it, ignoring admin rows (for admin's "load from file")."""
    text = guide_file_text(slug=slug)
    if text is None:
        return None
    parsed = front_matter_parse(text)
    if parsed.problems:
        logger.warning("guide file %s.md: %s", slug, "; ".join(parsed.problems))
    return GuidePage(
        slug=slug,
        title=parsed.meta.get("title") or slug.replace("-", " ").capitalize(),
        summary=parsed.meta.get("summary", ""),
        position=_position(parsed.meta.get("position")),
        body=parsed.body,
        source="file",
    )


def _from_row(row: Guide) -> GuidePage:
    return GuidePage(
        slug=row.slug,
        title=row.title,
        summary=row.summary,
        position=row.position,
        body=row.body,
        source="admin",
    )


def guide_file_slugs() -> list[str]:
    return sorted(_file_slugs())


def guide_list() -> list[GuidePage]:
    """Every published guide, files and admin rows merged, by position then slug."""
    rows = {row.slug: row for row in Guide.objects.all()}
    pages: dict[str, GuidePage] = {}
    for slug in _file_slugs():
        if slug in rows:
            continue
        page = guide_from_file(slug=slug)
        if page is not None:
            pages[slug] = page
    for slug, row in rows.items():
        if row.published:
            pages[slug] = _from_row(row)
    return sorted(pages.values(), key=lambda page: (page.position, page.slug))


def guide_get(*, slug: str) -> GuidePage:
    """One published guide; NotFound for an unknown or unpublished slug."""
    if not isinstance(slug, str) or not ANY_SLUG.match(slug):
        raise NotFound("No such guide.")
    row = Guide.objects.filter(slug=slug).first()
    if row is not None:
        if row.published:
            return _from_row(row)
        raise NotFound("No such guide.")
    page = guide_from_file(slug=slug)
    if page is None:
        raise NotFound("No such guide.")
    return page


def default_api_version() -> ApiVersion | None:
    """The version samples use: the first public product by code, its newest version that
    is not past its sunset (the sandbox would refuse a sunset one)."""
    return (
        ApiVersion.objects.filter(product__private=False)
        .filter(Q(sunset_at__isnull=True) | Q(sunset_at__gt=timezone.now()))
        .select_related("product")
        .order_by("product__code", "-created_at")
        .first()
    )


def guide_values(*, reader: Reader) -> dict[str, str]:
    """What `{{ api_key }}`, `{{ base_url }}`, `{{ sandbox_url }}`, `{{ product }}` and
    `{{ version }}` become for this reader (placeholders when anonymous or without a key)."""
    version = default_api_version()
    product_code = version.product.code if version else PRODUCT_PLACEHOLDER
    version_label = version.version if version else VERSION_PLACEHOLDER
    return {
        "api_key": reader.api_key,
        "base_url": reader.site_url,
        "sandbox_url": reader.sandbox_url(product_code, version_label),
        "product": product_code,
        "version": version_label,
    }


def guide_uses_key(*, page: GuidePage) -> bool:
    """Whether the guide shows the reader's key anywhere (else no note about keys)."""
    return any(match.group(1) == "api_key" for match in PLACEHOLDER.finditer(page.body))


def guide_render(*, page: GuidePage, values: dict[str, str]) -> tuple[str, str]:
    """The guide's HTML and table of contents with the reader's values filled in."""
    return render_with_toc(page.body, values)
