"""Changelog entries and deprecations (DOCS-7, GATE-7): the operator's writes, the public
reads, and the e-mail to organizations that still call what is going away.

A deprecation is the one source of truth for its target: saving it marks the endpoint (or
every endpoint of a whole version, and the version itself) deprecated with the same sunset,
so the gate's `Deprecation`/`Sunset` headers and `endpoint_sunset` refusals agree with the
public timeline. Each deprecation also writes its own changelog entry (kind `deprecated`,
slug `deprecation-<id>`, published at the announcement), so the changelog list, its filters,
pagination and the Atom feed need no second source.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from billing.models import UsageEvent, UsageRollup
from common.errors import Conflict, InvalidInput, NotFound, TollgateError
from devdocs.models import ChangelogEntry, Deprecation, DeprecationNotice
from keys.models import ApiProduct, ApiVersion, Endpoint
from keys.openapi import parse_openapi
from portal.audit import Actor, audit_record
from portal.models import Organization
from portal.notifications import email_on_commit, member_emails
from portal.roles import Role

# Slugs the changelog's own routes use: an entry with one of them could never be reached.
RESERVED_SLUGS = frozenset({"deprecations"})
DEPRECATION_SLUG_PREFIX = "deprecation-"
# Who hears of a deprecation: the people who write and run the calls, not billing or viewers.
NOTICE_ROLES = (Role.OWNER, Role.ADMIN, Role.DEVELOPER)
CALL_WINDOW = timedelta(days=30)
NOTICE_ACTOR = "deprecation-notices"
# What a product code can be (a slug); anything else names no product and is not looked up,
# so a stray NUL or a megabyte of text never reaches the database.
PRODUCT_CODE = re.compile(r"[-a-zA-Z0-9_]{1,64}")


# --- Changelog entries: reads ------------------------------------------------------------
def _public_entries(now: datetime) -> QuerySet[ChangelogEntry]:
    """Published (not draft, not future-dated) entries of no product or a public one."""
    return (
        ChangelogEntry.objects.filter(published_at__isnull=False, published_at__lte=now)
        .exclude(product__private=True)
        .exclude(api_version__product__private=True)
        .select_related("product", "api_version", "api_version__product")
    )


@dataclass(frozen=True)
class ChangelogFilters:
    """The list's filters after checking; `problems` says, in words, what was ignored."""

    product: ApiProduct | None = None
    kind: str | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)


def changelog_filters_parse(params: Mapping[str, str]) -> ChangelogFilters:
    """Reads `?product=` (a public product's code) and `?kind=`; a value that names nothing
    is ignored with a message rather than answered with an error page."""
    problems = []
    product = None
    code = (params.get("product") or "").strip()
    if code:
        if PRODUCT_CODE.fullmatch(code):
            product = public_products().filter(code=code).first()
        if product is None:
            problems.append(f"No public API product is called “{code[:64]}”; showing all products.")
    kind = (params.get("kind") or "").strip()
    if kind and kind not in ChangelogEntry.Kind.values:
        problems.append(
            f"“{kind[:40]}” is not a kind of change (use one of "
            f"{', '.join(ChangelogEntry.Kind.values)}); showing all kinds."
        )
        kind = ""
    return ChangelogFilters(product=product, kind=kind or None, problems=tuple(problems))


def public_products() -> QuerySet[ApiProduct]:
    return ApiProduct.objects.filter(private=False).order_by("code")


def changelog_list(
    *, filters: ChangelogFilters | None = None, now: datetime | None = None
) -> QuerySet[ChangelogEntry]:
    """Published public entries, newest first, narrowed by the filters."""
    entries = _public_entries(now or timezone.now())
    if filters is not None and filters.product is not None:
        entries = entries.filter(
            Q(product=filters.product) | Q(api_version__product=filters.product)
        )
    if filters is not None and filters.kind:
        entries = entries.filter(kind=filters.kind)
    return entries.order_by("-published_at", "-created_at", "-id")


