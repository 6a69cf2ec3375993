"""Writes for partners: apply (or re-apply), and the operator's approve, reject, suspend.

Every change is audited and the organization's owners and admins hear of each decision.
A partner's status moves only along the transitions in TRANSITIONS, checked under a row lock
so two operators deciding at once cannot both win.
"""

import re

from django.db import transaction
from django.utils import timezone

from common.errors import Conflict, InvalidInput
from marketplace.installs import app_access_revoke
from marketplace.models import App, Partner, PartnerTier
from portal.audit import Actor, audit_record
from portal.models import Organization
from portal.notifications import email_on_commit, member_emails
from portal.roles import Role

APPLICATION_FIELDS = (
    "display_name",
    "website",
    "description",
    "support_email",
    "support_url",
    "payout_method",
    "payout_reference",
    "payout_email",
)
CO_MARKETING = ("featured", "case_study", "joint_announcements")
STRIPE_ACCOUNT = re.compile(r"^acct_[A-Za-z0-9]{6,64}$")
BANK_REFERENCE = re.compile(r"^[A-Za-z0-9 ./-]{3,100}$")
# Which decisions the operator may take from each status.
TRANSITIONS = {
    Partner.Status.APPROVED: {Partner.Status.APPLIED, Partner.Status.SUSPENDED},
    Partner.Status.REJECTED: {Partner.Status.APPLIED},
    Partner.Status.SUSPENDED: {Partner.Status.APPROVED},
}
DECISION_WORDS = {
    Partner.Status.APPROVED: "approved",
    Partner.Status.REJECTED: "declined",
    Partner.Status.SUSPENDED: "suspended",
}


def _clean_payout(method: str, reference: str) -> str:
    reference = (reference or "").strip()
    if method == Partner.PayoutMethod.STRIPE_CONNECT and not STRIPE_ACCOUNT.match(reference):
        raise InvalidInput(
            "Give your Stripe Connect account id (acct_…).",
            field="payout_reference",
            code="invalid_payout_reference",
        )
    if method == Partner.PayoutMethod.BANK_TRANSFER and not BANK_REFERENCE.match(reference):
        raise InvalidInput(
            "Give a short transfer reference (letters, digits, spaces, . / -), not an "
            "account number: bank payouts are arranged with you directly.",
            field="payout_reference",
            code="invalid_payout_reference",
        )
    return reference


def partner_apply(*, actor: Actor, organization: Organization, **fields) -> Partner:
    """Applies, or updates the application. An approved partner edits its profile the
    same way (it stays approved); a declined one applies again; a suspended one cannot
    change anything until the operator lifts the suspension."""
    unknown = set(fields) - set(APPLICATION_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown fields: {', '.join(sorted(unknown))}.")
    if fields.get("payout_method") not in Partner.PayoutMethod.values:
        raise InvalidInput(
            "Choose how you are paid: stripe_connect or bank_transfer.", field="payout_method"
        )
    fields["payout_reference"] = _clean_payout(
        fields["payout_method"], fields.get("payout_reference", "")
    )
    with transaction.atomic():
        partner = Partner.objects.select_for_update().filter(organization=organization).first()
        if partner is not None and partner.status == Partner.Status.SUSPENDED:
            raise Conflict(
                "Your partner account is suspended; contact the operator.",
                code="partner_suspended",
            )
        created = partner is None
        if created:
            partner = Partner(organization=organization)
        before = {name: getattr(partner, name) for name in APPLICATION_FIELDS}
        for name, value in fields.items():
            setattr(partner, name, value.strip() if isinstance(value, str) else value)
        if partner.status == Partner.Status.REJECTED:
            partner.status = Partner.Status.APPLIED
            partner.applied_at = timezone.now()
            partner.decided_at = None
        partner.full_clean(exclude=["organization", "tier", "decided_by"])
        partner.save()
        changes = {
            name: getattr(partner, name)
            for name in APPLICATION_FIELDS
            if created or before[name] != getattr(partner, name)
        }
        changes.pop("payout_reference", None)  # payout details stay out of the audit log
        audit_record(
            actor=actor,
            action="partner.applied" if created else "partner.updated",
            organization=organization,
            target=partner,
            changes={**changes, "status": partner.status},
        )
    return partner


def partner_decide(
    *,
    actor: Actor,
    partner: Partner,
    status: str,
    tier: PartnerTier | None = None,
    note: str = "",
) -> Partner:
    """The operator's decision: approve (into a tier), reject, or suspend."""
    if status not in TRANSITIONS:
        raise InvalidInput("Decide approved, rejected or suspended.", field="status")
    with transaction.atomic():
        locked = (
            Partner.objects.select_for_update().select_related("organization").get(pk=partner.pk)
        )
        if locked.status not in TRANSITIONS[status]:
            raise Conflict(
                f"A partner that is {locked.status} cannot be {status}.",
                code="invalid_transition",
            )
        if status == Partner.Status.APPROVED:
            tier = tier or locked.tier or PartnerTier.objects.order_by("rank").first()
            if tier is None:
                raise InvalidInput("Create a partner tier first.", field="tier")
            locked.tier = tier
            for flag in CO_MARKETING:  # the tier's co-marketing, on top of any given before
                setattr(locked, flag, getattr(locked, flag) or getattr(tier, flag))
        locked.status = status
        locked.review_note = note.strip()
        locked.decided_at = timezone.now()
        locked.decided_by = actor.user
        locked.save()
        if status == Partner.Status.SUSPENDED:  # none of its apps' tokens works any more
            app_access_revoke(apps=App.objects.filter(partner=locked))
        audit_record(
            actor=actor,
            action=f"partner.{status}",
            organization=locked.organization,
            target=locked,
            changes={
                "status": status,
                "tier": locked.tier.code if locked.tier else None,
                "note": locked.review_note,
                **{flag: getattr(locked, flag) for flag in CO_MARKETING},
            },
        )
        email_on_commit(
            member_emails(locked.organization_id, [Role.OWNER, Role.ADMIN]),
            organization=locked.organization,
            subject=f"Your partner application was {DECISION_WORDS[status]}",
            template="marketplace/email/partner_decision.txt",
            context={"partner": locked, "decision": DECISION_WORDS[status]},
        )
    return locked
