"""Collecting finalized invoices: Stripe payments, dunning, past-due orgs, manual payments.

The flow (docs/billing.md, "Payments and dunning"):

- `on_invoice_finalized` runs after an invoice is finalized: an org that collects
  automatically, on a Tollgate with Stripe keys, with a saved card, is charged at once
  (`invoice_charge`); every other invoice is marked for manual collection.
- `invoice_charge` records one PaymentAttempt per try, commits it, and only then calls Stripe
  (a PaymentIntent, off-session, idempotency key per attempt), so no row lock is held across
  the network and a crash between the two leaves a pending attempt that is re-sent with the
  same key. The answer is applied under the invoice's row lock; a Stripe webhook about the
  same PaymentIntent takes the same lock, and whichever comes second finds the attempt
  settled and changes nothing.
- A declined payment is retried DUNNING_RETRY_DAYS after the first attempt (`dunning_run`,
  every minute from Celery beat); the billing contacts hear of each failure. When the last
  retry fails the org is past due: BillingProfile.past_due_since and the gate's Redis flag
  `payment_past_due` (live keys refused). Paying every exhausted invoice clears both.
"""

import logging
import traceback
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.urls import reverse
from django.utils import timezone

from billing import stripe_api, webhook_events
from billing.models import BillingProfile, CreditNote, Invoice, PaymentAttempt, StripeEvent
from billing.notifications import billing_contacts, notify_billing_contacts
from billing.pricing.money import format_money
from billing.profiles import profile_get
from billing.stripe_api import ChargeResult, ChargeStatus, StripeNotConfigured
from common.errors import Conflict, InvalidInput, NotFound
from common.orgflags import PAYMENT_PAST_DUE, flag_clear, flag_set
from common.redis import get_redis
from portal.audit import Actor, audit_record
from portal.models import Organization
from webhooks.catalog import timestamp
from webhooks.services import emit

logger = logging.getLogger(__name__)

Collection = BillingProfile.Collection
Outcome = PaymentAttempt.Outcome
# While a charge is in flight its invoice is not due for another; a pending attempt older
# than this never got its answer recorded (a crash) and is sent again with the same key.
CHARGE_LEASE = timedelta(minutes=15)
# Stripe unreachable: try again soon, without counting it against the customer.
PROCESSOR_RETRY = timedelta(hours=1)
# A late dunning run (beat stopped for days) never fires the remaining retries back to back.
MIN_RETRY_GAP = timedelta(hours=1)
PAYMENTS_ACTOR = Actor.system("payments")
STRIPE_ACTOR = Actor.system("stripe")


def retry_days() -> list[int]:
    return sorted(int(days) for days in settings.DUNNING_RETRY_DAYS)


def _with_amount_due(queryset: QuerySet[Invoice]) -> QuerySet[Invoice]:
    """Invoice.amount_due > 0, as SQL."""
    return queryset.filter(total__gt=F("amount_paid") + F("amount_credited"))


def _billing_url(organization: Organization) -> str:
    path = reverse("org_billing:overview", kwargs={"slug": organization.slug})
    return settings.SITE_URL.rstrip("/") + path


def _notify(invoice: Invoice, *, subject: str, template: str, **context) -> None:
    notify_billing_contacts(
        invoice.organization,
        subject=subject,
        template=f"billing/email/{template}",
        context={
            "invoice": invoice,
            "invoice_label": invoice.number or "your invoice",
            "amount_due": format_money(invoice.amount_due, invoice.currency),
            "total": format_money(invoice.total, invoice.currency),
            "currency": invoice.currency,
            "billing_url": _billing_url(invoice.organization),
            **context,
        },
    )


def _lock_invoice(invoice_id) -> Invoice:
    return Invoice.objects.select_for_update().select_related("organization").get(pk=invoice_id)


# --- After finalization ---------------------------------------------------------------------
def _manual_reason(profile: BillingProfile) -> str:
    """Why an invoice cannot be charged automatically ("" when it can)."""
    if not stripe_api.is_configured():
        return "stripe_not_configured"
    if profile.collection != Collection.AUTOMATIC:
        return "manual_collection"
    if not (profile.stripe_customer_id and profile.stripe_payment_method_id):
        return "no_payment_method"
    return ""