def changelog_entry_get(*, slug: str, now: datetime | None = None) -> ChangelogEntry:
    """A published public entry; drafts, future and private entries are not found."""
    entry = _public_entries(now or timezone.now()).filter(slug=slug).first()
    if entry is None:
        raise NotFound("No published changelog entry has that address.")
    return entry


def entry_product(entry: ChangelogEntry) -> ApiProduct | None:
    """The product an entry is about, from itself or its version."""
    if entry.product is not None:
        return entry.product
    return entry.api_version.product if entry.api_version is not None else None


# --- Changelog entries: writes -----------------------------------------------------------
def changelog_entry_check(
    *, slug: str, product: ApiProduct | None, api_version: ApiVersion | None
) -> None:
    """What the admin form checks before saving an entry."""
    if slug in RESERVED_SLUGS:
        raise InvalidInput(
            f"“{slug}” is the address of another page; pick another slug.", field="slug"
        )
    if product is not None and api_version is not None and api_version.product_id != product.pk:
        raise InvalidInput(
            f"{api_version} is a version of {api_version.product.code}, not {product.code}.",
            field="api_version",
            code="version_not_in_product",
        )


def changelog_entries_publish(
    *, actor: Actor, entries: Iterable[ChangelogEntry], now: datetime | None = None
) -> int:
    """Publishes drafts and scheduled entries now; entries already out keep their date."""
    now = now or timezone.now()
    published = 0
    with transaction.atomic():
        for entry in entries:
            if entry.published_at is not None and entry.published_at <= now:
                continue
            before = entry.published_at
            entry.published_at = now
            entry.updated_at = now
            entry.save(update_fields=["published_at", "updated_at"])
            audit_record(
                actor=actor,
                action="changelogentry.published",
                organization=None,
                target=entry,
                changes={"published_at": [str(before), now.isoformat()]},
            )
            published += 1
    return published


# --- Deprecations: reads -----------------------------------------------------------------
def deprecation_target_label(deprecation: Deprecation) -> str:
    version = deprecation.api_version
    if deprecation.endpoint is not None:
        return f"{deprecation.endpoint} ({version.product.code} {version.version})"
    return f"{version.product.code} {version.version} (the whole version)"


def deprecation_endpoints(deprecation: Deprecation) -> list[Endpoint]:
    """The endpoints a deprecation covers: its own, or every one of its version."""
    if deprecation.endpoint is not None:
        return [deprecation.endpoint]
    return list(deprecation.api_version.endpoints.order_by("path_template", "method"))


def deprecation_endpoint_labels(deprecation: Deprecation) -> list[str]:
    """The labels the gate writes on usage for these endpoints ("METHOD /path/template")."""
    return sorted({f"{e.method} {e.path_template}" for e in deprecation_endpoints(deprecation)})


def days_until(moment: datetime, now: datetime) -> int:
    """Calendar days (UTC) from today to the day of `moment`: a sunset on 9 January is
    "45 days" away on 25 November whatever the hour, as a reader counts it."""
    return max((moment.astimezone(UTC).date() - now.astimezone(UTC).date()).days, 0)


@dataclass(frozen=True)
class DeprecationRow:
    """A deprecation as the public timeline shows it."""

    deprecation: Deprecation
    endpoints: list[Endpoint]
    days_left: int | None  # calendar days to the sunset (0: today); None once it has passed

    @property
    def upcoming(self) -> bool:
        return self.days_left is not None


def deprecation_timeline(
    *, now: datetime | None = None
) -> tuple[list[DeprecationRow], list[DeprecationRow]]:
    """Announced deprecations of public products: (upcoming, soonest sunset first; past,
    most recent sunset first)."""
    now = now or timezone.now()
    deprecations = (
        Deprecation.objects.filter(announced_at__lte=now)
        .exclude(api_version__product__private=True)
        .select_related("api_version__product", "endpoint")
        .prefetch_related("api_version__endpoints")
        .order_by("sunset_at", "id")
    )
    upcoming, past = [], []
    for deprecation in deprecations:
        if deprecation.sunset_at > now:
            days = days_until(deprecation.sunset_at, now)
            upcoming.append(DeprecationRow(deprecation, deprecation_endpoints(deprecation), days))
        else:
            past.append(DeprecationRow(deprecation, deprecation_endpoints(deprecation), None))
    past.reverse()
    return upcoming, past


