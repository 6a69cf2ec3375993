"""The onboarding checklist (issue #8, OPS-1): create a key → first sandbox call → first
webhook → first live call, each ticked from real data, and the time to first success.

Calls are recorded when the gate's usage reaches the ledger (the `gate_calls_ingested`
signal), so the time of a first call is the call's own time, to the second. Keys and
webhook deliveries are looked up when the checklist is read. Either way a milestone is
stored once (unique per organization and step) and never moves afterwards.
"""

import statistics
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min, OuterRef, Subquery
from django.urls import reverse

from devdocs.models import OnboardingMilestone
from keys.models import ApiKey
from portal.models import Membership, Organization
from portal.roles import Role
from webhooks.models import Delivery

Step = OnboardingMilestone.Step
# Live calls tick from the ledger; a sandbox call ticks when the sandbox answered it 2xx
# (sandbox_success below): a call the gate let through can still be a 422.
CALL_STEPS = {"live": Step.FIRST_LIVE_CALL}
_sandbox_done: set[str] = set()  # orgs whose first sandbox success this process has stored
ORDER = [Step.KEY_CREATED, Step.FIRST_SANDBOX_CALL, Step.FIRST_WEBHOOK, Step.FIRST_LIVE_CALL]
LABELS = {
    Step.KEY_CREATED: "Create a test key",
    Step.FIRST_SANDBOX_CALL: "Make your first sandbox call",
    Step.FIRST_WEBHOOK: "Receive your first webhook",
    Step.FIRST_LIVE_CALL: "Make your first live call",
}


def record_milestones(reached: dict[tuple[str, str], datetime]) -> int:
    """Stores the first time of each (organization id, step) not stored yet; returns how many
    were new. Concurrent writers are safe: the unique constraint keeps the first one."""
    if not reached:
        return 0
    organizations = {organization for organization, _step in reached}
    known = {
        (str(organization), step)
        for organization, step in OnboardingMilestone.objects.filter(
            organization_id__in=organizations
        ).values_list("organization_id", "step")
    }
    new = [
        OnboardingMilestone(organization_id=organization, step=step, reached_at=at)
        for (organization, step), at in reached.items()
        if (str(organization), step) not in known
    ]
    OnboardingMilestone.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def record_calls(events: list[dict]) -> int:
    """Milestones from calls the gate let through: the earliest per organization and
    environment in this batch (an earlier stored one wins, see record_milestones)."""
    first_by_key: dict[tuple[str, str], datetime] = {}
    for event in events:
        key_id, environment = event.get("key_id"), event.get("environment")
        if not key_id or environment not in CALL_STEPS:
            continue
        at = datetime.fromisoformat(event["timestamp"])
        if at < first_by_key.get((key_id, environment), at + timedelta(1)):
            first_by_key[(key_id, environment)] = at
    if not first_by_key:
        return 0
    organization_of = dict(
        ApiKey.objects.filter(pk__in={key_id for key_id, _env in first_by_key}).values_list(
            "id", "organization_id"
        )
    )
    reached: dict[tuple[str, str], datetime] = {}
    for (key_id, environment), at in first_by_key.items():
        organization = organization_of.get(_uuid(key_id))
        if organization is None:
            continue
        slot = (str(organization), CALL_STEPS[environment])
        if at < reached.get(slot, at + timedelta(1)):
            reached[slot] = at
    return record_milestones(reached)


def sandbox_success(organization_id, at: datetime) -> None:
    """The sandbox answered one of the org's calls with a 2xx: its first success, if it is
    the first. Costs a query only until the milestone is stored (then remembered here)."""
    organization = str(organization_id)
    if organization in _sandbox_done:
        return
    record_milestones({(organization, Step.FIRST_SANDBOX_CALL): at})
    if len(_sandbox_done) > 100_000:
        _sandbox_done.clear()
    _sandbox_done.add(organization)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _looked_up(organization: Organization, missing: set[str]) -> dict[tuple[str, str], datetime]:
    """Steps found in the data they come from, for those not stored yet."""
    found: dict[tuple[str, str], datetime] = {}
    org = str(organization.pk)
    if Step.KEY_CREATED in missing:
        first = ApiKey.objects.filter(
            organization=organization, environment=ApiKey.Environment.TEST
        ).aggregate(at=Min("created_at"))
        if first["at"] is not None:
            found[(org, Step.KEY_CREATED)] = first["at"]
    if Step.FIRST_WEBHOOK in missing:
        first = Delivery.objects.filter(
            endpoint__organization=organization, status=Delivery.Status.SUCCEEDED
        ).aggregate(at=Min("finished_at"))
        if first["at"] is not None:
            found[(org, Step.FIRST_WEBHOOK)] = first["at"]
    return found