def _collect_manually(invoice: Invoice, *, reason: str, actor: Actor) -> None:
    """Inside the caller's transaction, with the invoice locked."""
    if invoice.collection == Collection.MANUAL and invoice.next_payment_attempt_at is None:
        return
    invoice.collection = Collection.MANUAL
    invoice.next_payment_attempt_at = None
    invoice.save(update_fields=["collection", "next_payment_attempt_at"])
    audit_record(
        actor=actor,
        action="invoice.collection_manual",
        organization=invoice.organization,
        target=invoice,
        changes={"reason": reason},
    )


def on_invoice_finalized(invoice_id) -> PaymentAttempt | None:
    """Called after the finalizing transaction commits: charges the invoice when the org
    collects automatically and has a saved card, else marks it for manual collection."""
    now = timezone.now()
    with transaction.atomic():
        invoice = _lock_invoice(invoice_id)
        if invoice.status != Invoice.Status.OPEN:
            return None
        if invoice.amount_due <= 0:
            # Credits or credit notes covered it: nothing to collect.
            _apply_payment(invoice, amount=Decimal(0), now=now, actor=PAYMENTS_ACTOR)
            return None
        reason = _manual_reason(profile_get(invoice.organization))
        if reason:
            _collect_manually(invoice, reason=reason, actor=PAYMENTS_ACTOR)
            return None
        if invoice.collection != Collection.AUTOMATIC:
            invoice.collection = Collection.AUTOMATIC
            invoice.save(update_fields=["collection"])
    return invoice_charge(invoice=invoice, now=now)


# --- Charging -------------------------------------------------------------------------------
def invoice_charge(*, invoice: Invoice, now: datetime | None = None) -> PaymentAttempt | None:
    """One try at collecting what the invoice asks for from the saved card.

    Returns the attempt (settled, or pending while Stripe processes it), or None when there
    was nothing to try: not open, nothing due, a charge already in flight, or collection
    is manual."""
    now = now or timezone.now()
    with transaction.atomic():
        invoice = _lock_invoice(invoice.pk)
        if invoice.status != Invoice.Status.OPEN or invoice.amount_due <= 0:
            return None
        profile = profile_get(invoice.organization)
        reason = _manual_reason(profile)
        if reason in ("stripe_not_configured", "manual_collection"):
            _collect_manually(invoice, reason=reason, actor=PAYMENTS_ACTOR)
            return None
        last = invoice.attempts.order_by("-number").first()
        if last is not None and last.outcome == Outcome.PENDING:
            if last.stripe_payment_intent_id or now - last.attempted_at < CHARGE_LEASE:
                return None  # Stripe is processing it (a webhook settles it) or a worker is
            attempt = last  # never got an answer: send it again under the same key
        else:
            attempt = PaymentAttempt.objects.create(
                invoice=invoice,
                number=last.number + 1 if last else 1,
                attempted_at=now,
                amount=invoice.amount_due,
            )
        invoice.collection = Collection.AUTOMATIC
        invoice.next_payment_attempt_at = now + CHARGE_LEASE  # claimed by this charge
        invoice.save(update_fields=["collection", "next_payment_attempt_at"])
        customer_id = profile.stripe_customer_id
        payment_method_id = profile.stripe_payment_method_id
    if reason == "no_payment_method":
        result = ChargeResult(
            status=ChargeStatus.DECLINED,
            failure_code="payment_method_missing",
            failure_message="No payment method is saved for this organization.",
        )
    else:
        result = stripe_api.payment_intent_create(
            customer_id=customer_id,
            payment_method_id=payment_method_id,
            amount=attempt.amount,
            currency=invoice.currency,
            description=f"Tollgate invoice {invoice.number or invoice.pk}",
            metadata={
                "invoice_id": str(invoice.pk),
                "payment_attempt_id": str(attempt.pk),
                "organization_id": str(invoice.organization_id),
            },
            idempotency_key=f"tollgate-invoice-{invoice.pk}-attempt-{attempt.number}",
        )
    return _charge_result_apply(attempt_id=attempt.pk, result=result, now=now)