# --- Deprecations: writes ----------------------------------------------------------------
def deprecation_check(
    *,
    api_version: ApiVersion | None,
    endpoint: Endpoint | None,
    announced_at: datetime | None,
    sunset_at: datetime | None,
    deprecation: Deprecation | None = None,
    now: datetime | None = None,
) -> None:
    """The rules of a deprecation; the admin form runs them before anything is saved."""
    if api_version is None:
        raise InvalidInput("Choose the API version.", field="api_version")
    if sunset_at is None:
        raise InvalidInput("Give the sunset date.", field="sunset_at")
    # Saving marks the target at once (the gate sends Deprecation/Sunset from then on), so an
    # announcement in the future would tell callers before the timeline and changelog do.
    # An existing row keeps a future announcement it already had, so editing other fields
    # of it still works.
    kept = deprecation is not None and deprecation.announced_at == announced_at
    if announced_at is not None and announced_at > (now or timezone.now()) and not kept:
        raise InvalidInput(
            "The announcement cannot be in the future: announce now or in the past; "
            "schedule by saving it later.",
            field="announced_at",
            code="announcement_in_future",
        )
    if announced_at is not None and sunset_at <= announced_at:
        raise InvalidInput(
            "The sunset must come after the announcement.",
            field="sunset_at",
            code="sunset_before_announcement",
        )
    if endpoint is not None and endpoint.api_version_id != api_version.pk:
        raise InvalidInput(
            f"{endpoint} is an endpoint of {endpoint.api_version}, not of {api_version}.",
            field="endpoint",
            code="endpoint_not_in_version",
        )
    same_target = Deprecation.objects.filter(api_version=api_version, endpoint=endpoint)
    if deprecation is not None and deprecation.pk is not None:
        same_target = same_target.exclude(pk=deprecation.pk)
    if same_target.exists():
        target = endpoint if endpoint is not None else f"{api_version} as a whole"
        raise Conflict(
            f"{target} already has a deprecation; change that one.",
            field="endpoint",
            code="deprecation_exists",
        )


def _covered_endpoint_ids(api_version_id, endpoint_id) -> set:
    if endpoint_id is not None:
        return {endpoint_id}
    return set(Endpoint.objects.filter(api_version_id=api_version_id).values_list("pk", flat=True))


def _document_marks(api_version: ApiVersion) -> dict[tuple[str, str], tuple[bool, datetime | None]]:
    """What the version's OpenAPI document itself says (`deprecated`, `x-sunset`): restored
    on an endpoint when the last deprecation covering it goes."""
    try:
        operations = parse_openapi(api_version.document).operations
    except TollgateError:
        return {}
    return {(op.method, op.path_template): (op.deprecated, op.sunset_at) for op in operations}


def _set_marks(*, endpoint_ids: set) -> dict:
    """The marks the deprecations now set on these endpoints: (True, earliest sunset) for
    each one a deprecation covers. Read before a change so that a withdrawal can tell a
    value it set from one the operator typed in by hand since."""
    endpoints = list(
        Endpoint.objects.filter(pk__in=endpoint_ids).values_list("pk", "api_version_id")
    )
    covering: dict = {}
    for deprecation in Deprecation.objects.filter(
        api_version_id__in={version_id for _pk, version_id in endpoints}
    ):
        covering.setdefault(deprecation.api_version_id, []).append(deprecation)
    marks = {}
    for pk, version_id in endpoints:
        sunsets = [d.sunset_at for d in covering.get(version_id, []) if d.endpoint_id in (None, pk)]
        if sunsets:
            marks[pk] = (True, min(sunsets))
    return marks


