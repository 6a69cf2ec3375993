"""Writes for customer reviews of listed apps (MKT-3): save, report, and the operator's hide.

Who may review: a signed-in member of an organization whose role is owner, admin or
developer (the people who choose and use integrations; billing and viewer roles do not).
and only for an organization that installed the app (now or before). One review
per organization per app: saving again updates that row. A partner never reviews its own
app. Reports are one per reporting organization per review; the operator hides a review in
admin, which keeps it stored but neither shows nor counts it. Every change is audited.
"""

from django.db import IntegrityError, transaction
from django.utils import timezone

from common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from marketplace.models import App, AppReview, Install, Partner, ReviewReport
from portal.audit import Actor, audit_record
from portal.models import Organization
from portal.roles import Role

REVIEW_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.DEVELOPER})
MAX_TITLE = 120
MAX_BODY = 5000
MAX_REASON = 500


def _clean_text(value, *, field: str, limit: int, required: bool = False) -> str:
    text = (value or "").strip() if isinstance(value, str | type(None)) else None
    if text is None:
        raise InvalidInput("Give text.", field=field)
    if "\x00" in text:
        # PostgreSQL refuses NUL in text; refuse it here as bad input, never a 500.
        raise InvalidInput("The text contains a NUL character.", field=field, code="invalid_text")
    if len(text) > limit:
        raise InvalidInput(f"At most {limit} characters.", field=field, code="too_long")
    if required and not text:
        raise InvalidInput("This is required.", field=field, code="required")
    return text


def _listed_app(app_id) -> App:
    """The app, locked, if it is in the gallery; anything else is simply not found."""
    app = (
        App.objects.select_for_update(of=("self",))
        .select_related("partner")
        .filter(pk=app_id, state=App.State.LISTED, partner__status=Partner.Status.APPROVED)
        .first()
    )
    if app is None:
        raise NotFound("No such app in the marketplace.")
    return app


def review_save(
    *,
    actor: Actor,
    app: App,
    organization: Organization,
    role: str,
    rating,
    title: str = "",
    body: str = "",
) -> AppReview:
    """Creates the organization's review of the app, or updates it (one per org).

    `role` is the actor's role in `organization`, resolved by the caller from the actor's
    own membership, so a user can only ever write for an organization they belong to. A
    hidden review stays hidden when edited: editing must not undo the operator's decision.
    """
    if role not in REVIEW_ROLES:
        raise PermissionDenied(
            "Owners, admins and developers of an organization write its reviews.",
            code="review_not_allowed",
        )
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise InvalidInput("Give 1 to 5 stars.", field="rating", code="invalid_rating")
    title = _clean_text(title, field="title", limit=MAX_TITLE)
    body = _clean_text(body, field="body", limit=MAX_BODY)
    with transaction.atomic():
        locked_app = _listed_app(app.pk)
        if locked_app.partner.organization_id == organization.pk:
            raise PermissionDenied(
                "A partner cannot review its own app.", code="own_app", field="rating"
            )
        if not Install.objects.filter(app=locked_app, organization=organization).exists():
            raise PermissionDenied(
                "Only organizations that installed this app review it.",
                code="not_installed",
                field="rating",
            )
        review = (
            AppReview.objects.select_for_update()
            .filter(app=locked_app, organization=organization)
            .first()
        )
        created = review is None
        if created:
            review = AppReview(app=locked_app, organization=organization)
        before = {"rating": review.rating, "title": review.title, "body": review.body}
        review.rating, review.title, review.body = rating, title, body
        review.author = actor.user
        review.updated_at = timezone.now()
        review.full_clean(exclude=["app", "organization", "author"])
        review.save()
        changes = {
            name: getattr(review, name)
            for name in ("rating", "title")
            if created or before[name] != getattr(review, name)
        }
        if created or before["body"] != body:
            changes["body_length"] = len(body)
        audit_record(
            actor=actor,
            action="review.created" if created else "review.updated",
            organization=organization,
            target=review,
            changes={**changes, "app": locked_app.slug},
        )
    return review


def review_report(
    *, actor: Actor, review: AppReview, organization: Organization, role: str, reason: str
) -> ReviewReport:
    """Reports a visible review of a listed app; once per reporting organization."""
    if role not in REVIEW_ROLES:
        raise PermissionDenied(
            "Owners, admins and developers of an organization report reviews.",
            code="report_not_allowed",
        )
    reason = _clean_text(reason, field="reason", limit=MAX_REASON, required=True)
    with transaction.atomic():
        _listed_app(review.app_id)
        locked = AppReview.objects.select_for_update().filter(pk=review.pk, hidden=False).first()
        if locked is None:
            raise NotFound("No such review.")
        if locked.organization_id == organization.pk:
            raise Conflict(
                "Edit your own review instead of reporting it.", code="own_review", field="reason"
            )
        if ReviewReport.objects.filter(review=locked, organization=organization).exists():
            raise Conflict(
                "Your organization has already reported this review.",
                code="already_reported",
                field="reason",
            )
        try:
            with transaction.atomic():
                report = ReviewReport.objects.create(
                    review=locked, organization=organization, reason=reason
                )
        except IntegrityError as error:  # a concurrent report by the same org
            raise Conflict(
                "Your organization has already reported this review.",
                code="already_reported",
                field="reason",
            ) from error
        audit_record(
            actor=actor,
            action="review.reported",
            organization=organization,
            target=locked,
            changes={"reason": reason},
        )
    return report


def _resolve_reports(review: AppReview) -> int:
    return ReviewReport.objects.filter(review=review, resolved_at__isnull=True).update(
        resolved_at=timezone.now()
    )


def review_hide(*, actor: Actor, review: AppReview, hidden: bool = True) -> AppReview:
    """The operator hides a review (kept, not shown, not counted) or shows it again.
    Hiding resolves the review's open reports."""
    with transaction.atomic():
        locked = AppReview.objects.select_for_update().get(pk=review.pk)
        if locked.hidden == hidden:
            return locked
        locked.hidden = hidden
        locked.save(update_fields=["hidden"])
        resolved = _resolve_reports(locked) if hidden else 0
        audit_record(
            actor=actor,
            action="review.hidden" if hidden else "review.shown",
            organization=locked.organization,
            target=locked,
            changes={"hidden": hidden, "reports_resolved": resolved},
        )
    return locked


def review_reports_dismiss(*, actor: Actor, review: AppReview) -> int:
    """The operator finds the reports unfounded: they are resolved, the review stays."""
    with transaction.atomic():
        locked = AppReview.objects.select_for_update().get(pk=review.pk)
        resolved = _resolve_reports(locked)
        if resolved:
            audit_record(
                actor=actor,
                action="review.reports_dismissed",
                organization=locked.organization,
                target=locked,
                changes={"reports_resolved": resolved},
            )
    return resolved