def _charge_result_apply(*, attempt_id, result: ChargeResult, now: datetime) -> PaymentAttempt:
    with transaction.atomic():
        attempt = PaymentAttempt.objects.get(pk=attempt_id)
        invoice = _lock_invoice(attempt.invoice_id)
        attempt = PaymentAttempt.objects.select_for_update().get(pk=attempt_id)
        if attempt.outcome != Outcome.PENDING:
            return attempt  # a webhook about this PaymentIntent settled it first
        if result.payment_intent_id:
            attempt.stripe_payment_intent_id = result.payment_intent_id
            invoice.stripe_payment_intent_id = result.payment_intent_id
        if result.status == ChargeStatus.SUCCEEDED:
            _record_success(invoice, attempt, now=now, actor=PAYMENTS_ACTOR)
        elif result.status == ChargeStatus.PROCESSING:
            attempt.save(update_fields=["stripe_payment_intent_id"])
            invoice.next_payment_attempt_at = None  # payment_intent.succeeded/failed decides
            invoice.save(update_fields=["stripe_payment_intent_id", "next_payment_attempt_at"])
        elif result.status == ChargeStatus.ERROR:
            # No answer from Stripe: the charge may or may not have happened. The attempt
            # stays pending, so the retry re-sends it under the same idempotency key and
            # Stripe answers with the first PaymentIntent rather than charging twice.
            attempt.failure_code = result.failure_code
            attempt.failure_message = result.failure_message
            attempt.save()
            invoice.next_payment_attempt_at = now + PROCESSOR_RETRY
            invoice.save(update_fields=["stripe_payment_intent_id", "next_payment_attempt_at"])
        else:
            _record_failure(
                invoice,
                attempt,
                code=result.failure_code,
                message=result.failure_message,
                now=now,
                actor=PAYMENTS_ACTOR,
            )
    return attempt


def _record_success(invoice: Invoice, attempt: PaymentAttempt, *, now, actor: Actor) -> None:
    attempt.outcome = Outcome.SUCCEEDED
    attempt.failure_code = attempt.failure_message = ""
    attempt.save()
    _apply_payment(
        invoice,
        amount=attempt.amount,
        now=now,
        actor=actor,
        changes={"attempt": attempt.number, "payment_intent": attempt.stripe_payment_intent_id},
    )


def _apply_payment(
    invoice: Invoice,
    *,
    amount: Decimal,
    now: datetime,
    actor: Actor,
    action: str = "invoice.paid",
    changes: dict | None = None,
) -> None:
    """Adds a payment to the (locked) invoice; paid once nothing is left to pay."""
    if invoice.status not in (Invoice.Status.OPEN, Invoice.Status.UNCOLLECTIBLE):
        # Paid by other means or voided meanwhile: the operator refunds (admin shows it).
        logger.warning(
            "Payment of %s %s on invoice %s in status %s",
            amount,
            invoice.currency,
            invoice.pk,
            invoice.status,
        )
        audit_record(
            actor=actor,
            action="invoice.payment_unapplied",
            organization=invoice.organization,
            target=invoice,
            changes={"amount": str(amount), "status": invoice.status, **(changes or {})},
        )
        return
    before = invoice.status
    invoice.amount_paid += amount
    if invoice.amount_due <= 0:
        invoice.status = Invoice.Status.PAID
        invoice.paid_at = now
        invoice.next_payment_attempt_at = None
    invoice.last_payment_error = ""
    invoice.save(
        update_fields=[
            "amount_paid",
            "status",
            "paid_at",
            "next_payment_attempt_at",
            "last_payment_error",
            "stripe_payment_intent_id",
        ]
    )
    audit_record(
        actor=actor,
        action=action,
        organization=invoice.organization,
        target=invoice,
        changes={
            "amount": str(amount),
            "status": [before, invoice.status],
            **(changes or {}),
        },
    )
    if invoice.status == Invoice.Status.PAID and before != Invoice.Status.PAID:
        emit(
            organization=invoice.organization_id,
            type="invoice.paid",
            data=webhook_events.invoice_paid_data(invoice),
        )
    if amount > 0:
        _notify(
            invoice,
            subject=f"Payment received for {invoice.number or 'your invoice'}",
            template="payment_succeeded.txt",
            amount_paid=format_money(amount, invoice.currency),
        )
    past_due_refresh(organization=invoice.organization, now=now, actor=actor)