def _apply_marks(
    *,
    version_ids: set,
    endpoint_ids: set,
    released_endpoints: Mapping | None = None,
    released_version: tuple | None = None,
) -> None:
    """Makes the gate's fields agree with the deprecations of these versions and endpoints.

    An endpoint covered by deprecations (its own, or its whole version's) is deprecated
    and sunsets at the earliest of their sunsets; one no longer covered gets back what the
    document says. Only the endpoints touched by the change are recomputed, so a sunset the
    operator set on another endpoint by hand is left alone.

    A withdrawal (a deletion, or a change that no longer covers a target) passes what the
    deprecations had set on what it releases: `released_endpoints` (endpoint id → marks)
    and `released_version` ((version id, deprecated_at, sunset_at)). A field whose value
    differs from that was changed by hand since, and is kept."""
    released_endpoints = released_endpoints or {}
    versions = {
        version.pk: version
        for version in ApiVersion.objects.filter(
            pk__in=version_ids
            | set(
                Endpoint.objects.filter(pk__in=endpoint_ids).values_list(
                    "api_version_id", flat=True
                )
            )
        )
    }
    by_version: dict = {pk: [] for pk in versions}
    for deprecation in Deprecation.objects.filter(api_version_id__in=versions.keys()):
        by_version[deprecation.api_version_id].append(deprecation)
    for version_id in version_ids:
        version = versions[version_id]
        whole = [d for d in by_version[version_id] if d.endpoint_id is None]
        deprecated_at = min((d.announced_at for d in whole), default=None)
        sunset_at = min((d.sunset_at for d in whole), default=None)
        if not whole and released_version is not None and released_version[0] == version_id:
            # Nothing covers the version any more: clear only what the deprecation set.
            _pk, set_deprecated_at, set_sunset_at = released_version
            if version.deprecated_at != set_deprecated_at:
                deprecated_at = version.deprecated_at
            if version.sunset_at != set_sunset_at:
                sunset_at = version.sunset_at
        if (version.deprecated_at, version.sunset_at) != (deprecated_at, sunset_at):
            version.deprecated_at, version.sunset_at = deprecated_at, sunset_at
            version.save(update_fields=["deprecated_at", "sunset_at"])
    documents: dict = {}
    changed = []
    for endpoint in Endpoint.objects.filter(pk__in=endpoint_ids).order_by("pk"):
        current = (endpoint.deprecated, endpoint.sunset_at)
        if endpoint.pk in released_endpoints and current != released_endpoints[endpoint.pk]:
            continue  # set by hand after the deprecation marked it: the operator's value
        covering = [
            d for d in by_version[endpoint.api_version_id] if d.endpoint_id in (None, endpoint.pk)
        ]
        if covering:
            marks = (True, min(d.sunset_at for d in covering))
        else:
            if endpoint.api_version_id not in documents:
                documents[endpoint.api_version_id] = _document_marks(
                    versions[endpoint.api_version_id]
                )
            marks = documents[endpoint.api_version_id].get(
                (endpoint.method, endpoint.path_template), (False, None)
            )
        if current != marks:
            endpoint.deprecated, endpoint.sunset_at = marks
            changed.append(endpoint)
    Endpoint.objects.bulk_update(changed, ["deprecated", "sunset_at"])


def _entry_body(deprecation: Deprecation) -> str:
    version = deprecation.api_version
    if deprecation.endpoint is not None:
        what = f"`{deprecation.endpoint}` of {version.product.name} {version.version} is"
    else:
        what = f"Every endpoint of {version.product.name} {version.version} is"
    lines = [
        f"{what} deprecated and stops answering on **{deprecation.sunset_at:%Y-%m-%d}** "
        f"({deprecation.sunset_at:%H:%M} UTC); calls after that are refused with "
        "`endpoint_sunset`. Until then its responses carry `Deprecation` and `Sunset` headers.",
    ]
    if deprecation.replacement:
        lines.append(f"Use `{deprecation.replacement}` instead.")
    timeline = reverse("changelog:deprecations") + f"#deprecation-{deprecation.pk}"
    lines.append(f"See the [deprecation timeline]({timeline}).")
    text = "\n\n".join(lines)
    if deprecation.migration_guide.strip():
        text += "\n\n## Migration guide\n\n" + deprecation.migration_guide.strip()
    return text