@dataclass(frozen=True)
class ChecklistItem:
    step: str
    label: str
    done: bool
    reached_at: datetime | None
    href: str


@dataclass(frozen=True)
class Checklist:
    items: list[ChecklistItem]
    started_at: datetime
    # From sign-up to the first successful sandbox call (None until there is one).
    time_to_first_success: timedelta | None

    @property
    def complete(self) -> bool:
        return all(item.done for item in self.items)

    @property
    def done_count(self) -> int:
        return sum(item.done for item in self.items)


# A first owner who signed up at most this long before creating the org signed up for it:
# their clock starts at sign-up. An existing user's new org starts when it is created.
SIGN_UP_FOR_THE_ORG = timedelta(hours=24)


def started_at(organization_created_at: datetime, owner_joined_at: datetime | None) -> datetime:
    """When the onboarding clock of an organization starts (time to first success)."""
    if owner_joined_at is None or owner_joined_at > organization_created_at:
        return organization_created_at
    if organization_created_at - owner_joined_at <= SIGN_UP_FOR_THE_ORG:
        return owner_joined_at
    return organization_created_at


def _first_owner_joined(organization_ref) -> Subquery:
    return Subquery(
        Membership.objects.filter(organization=organization_ref, role=Role.OWNER)
        .order_by("created_at")
        .values("user__date_joined")[:1]
    )


def onboarding_started_at(organization: Organization) -> datetime:
    joined = (
        Membership.objects.filter(organization=organization, role=Role.OWNER)
        .order_by("created_at")
        .values_list("user__date_joined", flat=True)
        .first()
    )
    return started_at(organization.created_at, joined)


def milestones(organization: Organization) -> dict[str, datetime]:
    """Every reached step of the organization, recording any found for the first time."""
    stored = dict(
        OnboardingMilestone.objects.filter(organization=organization).values_list(
            "step", "reached_at"
        )
    )
    missing = {Step.KEY_CREATED, Step.FIRST_WEBHOOK} - set(stored)
    if missing:
        found = _looked_up(organization, missing)
        if found:
            record_milestones(found)
            stored.update({step: at for (_org, step), at in found.items()})
    return stored


def checklist(organization: Organization) -> Checklist:
    reached = milestones(organization)
    slug = organization.slug
    links = {
        Step.KEY_CREATED: reverse("portal:key_list", kwargs={"slug": slug}),
        Step.FIRST_SANDBOX_CALL: "/docs/guides/get-started/",
        Step.FIRST_WEBHOOK: reverse("webhooks:endpoint_list", kwargs={"slug": slug}),
        Step.FIRST_LIVE_CALL: "/docs/",
    }
    items = [
        ChecklistItem(
            step=step,
            label=LABELS[step],
            done=step in reached,
            reached_at=reached.get(step),
            href=links[step],
        )
        for step in ORDER
    ]
    started = onboarding_started_at(organization)
    first_success = reached.get(Step.FIRST_SANDBOX_CALL)
    return Checklist(
        items=items,
        started_at=started,
        time_to_first_success=max(first_success - started, timedelta(0)) if first_success else None,
    )


@dataclass(frozen=True)
class Funnel:
    """OPS-1: how many organizations reached each step, and how fast they first succeeded."""

    organizations: int
    reached: dict[str, int]
    median_time_to_first_success: timedelta | None
    under_five_minutes: int  # organizations whose first sandbox call came within 5 minutes


def adoption_funnel(*, since: datetime | None = None) -> Funnel:
    organizations = Organization.objects.all()
    if since is not None:
        organizations = organizations.filter(created_at__gte=since)
    reached = dict.fromkeys(ORDER, 0)
    rows = OnboardingMilestone.objects.filter(organization__in=organizations)
    for step, count in rows.values_list("step").annotate(n=Count("id")).values_list("step", "n"):
        reached[step] = count
    durations = []
    firsts = rows.filter(step=Step.FIRST_SANDBOX_CALL).values_list(
        "reached_at",
        "organization__created_at",
        _first_owner_joined(OuterRef("organization_id")),
    )
    for reached_at, created_at, joined in firsts.iterator():
        durations.append(max(reached_at - started_at(created_at, joined), timedelta(0)))
    return Funnel(
        organizations=organizations.count(),
        reached=reached,
        median_time_to_first_success=statistics.median(durations) if durations else None,
        under_five_minutes=sum(duration <= timedelta(minutes=5) for duration in durations),
    )