def _next_retry_at(invoice: Invoice, failures: int, now: datetime) -> datetime | None:
    """When to try again after `failures` declined attempts; None when retries are over."""
    days = retry_days()
    if failures > len(days):
        return None
    first = invoice.attempts.order_by("number").values_list("attempted_at", flat=True).first()
    return max((first or now) + timedelta(days=days[failures - 1]), now + MIN_RETRY_GAP)


def _record_failure(
    invoice: Invoice, attempt: PaymentAttempt, *, code: str, message: str, now, actor: Actor
) -> None:
    attempt.outcome = Outcome.FAILED
    attempt.failure_code = code[:100]
    attempt.failure_message = message[:300]
    attempt.save()
    invoice.payment_attempts += 1
    invoice.last_payment_error = message[:255]
    invoice.next_payment_attempt_at = _next_retry_at(invoice, invoice.payment_attempts, now)
    invoice.save(
        update_fields=[
            "payment_attempts",
            "last_payment_error",
            "next_payment_attempt_at",
            "stripe_payment_intent_id",
        ]
    )
    audit_record(
        actor=actor,
        action="invoice.payment_failed",
        organization=invoice.organization,
        target=invoice,
        changes={
            "attempt": attempt.number,
            "failure_code": attempt.failure_code,
            "next_payment_attempt_at": invoice.next_payment_attempt_at.isoformat()
            if invoice.next_payment_attempt_at
            else None,
        },
    )
    emit(
        organization=invoice.organization_id,
        type="invoice.payment_failed",
        data=webhook_events.invoice_data(
            invoice,
            attempt=attempt.number,
            failure_code=attempt.failure_code,
            failure_message=attempt.failure_message,
            next_payment_attempt_at=timestamp(invoice.next_payment_attempt_at),
        ),
    )
    if invoice.next_payment_attempt_at is not None:
        _notify(
            invoice,
            subject=f"Payment failed for {invoice.number or 'your invoice'}",
            template="payment_failed.txt",
            failure_message=attempt.failure_message,
            next_attempt_at=invoice.next_payment_attempt_at,
        )
    else:
        _past_due_mark(invoice, now=now, actor=actor, failure_message=attempt.failure_message)


# --- Past due -------------------------------------------------------------------------------
def _exhausted_invoices(organization_id) -> QuerySet[Invoice]:
    """Open invoices whose retries are all spent: they keep the org past due."""
    return _with_amount_due(
        Invoice.objects.filter(
            organization_id=organization_id,
            status=Invoice.Status.OPEN,
            collection=Collection.AUTOMATIC,
            next_payment_attempt_at__isnull=True,
            payment_attempts__gt=len(retry_days()),
        )
    )


def _past_due_mark(invoice: Invoice, *, now, actor: Actor, failure_message: str) -> None:
    organization = invoice.organization
    profile, _ = BillingProfile.objects.select_for_update().get_or_create(organization=organization)
    if profile.past_due_since is None:
        profile.past_due_since = now
        profile.save(update_fields=["past_due_since", "updated_at"])
        audit_record(
            actor=actor,
            action="billing.past_due",
            organization=organization,
            target=profile,
            changes={"invoice": invoice.number or str(invoice.pk)},
        )
    # Redis is not transactional: the flag goes up only once the past-due state commits.
    transaction.on_commit(lambda: flag_set(get_redis(), organization.pk, PAYMENT_PAST_DUE))
    _notify(
        invoice,
        subject=f"Action needed: {invoice.number or 'your invoice'} is past due",
        template="past_due.txt",
        failure_message=failure_message,
    )