def _entry_sync(deprecation: Deprecation, now: datetime) -> ChangelogEntry:
    """The deprecation's own changelog entry, written again on every change of it."""
    version = deprecation.api_version
    target = (
        f"{deprecation.endpoint} in {version.product.code} {version.version}"
        if deprecation.endpoint is not None
        else f"{version.product.code} {version.version}"
    )
    entry, _created = ChangelogEntry.objects.update_or_create(
        slug=f"{DEPRECATION_SLUG_PREFIX}{deprecation.pk}",
        defaults={
            "title": f"Deprecated: {target}, sunset {deprecation.sunset_at:%Y-%m-%d}"[:200],
            "body": _entry_body(deprecation),
            "kind": ChangelogEntry.Kind.DEPRECATED,
            "product": version.product,
            "api_version": version,
            "published_at": deprecation.announced_at,
            "updated_at": now,
        },
    )
    return entry


def _lock_versions(*version_ids) -> None:
    """Serialises deprecation changes per version (the one-per-target rule has no database
    constraint); rows locked in primary-key order so two changes cannot deadlock."""
    ids = sorted({pk for pk in version_ids if pk is not None}, key=str)
    list(ApiVersion.objects.select_for_update().filter(pk__in=ids).order_by("pk"))


def _changes(deprecation: Deprecation) -> dict:
    return {
        "api_version": str(deprecation.api_version),
        "endpoint": str(deprecation.endpoint) if deprecation.endpoint else None,
        "announced_at": deprecation.announced_at.isoformat(),
        "sunset_at": deprecation.sunset_at.isoformat(),
        "replacement": deprecation.replacement,
    }


def _queue_notices(deprecation_id) -> None:
    from devdocs.tasks import send_deprecation_notices  # tasks import this module

    transaction.on_commit(lambda: send_deprecation_notices.delay(str(deprecation_id)))


def _released_version(deprecation: Deprecation) -> tuple | None:
    """What a whole-version deprecation set on its version, as `_apply_marks` expects it."""
    if deprecation.endpoint_id is not None:
        return None
    return (deprecation.api_version_id, deprecation.announced_at, deprecation.sunset_at)


def deprecation_create(
    *,
    actor: Actor,
    api_version: ApiVersion,
    sunset_at: datetime,
    endpoint: Endpoint | None = None,
    announced_at: datetime | None = None,
    replacement: str = "",
    migration_guide: str = "",
) -> Deprecation:
    """Announces a deprecation, marks its target for the gate and writes its changelog entry;
    organizations that called the target hear of it once this commits."""
    now = timezone.now()
    announced_at = announced_at or now
    with transaction.atomic():
        _lock_versions(api_version.pk)
        deprecation_check(
            api_version=api_version,
            endpoint=endpoint,
            announced_at=announced_at,
            sunset_at=sunset_at,
            now=now,
        )
        deprecation = Deprecation.objects.create(
            api_version=api_version,
            endpoint=endpoint,
            announced_at=announced_at,
            sunset_at=sunset_at,
            replacement=replacement.strip(),
            migration_guide=migration_guide,
        )
        _apply_marks(
            version_ids={api_version.pk} if endpoint is None else set(),
            endpoint_ids=_covered_endpoint_ids(api_version.pk, endpoint.pk if endpoint else None),
        )
        _entry_sync(deprecation, now)
        audit_record(
            actor=actor,
            action="deprecation.created",
            organization=None,
            target=deprecation,
            changes=_changes(deprecation),
        )
        _queue_notices(deprecation.pk)
    return deprecation


