"""Paying partners what their statements owe (MKT-4): one payout per statement with a payable
balance, sent as a Stripe Connect transfer or recorded by the operator once paid by bank.

Sending follows billing's payments: no row lock is held across the network. The payout is
read and its destination settled under its lock, Stripe is called after that commits, and
the answer is applied under the lock again, where a concurrent send that got there first is
found paid and nothing changes. Both sends use the same idempotency key, so Stripe makes one
transfer: the key is the payout's id and destination, so a retry after a failure reuses it
(a lost response is never a second transfer) while a corrected destination gets a new one
(Stripe would otherwise replay the stored error).
"""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from billing import stripe_api
from billing.pricing.money import format_money
from common.errors import Conflict, InvalidInput
from marketplace.models import Partner, PartnerStatement, Payout
from portal.audit import Actor, audit_record
from portal.notifications import email_on_commit, member_emails
from portal.roles import Role

Method = Partner.PayoutMethod
Status = Payout.Status
MAX_REFERENCE_LENGTH = 200


def _lock(payout: Payout) -> Payout:
    return (
        Payout.objects.select_for_update()
        .select_related("partner__organization", "statement")
        .get(pk=payout.pk)
    )


def _audit(actor: Actor, action: str, payout: Payout, **changes) -> None:
    # The destination stays out of the audit log, like the partner's payout details.
    audit_record(
        actor=actor,
        action=action,
        organization=payout.partner.organization,
        target=payout,
        changes={
            "statement": payout.statement.number,
            "amount": format_money(payout.amount, payout.currency),
            "currency": payout.currency,
            "method": payout.method,
            "status": payout.status,
            **changes,
        },
    )


def payout_create(*, actor: Actor, statement: PartnerStatement) -> Payout | None:
    """The statement's payout, to the partner's current payout details: made once (a second
    call returns it), and only for a payable balance (None otherwise)."""
    with transaction.atomic():
        locked = (
            PartnerStatement.objects.select_for_update()
            .select_related("partner__organization")
            .get(pk=statement.pk)
        )
        existing = Payout.objects.filter(statement=locked).first()
        if existing is not None:
            return existing
        if locked.payable <= 0:
            return None
        partner = locked.partner
        payout = Payout.objects.create(
            partner=partner,
            statement=locked,
            amount=locked.payable,
            currency=locked.currency,
            method=partner.payout_method,
            destination=partner.payout_reference,
        )
        _audit(actor, "payout.created", payout)
    return payout


def payout_is_transfer(payout: Payout) -> bool:
    """Whether sending makes a Stripe Connect transfer (else the operator pays by hand)."""
    return (
        stripe_api.is_configured()
        and payout.method == Method.STRIPE_CONNECT
        and payout.destination.startswith("acct_")
    )


def _idempotency_key(payout: Payout) -> str:
    """One key per send: concurrent sends of one attempt share it (Stripe makes one
    transfer); a retry after a failure gets a new one, so Stripe does not replay the stored
    refusal (too little balance) once the cause is fixed."""
    return f"tollgate-payout-{payout.pk}-{payout.send_attempts}"


def payout_send(*, actor: Actor, payout: Payout, now: datetime | None = None) -> Payout:
    """Sends a pending or failed payout: a Stripe Connect transfer when Stripe is configured
    and the partner is paid through an `acct_…` account; paid with the transfer's id, or
    failed with Stripe's message (send again to retry). Any other payout stays pending until
    the operator records it (`payout_mark_paid`). The partner's current payout details are
    taken first, so a partner that corrected its account is paid there on the retry."""
    with transaction.atomic():
        locked = _lock(payout)
        if locked.status == Status.PAID:
            raise Conflict("This payout is already paid.", code="payout_already_paid")
        partner = locked.partner
        if partner.status != Partner.Status.APPROVED:
            # A suspended partner's money waits for the operator's decision.
            raise Conflict(
                f"The partner is {partner.status}: its payouts are held.",
                code="partner_not_approved",
            )
        if (locked.method, locked.destination) != (partner.payout_method, partner.payout_reference):
            locked.method = partner.payout_method
            locked.destination = partner.payout_reference
            locked.save(update_fields=["method", "destination"])
            _audit(actor, "payout.destination_changed", locked)
        if not payout_is_transfer(locked):
            return locked
        sent_before = locked.send_attempts > 0
        if locked.status == Status.FAILED or not sent_before:
            # A new send (a concurrent one finds it pending and shares its key).
            locked.send_attempts += 1
            locked.status = Status.PENDING
            locked.save(update_fields=["send_attempts", "status"])
        amount, currency, destination = locked.amount, locked.currency, locked.destination
        number, key = locked.statement.number, _idempotency_key(locked)
    # After any earlier send, first ask Stripe whether it was made after all (its answer
    # lost): only when Stripe says no transfer exists for the payout is one made.
    result = (
        stripe_api.transfer_find(transfer_group=number, payout_id=str(locked.pk))
        if sent_before
        else stripe_api.TransferResult()
    )
    if not result.succeeded and not result.failure_message:
        result = stripe_api.transfer_create(
            amount=amount,
            currency=currency,
            destination=destination,
            transfer_group=number,
            metadata={"payout_id": str(locked.pk), "statement": number},
            idempotency_key=key,
        )
    with transaction.atomic():
        locked = _lock(payout)
        if locked.status == Status.PAID:
            return locked  # a concurrent send recorded the same transfer first
        if result.succeeded:
            locked.status = Status.PAID
            locked.stripe_transfer_id = result.transfer_id
            locked.failure_message = ""
            locked.paid_at = now or timezone.now()
            locked.recorded_by = actor.user
            locked.save()
            _audit(actor, "payout.paid", locked, stripe_transfer_id=result.transfer_id)
            _email_paid(locked)
        else:
            locked.status = Status.FAILED
            locked.failure_message = result.failure_message
            locked.save(update_fields=["status", "failure_message"])
            _audit(actor, "payout.failed", locked, failure_message=result.failure_message)
    return locked


def payout_mark_paid(
    *, actor: Actor, payout: Payout, reference: str, now: datetime | None = None
) -> Payout:
    """The operator records a payout it made outside Tollgate (a bank transfer), with its
    reference; a Stripe transfer is recorded by `payout_send` instead."""
    reference = (reference or "").strip()
    if not reference:
        raise InvalidInput(
            "Give the transfer's reference.", field="reference", code="reference_required"
        )
    if len(reference) > MAX_REFERENCE_LENGTH:
        raise InvalidInput(
            f"The reference is at most {MAX_REFERENCE_LENGTH} characters.",
            field="reference",
            code="reference_too_long",
        )
    with transaction.atomic():
        locked = _lock(payout)
        if locked.status == Status.PAID:
            raise Conflict("This payout is already paid.", code="payout_already_paid")
        locked.status = Status.PAID
        locked.reference = reference
        locked.failure_message = ""
        locked.paid_at = now or timezone.now()
        locked.recorded_by = actor.user
        locked.save()
        _audit(actor, "payout.paid", locked, reference=reference)
        _email_paid(locked)
    return locked


def _email_paid(payout: Payout) -> None:
    partner = payout.partner
    recipients = member_emails(partner.organization_id, [Role.OWNER, Role.ADMIN])
    if partner.payout_email and partner.payout_email not in recipients:
        recipients.append(partner.payout_email)
    email_on_commit(
        recipients,
        organization=partner.organization,
        subject=f"Payout for {payout.statement.number} sent",
        template="marketplace/email/payout_paid.txt",
        context={
            "payout": payout,
            "statement": payout.statement,
            "amount": format_money(payout.amount, payout.currency),
        },
    )