def past_due_refresh(
    *, organization: Organization, now: datetime | None = None, actor: Actor = PAYMENTS_ACTOR
) -> bool:
    """Clears the past-due state once no exhausted invoice is left; True while past due.

    Called on every payment; call it too after voiding an invoice, marking it
    uncollectible or crediting it in full."""
    with transaction.atomic():
        profile = (
            BillingProfile.objects.select_for_update().filter(organization=organization).first()
        )
        if profile is None or profile.past_due_since is None:
            return False
        if _exhausted_invoices(organization.pk).exists():
            return True
        since = profile.past_due_since
        profile.past_due_since = None
        profile.save(update_fields=["past_due_since", "updated_at"])
        audit_record(
            actor=actor,
            action="billing.past_due_cleared",
            organization=organization,
            target=profile,
            changes={"past_due_since": since.isoformat()},
        )
        organization_id = organization.pk
        transaction.on_commit(lambda: flag_clear(get_redis(), organization_id, PAYMENT_PAST_DUE))
    return False


# --- Dunning --------------------------------------------------------------------------------
def dunning_run(*, now: datetime | None = None, limit: int = 500) -> int:
    """Charges every open invoice whose next attempt is due; returns how many were tried.

    Idempotent: each charge claims its invoice under a row lock before calling Stripe, so
    overlapping runs never charge an invoice twice."""
    now = now or timezone.now()
    due = list(
        Invoice.objects.filter(
            status=Invoice.Status.OPEN,
            collection=Collection.AUTOMATIC,
            next_payment_attempt_at__lte=now,
        )
        .order_by("next_payment_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    tried = 0
    for invoice_id in due:
        try:
            if invoice_charge(invoice=Invoice(pk=invoice_id), now=now) is not None:
                tried += 1
        except Exception:
            # One broken invoice must not stop the others; its lease expires and it is
            # tried again.
            logger.exception("Charging invoice %s failed", invoice_id)
    # Redis may have lost the flags (restart without persistence): raise them again.
    client = get_redis()
    for organization_id in BillingProfile.objects.filter(past_due_since__isnull=False).values_list(
        "organization_id", flat=True
    ):
        flag_set(client, organization_id, PAYMENT_PAST_DUE)
    return tried


# --- Manual payments and refunds ----------------------------------------------------------
def invoice_mark_paid(
    *,
    actor: Actor,
    invoice: Invoice,
    amount: Decimal | None = None,
    reference: str = "",
    now: datetime | None = None,
) -> Invoice:
    """Records a payment the operator received outside Stripe (bank transfer, cheque).

    Without `amount`, the whole amount due; a part payment leaves the invoice open."""
    now = now or timezone.now()
    with transaction.atomic():
        invoice = _lock_invoice(invoice.pk)
        if invoice.status not in (Invoice.Status.OPEN, Invoice.Status.UNCOLLECTIBLE):
            raise Conflict(
                f"Invoice {invoice} is {invoice.status}: only open or uncollectible invoices "
                "can be marked paid.",
                code="invoice_not_payable",
            )
        due = invoice.amount_due
        amount = due if amount is None else amount
        if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
            raise InvalidInput("The amount must be a positive number.", field="amount")
        if amount > due:
            raise InvalidInput(
                f"The amount is more than the {format_money(due, invoice.currency)} "
                f"{invoice.currency} due.",
                field="amount",
                code="amount_exceeds_due",
            )
        _apply_payment(
            invoice,
            amount=amount,
            now=now,
            actor=actor,
            action="invoice.marked_paid",
            changes={"reference": reference[:200]},
        )
    return invoice


def credit_note_refund(
    *, actor: Actor, credit_note: CreditNote, amount: Decimal | None = None
) -> str | None:
    """Refunds a credit note's amount (or `amount` of it) through Stripe when Stripe
    collected the invoice; returns the refund id, or None when the amount was not collected
    by Stripe."""
    invoice = credit_note.invoice
    payment = (
        invoice.attempts.filter(outcome=Outcome.SUCCEEDED)
        .exclude(stripe_payment_intent_id="")
        .order_by("-number")
        .first()
    )
    if payment is None or credit_note.refunded:
        return None
    amount = min(credit_note.amount if amount is None else amount, payment.amount)
    refund_id = stripe_api.refund_create(
        payment_intent_id=payment.stripe_payment_intent_id,
        amount=amount,
        currency=invoice.currency,
        idempotency_key=f"tollgate-credit-note-{credit_note.pk}",
        metadata={REFUND_NOTE_KEY: credit_note.number},
    )
    with transaction.atomic():
        updated = CreditNote.objects.filter(pk=credit_note.pk, refunded=False).update(
            refunded=True, stripe_refund_id=refund_id
        )
        if updated:
            audit_record(
                actor=actor,
                action="credit_note.refunded",
                organization=invoice.organization,
                target=credit_note,
                changes={"amount": str(amount), "refund": refund_id},
            )
    credit_note.refunded = True
    return refund_id


# --- Payment methods (Checkout in setup mode) ---------------------------------------------
def stripe_customer_ensure(*, actor: Actor, organization: Organization) -> str:
    """The org's Stripe customer id, created on first use."""
    profile = profile_get(organization)
    if profile.stripe_customer_id:
        return profile.stripe_customer_id
    contacts = billing_contacts(organization)
    # The idempotency key is the org's, so two racing calls get the same customer back.
    customer_id = stripe_api.customer_create(
        organization_id=str(organization.pk),
        name=profile.legal_name or organization.name,
        email=contacts[0] if contacts else "",
    )
    with transaction.atomic():
        profile, _ = BillingProfile.objects.select_for_update().get_or_create(
            organization=organization
        )
        if not profile.stripe_customer_id:
            profile.stripe_customer_id = customer_id
            profile.save(update_fields=["stripe_customer_id", "updated_at"])
            audit_record(
                actor=actor,
                action="billing.stripe_customer_created",
                organization=organization,
                target=profile,
                changes={"stripe_customer_id": customer_id},
            )
    return profile.stripe_customer_id


def payment_method_checkout_start(
    *, actor: Actor, organization: Organization, success_url: str, cancel_url: str
) -> str:
    """A Stripe Checkout page (setup mode) where the customer saves a card; returns its URL.

    `success_url` should carry `{CHECKOUT_SESSION_ID}`, which Stripe fills in."""
    if not stripe_api.is_configured():
        raise StripeNotConfigured(
            "Card payments are not available: invoices are paid by bank transfer."
        )
    customer_id = stripe_customer_ensure(actor=actor, organization=organization)
    session = stripe_api.checkout_setup_session_create(
        customer_id=customer_id,
        organization_id=str(organization.pk),
        success_url=success_url,
        cancel_url=cancel_url,
    )
    return session.url


def payment_method_checkout_complete(
    *, actor: Actor, organization: Organization, session_id: str
) -> str:
    """Saves the card of a completed setup-mode Checkout session; returns its id.

    The session must belong to the org's own Stripe customer: another org's session id is
    as unknown as a made-up one."""
    not_found = NotFound("No such checkout session.", code="checkout_session_not_found")
    profile = profile_get(organization)
    valid = isinstance(session_id, str) and session_id.startswith("cs_") and len(session_id) < 256
    if not (valid and profile.stripe_customer_id):
        raise not_found
    session = stripe_api.checkout_session_retrieve(session_id)
    if session is None or session.customer_id != profile.stripe_customer_id:
        raise not_found
    intent = (
        stripe_api.setup_intent_retrieve(session.setup_intent_id)
        if session.status == "complete" and session.setup_intent_id
        else None
    )
    if intent is None or intent.status != "succeeded" or not intent.payment_method_id:
        raise Conflict(
            "The card was not saved: the checkout is not complete.", code="checkout_incomplete"
        )
    payment_method_save(
        actor=actor,
        organization=organization,
        customer_id=session.customer_id,
        payment_method_id=intent.payment_method_id,
    )
    return intent.payment_method_id


def payment_method_save(
    *, actor: Actor, organization: Organization, customer_id: str, payment_method_id: str
) -> bool:
    """Makes the card the one invoices are charged to; True when it changed.

    Open invoices with something due are then charged with it (a past-due org that adds a
    working card gets its access back within the same request)."""
    with transaction.atomic():
        profile = (
            BillingProfile.objects.select_for_update().filter(organization=organization).first()
        )
        if profile is None or not customer_id or profile.stripe_customer_id != customer_id:
            raise NotFound("No such Stripe customer.", code="stripe_customer_not_found")
        if profile.stripe_payment_method_id == payment_method_id:
            return False
        before = profile.stripe_payment_method_id
        profile.stripe_payment_method_id = payment_method_id
        profile.save(update_fields=["stripe_payment_method_id", "updated_at"])
        audit_record(
            actor=actor,
            action="billing.payment_method_saved",
            organization=organization,
            target=profile,
            changes={"payment_method": [before or None, payment_method_id]},
        )
        if profile.collection == Collection.AUTOMATIC:
            unpaid = list(
                _with_amount_due(
                    Invoice.objects.filter(organization=organization, status=Invoice.Status.OPEN)
                ).values_list("pk", flat=True)
            )
            if unpaid:
                transaction.on_commit(lambda: _queue_charges(unpaid))
    return True


def _queue_charges(invoice_ids: list) -> None:
    from billing.tasks import charge_invoice

    for invoice_id in invoice_ids:
        charge_invoice.delay(str(invoice_id))


# --- Inbound Stripe events ----------------------------------------------------------------
def stripe_event_receive(*, event: dict) -> StripeEvent:
    """Stores a verified event as Stripe sent it (once per Stripe event id), then processes
    it. A second delivery of the same id finds it processed and changes nothing."""
    stored, _ = StripeEvent.objects.get_or_create(
        id=event["id"], defaults={"type": event["type"][:100], "payload": event}
    )
    return stripe_event_process(event_id=stored.pk)


def stripe_event_process(*, event_id: str, now: datetime | None = None) -> StripeEvent:
    """Applies a stored event once; a failure keeps its traceback on the row and re-raises
    (the webhook answers 500, so Stripe delivers it again)."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            stored = StripeEvent.objects.select_for_update().get(pk=event_id)
            if stored.processed_at is not None:
                return stored
            handler = EVENT_HANDLERS.get(stored.type)
            data = stored.payload.get("data") or {}
            if handler is not None and isinstance(data.get("object"), dict):
                handler(data["object"], now)
            stored.processed_at = now
            stored.error = ""
            stored.save(update_fields=["processed_at", "error"])
    except Exception:
        StripeEvent.objects.filter(pk=event_id).update(error=traceback.format_exc()[-5000:])
        raise
    return stored


def _attempt_for_intent(intent: dict) -> PaymentAttempt | None:
    metadata = intent.get("metadata") or {}
    try:
        attempt_id = uuid.UUID(str(metadata.get("payment_attempt_id")))
    except ValueError:
        attempt_id = None
    if attempt_id is not None:
        found = PaymentAttempt.objects.filter(pk=attempt_id).first()
        if found is not None:
            return found
    if intent.get("id"):
        return PaymentAttempt.objects.filter(stripe_payment_intent_id=intent["id"]).first()
    return None


def _on_payment_intent_succeeded(intent: dict, now: datetime) -> None:
    attempt = _attempt_for_intent(intent)
    if attempt is None:
        return  # not one of Tollgate's charges
    invoice = _lock_invoice(attempt.invoice_id)
    attempt = PaymentAttempt.objects.select_for_update().get(pk=attempt.pk)
    if attempt.outcome == Outcome.SUCCEEDED:
        return
    attempt.stripe_payment_intent_id = intent.get("id") or attempt.stripe_payment_intent_id
    invoice.stripe_payment_intent_id = attempt.stripe_payment_intent_id
    _record_success(invoice, attempt, now=now, actor=STRIPE_ACTOR)


def _on_payment_intent_failed(intent: dict, now: datetime) -> None:
    attempt = _attempt_for_intent(intent)
    if attempt is None:
        return
    invoice = _lock_invoice(attempt.invoice_id)
    attempt = PaymentAttempt.objects.select_for_update().get(pk=attempt.pk)
    if attempt.outcome != Outcome.PENDING:
        return  # the charge's own answer already recorded it
    error = intent.get("last_payment_error") or {}
    attempt.stripe_payment_intent_id = intent.get("id") or attempt.stripe_payment_intent_id
    invoice.stripe_payment_intent_id = attempt.stripe_payment_intent_id
    _record_failure(
        invoice,
        attempt,
        code=str(error.get("decline_code") or error.get("code") or "payment_failed"),
        message=str(error.get("message") or "The payment did not go through."),
        now=now,
        actor=STRIPE_ACTOR,
    )


def _save_from_stripe(customer_id: str, payment_method_id: str) -> None:
    if not customer_id:
        return  # no customer on the event: it cannot be ours (and "" matches every org)
    profile = BillingProfile.objects.filter(stripe_customer_id=customer_id).first()
    if profile is None or not payment_method_id:
        return  # not a customer of this Tollgate
    payment_method_save(
        actor=STRIPE_ACTOR,
        organization=profile.organization,
        customer_id=customer_id,
        payment_method_id=payment_method_id,
    )


def _object_id(value) -> str:
    return (value.get("id") or "") if isinstance(value, dict) else (value or "")


def _on_setup_intent_succeeded(intent: dict, now: datetime) -> None:
    _save_from_stripe(_object_id(intent.get("customer")), _object_id(intent.get("payment_method")))


def _on_checkout_session_completed(session: dict, now: datetime) -> None:
    if session.get("mode") != "setup" or not session.get("setup_intent"):
        return
    intent = stripe_api.setup_intent_retrieve(_object_id(session["setup_intent"]))
    if intent is not None and intent.status == "succeeded":
        _save_from_stripe(_object_id(session.get("customer")), intent.payment_method_id)


REFUND_NOTE_KEY = "tollgate_credit_note"  # in the metadata of refunds Tollgate makes


def _on_refund(refund: dict, now: datetime) -> None:
    """A refund made in Stripe's dashboard (or its API) on a payment of an invoice: the
    invoice gets a credit note for it, already refunded, so the customer's balance, the
    invoice and partners' revenue share (reversed by credit notes) all see it. Refunds
    Tollgate made for a credit note name it in their metadata and change nothing."""
    refund_id = str(refund.get("id") or "")
    if not refund_id or refund.get("status") not in ("succeeded", "pending"):
        return  # a failed or canceled refund gave nothing back
    if CreditNote.objects.filter(stripe_refund_id=refund_id).exists():
        return
    own = (refund.get("metadata") or {}).get(REFUND_NOTE_KEY)
    if own:
        CreditNote.objects.filter(number=own, stripe_refund_id="").update(
            stripe_refund_id=refund_id
        )
        return
    attempt = (
        PaymentAttempt.objects.filter(
            stripe_payment_intent_id=_object_id(refund.get("payment_intent")),
            outcome=Outcome.SUCCEEDED,
        )
        .exclude(stripe_payment_intent_id="")
        .first()
    )
    if attempt is None:
        return  # not a payment of Tollgate's invoices
    invoice = _lock_invoice(attempt.invoice_id)
    amount = stripe_api.from_minor_units(int(refund.get("amount") or 0), invoice.currency)
    creditable = invoice.total - invoice.amount_credited
    if amount > creditable:
        logger.warning(
            "Refund %s of %s exceeds what invoice %s can still credit (%s): capped",
            refund_id,
            amount,
            invoice.number,
            creditable,
        )
        amount = creditable
    if amount <= 0 or invoice.status not in (Invoice.Status.OPEN, Invoice.Status.PAID):
        logger.warning("Refund %s on invoice %s recorded no credit note", refund_id, invoice)
        return
    from billing.invoicing import credit_note_create

    credit_note_create(
        actor=STRIPE_ACTOR,
        invoice=invoice,
        amount=amount,
        reason=f"Refunded in Stripe ({refund_id})",
        stripe_refund_id=refund_id,
    )


def _on_charge_refunded(charge: dict, now: datetime) -> None:
    """The charge's refunds, when the event carries them (`refund.created` carries each)."""
    refunds = (charge.get("refunds") or {}).get("data") or []
    for refund in refunds:
        if isinstance(refund, dict):
            _on_refund({"payment_intent": charge.get("payment_intent"), **refund}, now)


EVENT_HANDLERS = {
    "payment_intent.succeeded": _on_payment_intent_succeeded,
    "payment_intent.payment_failed": _on_payment_intent_failed,
    "setup_intent.succeeded": _on_setup_intent_succeeded,
    "checkout.session.completed": _on_checkout_session_completed,
    "refund.created": _on_refund,
    "charge.refunded": _on_charge_refunded,
}