def deprecation_update(
    *,
    actor: Actor,
    deprecation: Deprecation,
    api_version: ApiVersion,
    endpoint: Endpoint | None,
    sunset_at: datetime,
    announced_at: datetime | None = None,
    replacement: str = "",
    migration_guide: str = "",
) -> Deprecation:
    """Changes a deprecation; the old and the new target are both brought in line."""
    now = timezone.now()
    with transaction.atomic():
        _lock_versions(deprecation.api_version_id, api_version.pk)
        before = Deprecation.objects.select_related("api_version__product", "endpoint").get(
            pk=deprecation.pk
        )
        announced_at = announced_at or before.announced_at
        deprecation_check(
            api_version=api_version,
            endpoint=endpoint,
            announced_at=announced_at,
            sunset_at=sunset_at,
            deprecation=before,
            now=now,
        )
        old_changes = _changes(before)
        old_version_ids = {before.api_version_id} if before.endpoint_id is None else set()
        old_endpoint_ids = _covered_endpoint_ids(before.api_version_id, before.endpoint_id)
        new_endpoint_ids = _covered_endpoint_ids(api_version.pk, endpoint.pk if endpoint else None)
        released = _set_marks(endpoint_ids=old_endpoint_ids - new_endpoint_ids)
        deprecation.api_version = api_version
        deprecation.endpoint = endpoint
        deprecation.announced_at = announced_at
        deprecation.sunset_at = sunset_at
        deprecation.replacement = replacement.strip()
        deprecation.migration_guide = migration_guide
        deprecation.save()
        _apply_marks(
            version_ids=old_version_ids | ({api_version.pk} if endpoint is None else set()),
            endpoint_ids=old_endpoint_ids | new_endpoint_ids,
            released_endpoints=released,
            released_version=_released_version(before),
        )
        _entry_sync(deprecation, now)
        same_target = (before.api_version_id, before.endpoint_id) == (
            api_version.pk,
            endpoint.pk if endpoint else None,
        )
        if same_target and sunset_at < before.sunset_at:
            # Only for the same target: the organizations told were callers of that one
            # (and another target may be another, even a private, product).
            _notices_resend(deprecation, previous_sunset=before.sunset_at, now=now)
        new_changes = _changes(deprecation)
        audit_record(
            actor=actor,
            action="deprecation.updated",
            organization=None,
            target=deprecation,
            changes={
                name: [old_changes[name], value]
                for name, value in new_changes.items()
                if old_changes[name] != value
            },
        )
        _queue_notices(deprecation.pk)
    return deprecation


def deprecation_delete(*, actor: Actor, deprecation: Deprecation) -> None:
    """Withdraws a deprecation: its entry goes, and its target gets back what the document
    (or another deprecation still covering it) says."""
    with transaction.atomic():
        _lock_versions(deprecation.api_version_id)
        version_ids = {deprecation.api_version_id} if deprecation.endpoint_id is None else set()
        endpoint_ids = _covered_endpoint_ids(deprecation.api_version_id, deprecation.endpoint_id)
        released = _set_marks(endpoint_ids=endpoint_ids)
        # Its saved dates, not the ones a form may have put on the object.
        stored = Deprecation.objects.filter(pk=deprecation.pk).first() or deprecation
        audit_record(
            actor=actor,
            action="deprecation.deleted",
            organization=None,
            target=deprecation,
            changes=_changes(deprecation),
        )
        ChangelogEntry.objects.filter(slug=f"{DEPRECATION_SLUG_PREFIX}{deprecation.pk}").delete()
        deprecation.delete()
        _apply_marks(
            version_ids=version_ids,
            endpoint_ids=endpoint_ids,
            released_endpoints=released,
            released_version=_released_version(stored),
        )


# --- Deprecation notices -----------------------------------------------------------------
def _api_label(version: ApiVersion) -> str:
    """How the gate names a call's API in the ledger (`UsageEvent.properties["api"]`)."""
    return f"{version.product.code}/{version.version}"


def _labels_in_other_products(labels: list[str], product_id) -> set[str]:
    """Those of `labels` ("METHOD /path") that some other product's endpoint also has."""
    paths = {label.partition(" ")[2] for label in labels}
    elsewhere = (
        Endpoint.objects.filter(path_template__in=paths)
        .exclude(api_version__product_id=product_id)
        .values_list("method", "path_template")
        .distinct()
    )
    return {f"{method} {path}" for method, path in elsewhere} & set(labels)


def deprecation_callers(*, deprecation: Deprecation, now: datetime) -> set:
    """Ids of organizations whose keys (live or test) called a covered endpoint in the last
    30 days.

    The hourly rollups say who called a label ("METHOD /path/template"), without product or
    version. When no other product has that method and path, that is enough (the same
    operation in another version of this product counts too: over-notify rather than miss
    anyone). When another product has it too, each candidate organization is confirmed in
    the ledger: a gate call of it with that label whose `properties["api"]` names this
    version, so a private product's notice never reaches the callers of a public one.
    Ledger rows from before the gate wrote `api` count for a public product (over-notify)
    and never for a private one (no leak). One bounded query per candidate, on the
    `usage_org_time` index (organization, occurred_at)."""
    labels = deprecation_endpoint_labels(deprecation)
    if not labels:
        return set()
    since = (now - CALL_WINDOW).replace(minute=0, second=0, microsecond=0)
    rows = (
        UsageRollup.objects.filter(
            endpoint__in=labels, hour__gte=since, hour__lte=now, event_count__gt=0
        )
        .values_list("organization_id", "endpoint")
        .distinct()
    )
    version = deprecation.api_version
    shared = _labels_in_other_products(labels, version.product_id)
    callers: set = set()
    to_confirm: dict = {}
    for organization_id, label in rows:
        if label in shared:
            to_confirm.setdefault(organization_id, set()).add(label)
        else:
            callers.add(organization_id)
    this_api = Q(properties__api=_api_label(version))
    if not version.product.private:
        this_api |= ~Q(properties__has_key="api")  # written before the gate named the API
    for organization_id, org_labels in sorted(to_confirm.items(), key=lambda item: str(item[0])):
        if organization_id in callers:
            continue
        called = UsageEvent.objects.filter(
            this_api,
            organization_id=organization_id,
            occurred_at__gte=since,
            occurred_at__lte=now,
            source=UsageEvent.Source.GATE,  # not events a customer posted with any label
            endpoint__in=sorted(org_labels),
        ).exists()
        if called:
            callers.add(organization_id)
    return callers


@dataclass
class NoticeRun:
    deprecations: int = 0
    sent: int = 0
    without_recipients: int = 0


def _notice_email(
    deprecation: Deprecation,
    organization: Organization,
    recipients: list[str],
    now: datetime,
    previous_sunset: datetime | None = None,
) -> None:
    """The notice's e-mail, sent once the transaction that recorded it commits."""
    version = deprecation.api_version
    when = "now stops" if previous_sunset is not None else "stops"
    email_on_commit(
        recipients,
        organization=organization,
        subject=(
            f"{deprecation_target_label(deprecation)} {when} working on "
            f"{deprecation.sunset_at:%Y-%m-%d}"
        ),
        template="devdocs/email/deprecation_notice.txt",
        context={
            "deprecation": deprecation,
            "product": version.product,
            "api_version": version,
            "endpoints": deprecation_endpoints(deprecation),
            "days_left": days_until(deprecation.sunset_at, now),
            "timeline_path": reverse("changelog:deprecations"),
            "previous_sunset": previous_sunset,
        },
    )


def _notice_send(deprecation: Deprecation, organization: Organization, now: datetime) -> bool:
    """One organization's notice: the row first (its unique constraint is the guard against
    a second e-mail, even from a concurrent run), then the e-mail after commit."""
    recipients = member_emails(organization.pk, NOTICE_ROLES)
    if not recipients:
        return False  # nobody to tell yet; a later run tells whoever joins
    try:
        with transaction.atomic():
            # The deprecation's row lock waits for a change of it in flight (which holds
            # it until commit), so the e-mail says the dates as they are now, and a change
            # that moves the sunset earlier sees this notice and sends it again.
            current = (
                Deprecation.objects.select_for_update(of=("self",))
                .select_related("api_version__product", "endpoint")
                .filter(pk=deprecation.pk)
                .first()
            )
            if current is None or not (current.announced_at <= now < current.sunset_at):
                return False
            DeprecationNotice.objects.create(
                deprecation=current,
                organization=organization,
                recipients=recipients,
                sent_at=now,
            )
            audit_record(
                actor=Actor.system(NOTICE_ACTOR),
                action="deprecation_notice.sent",
                organization=organization,
                target=current,
                changes={
                    "recipients": len(recipients),
                    "sunset_at": current.sunset_at.isoformat(),
                },
            )
            _notice_email(current, organization, recipients, now)
    except IntegrityError:
        return False  # another run told this organization first
    return True


def _notices_resend(deprecation: Deprecation, *, previous_sunset: datetime, now: datetime) -> int:
    """The sunset moved earlier: every organization already told hears the new date, once
    per change. Runs inside the change's transaction, which holds the deprecation's row;
    the notice rows (one per organization, so they are updated, not added) are locked, get
    the new time and recipients, and the e-mails leave after commit. Organizations not told
    yet get the usual first notice from the run queued by the change."""
    if not (deprecation.announced_at <= now < deprecation.sunset_at):
        return 0
    resent = 0
    notices = (
        DeprecationNotice.objects.select_for_update(of=("self",))
        .filter(deprecation=deprecation)
        .select_related("organization")
        .order_by("pk")
    )
    for notice in notices:
        recipients = member_emails(notice.organization_id, NOTICE_ROLES)
        if not recipients:
            continue  # nobody left to tell; the row keeps who was told before
        notice.sent_at, notice.recipients = now, recipients
        notice.save(update_fields=["sent_at", "recipients"])
        audit_record(
            actor=Actor.system(NOTICE_ACTOR),
            action="deprecation_notice.resent",
            organization=notice.organization,
            target=deprecation,
            changes={
                "recipients": len(recipients),
                "sunset_at": [previous_sunset.isoformat(), deprecation.sunset_at.isoformat()],
            },
        )
        _notice_email(
            deprecation, notice.organization, recipients, now, previous_sunset=previous_sunset
        )
        resent += 1
    return resent


def deprecation_notices_send(*, now: datetime | None = None, deprecation_id=None) -> NoticeRun:
    """E-mails every organization that called an announced deprecation's target in the
    last 30 days, once per deprecation, while its sunset is still ahead. Safe to run any
    number of times: organizations already told are skipped."""
    now = now or timezone.now()
    run = NoticeRun()
    deprecations = (
        Deprecation.objects.filter(sunset_at__gt=now, announced_at__lte=now)
        .select_related("api_version__product", "endpoint")
        .order_by("sunset_at", "id")
    )
    if deprecation_id is not None:
        deprecations = deprecations.filter(pk=deprecation_id)
    for deprecation in deprecations:
        run.deprecations += 1
        told = set(
            DeprecationNotice.objects.filter(deprecation=deprecation).values_list(
                "organization_id", flat=True
            )
        )
        callers = deprecation_callers(deprecation=deprecation, now=now) - told
        for organization in Organization.objects.filter(pk__in=callers).order_by("pk"):
            if _notice_send(deprecation, organization, now):
                run.sent += 1
            elif not member_emails(organization.pk, NOTICE_ROLES):
                run.without_recipients += 1
    return run
