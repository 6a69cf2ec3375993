"""Every call Tollgate makes to Stripe, each in one small function, through the official library.

Functions take and return plain values (ids, minor-unit integers, small dataclasses), so the
rest of billing never handles Stripe objects. The client has a timeout and retries network
failures itself; calls that create something carry an idempotency key, so a retry (ours or
the library's) never creates it twice. STRIPE_API_BASE points the client at another server:
the test suite's fake Stripe (tests/billing/fake_stripe.py).
"""

import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

import stripe
from django.conf import settings

from billing.pricing.money import MINOR_UNITS, round_money
from common.errors import InvalidInput, TollgateError

logger = logging.getLogger(__name__)


class StripeNotConfigured(TollgateError):
    code = "stripe_not_configured"
    status = 409
    title = "Card payments are not set up"


class StripeUnavailable(TollgateError):
    """Stripe could not be reached or refused the request for a reason of its own."""

    code = "stripe_unavailable"
    status = 502
    title = "The payment processor is unavailable"


def is_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


@lru_cache(maxsize=4)
def _client_for(api_key: str, api_base: str, timeout: float, retries: int) -> stripe.StripeClient:
    # One client per configuration (tests change the settings); the library's own retries
    # back off and reuse the idempotency key, so a dropped response is never a double charge.
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base} if api_base else None,
        http_client=stripe.RequestsClient(timeout=timeout),
        max_network_retries=retries,
    )


def _client() -> stripe.StripeClient:
    if not is_configured():
        raise StripeNotConfigured("STRIPE_SECRET_KEY is not set: invoices are paid manually.")
    return _client_for(
        settings.STRIPE_SECRET_KEY,
        settings.STRIPE_API_BASE,
        settings.STRIPE_TIMEOUT_SECONDS,
        settings.STRIPE_MAX_NETWORK_RETRIES,
    )


def to_minor_units(amount: Decimal, currency: str) -> int:
    """12.34 USD -> 1234, 500 JPY -> 500: Stripe counts in the currency's minor unit."""
    return int(round_money(amount, currency).scaleb(MINOR_UNITS[currency]))


def from_minor_units(amount: int, currency: str) -> Decimal:
    return Decimal(amount).scaleb(-MINOR_UNITS[currency.upper()])


def _unavailable(error: stripe.StripeError) -> StripeUnavailable:
    logger.warning("Stripe request failed: %s (%s)", type(error).__name__, error.code or "-")
    return StripeUnavailable(f"Stripe did not complete the request ({type(error).__name__}).")


# --- Customers and payment methods ---------------------------------------------------------
def customer_create(*, organization_id: str, name: str, email: str) -> str:
    """A Stripe customer for the organization; the id is stored on its billing profile."""
    params: dict = {"name": name, "metadata": {"organization_id": organization_id}}
    if email:
        params["email"] = email
    try:
        customer = _client().v1.customers.create(
            params=params, options={"idempotency_key": f"tollgate-customer-{organization_id}"}
        )
    except stripe.StripeError as error:
        raise _unavailable(error) from error
    return customer.to_dict()["id"]


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str
    customer_id: str
    status: str  # open | complete | expired
    setup_intent_id: str


def _id(value) -> str:
    """An id from a field that holds an id, or the object itself when it was expanded."""
    if isinstance(value, dict):
        return value.get("id") or ""
    return value or ""


def _checkout_session(stripe_object) -> CheckoutSession:
    session = stripe_object.to_dict()
    return CheckoutSession(
        id=session["id"],
        url=session.get("url") or "",
        customer_id=_id(session.get("customer")),
        status=session.get("status") or "",
        setup_intent_id=_id(session.get("setup_intent")),
    )


def checkout_setup_session_create(
    *, customer_id: str, organization_id: str, success_url: str, cancel_url: str
) -> CheckoutSession:
    """Checkout in setup mode: the customer saves a card for later, off-session charges."""
    try:
        session = _client().v1.checkout.sessions.create(
            params={
                "mode": "setup",
                "customer": customer_id,
                "payment_method_types": ["card"],
                "success_url": success_url,
                "cancel_url": cancel_url,
                "metadata": {"organization_id": organization_id},
                "setup_intent_data": {"metadata": {"organization_id": organization_id}},
            }
        )
    except stripe.StripeError as error:
        raise _unavailable(error) from error
    return _checkout_session(session)


def checkout_session_retrieve(session_id: str) -> CheckoutSession | None:
    """None when Stripe has no such session."""
    try:
        session = _client().v1.checkout.sessions.retrieve(session_id)
    except stripe.InvalidRequestError:
        return None
    except stripe.StripeError as error:
        raise _unavailable(error) from error
    return _checkout_session(session)


@dataclass(frozen=True)
class SetupIntent:
    id: str
    status: str
    customer_id: str
    payment_method_id: str


def setup_intent_retrieve(setup_intent_id: str) -> SetupIntent | None:
    try:
        intent = _client().v1.setup_intents.retrieve(setup_intent_id)
    except stripe.InvalidRequestError:
        return None
    except stripe.StripeError as error:
        raise _unavailable(error) from error
    body = intent.to_dict()
    return SetupIntent(
        id=body["id"],
        status=body.get("status") or "",
        customer_id=_id(body.get("customer")),
        payment_method_id=_id(body.get("payment_method")),
    )


# --- Charging invoices ----------------------------------------------------------------------
class ChargeStatus:
    SUCCEEDED = "succeeded"
    PROCESSING = "processing"  # settles later: a webhook tells how
    DECLINED = "declined"  # the customer's payment method failed: dunning
    ERROR = "error"  # Stripe unreachable or failing: retried soon, not the customer's fault


@dataclass(frozen=True)
class ChargeResult:
    status: str
    payment_intent_id: str = ""
    failure_code: str = ""
    failure_message: str = ""


def payment_intent_create(
    *,
    customer_id: str,
    payment_method_id: str,
    amount: Decimal,
    currency: str,
    description: str,
    metadata: dict[str, str],
    idempotency_key: str,
) -> ChargeResult:
    """Charges the saved payment method now, with the customer absent (off_session).

    Never raises for a payment that did not go through: the result says why."""
    try:
        intent = _client().v1.payment_intents.create(
            params={
                "amount": to_minor_units(amount, currency),
                "currency": currency.lower(),
                "customer": customer_id,
                "payment_method": payment_method_id,
                "off_session": True,
                "confirm": True,
                "description": description,
                "metadata": metadata,
            },
            options={"idempotency_key": idempotency_key},
        )
    except stripe.CardError as error:
        # 402: declined, or the bank wants the customer present (authentication_required).
        body = (error.json_body or {}).get("error", {})
        intent_body = body.get("payment_intent") or {}
        return ChargeResult(
            status=ChargeStatus.DECLINED,
            payment_intent_id=intent_body.get("id", ""),
            failure_code=str(body.get("decline_code") or error.code or "card_error")[:100],
            failure_message=str(error.user_message or "The card was declined.")[:300],
        )
    except stripe.InvalidRequestError as error:
        # The saved payment method or customer is gone or unusable: the customer must act.
        logger.warning("Stripe refused a charge: %s", error.code or "invalid_request")
        return ChargeResult(
            status=ChargeStatus.DECLINED,
            failure_code=str(error.code or "invalid_request")[:100],
            failure_message="The saved payment method could not be charged.",
        )
    except stripe.StripeError as error:
        logger.warning("Stripe charge failed: %s", type(error).__name__)
        return ChargeResult(
            status=ChargeStatus.ERROR,
            failure_code="processor_error",
            failure_message=f"The payment processor did not answer ({type(error).__name__}).",
        )
    body = intent.to_dict()
    status = body.get("status")
    if status == "succeeded":
        return ChargeResult(status=ChargeStatus.SUCCEEDED, payment_intent_id=body["id"])
    if status == "processing":
        return ChargeResult(status=ChargeStatus.PROCESSING, payment_intent_id=body["id"])
    # requires_action / requires_payment_method: off-session, the customer is not there to act.
    last_error = body.get("last_payment_error") or {}
    return ChargeResult(
        status=ChargeStatus.DECLINED,
        payment_intent_id=body["id"],
        failure_code=str(last_error.get("code") or status or "payment_failed")[:100],
        failure_message=str(last_error.get("message") or "The payment did not go through.")[:300],
    )


def refund_create(
    *,
    payment_intent_id: str,
    amount: Decimal,
    currency: str,
    idempotency_key: str,
    metadata: dict[str, str] | None = None,
) -> str:
    """Refunds part or all of a collected payment; returns the refund id. `metadata` names
    the credit note, so the refund's own webhook is known as Tollgate's."""
    try:
        refund = _client().v1.refunds.create(
            params={
                "payment_intent": payment_intent_id,
                "amount": to_minor_units(amount, currency),
                "metadata": metadata or {},
            },
            options={"idempotency_key": idempotency_key},
        )
    except stripe.StripeError as error:
        raise _unavailable(error) from error
    return refund.to_dict()["id"]


# --- Transfers to connected accounts (marketplace payouts) ------------------------------------
@dataclass(frozen=True)
class TransferResult:
    transfer_id: str = ""
    failure_message: str = ""  # set when Stripe did not make the transfer

    @property
    def succeeded(self) -> bool:
        return bool(self.transfer_id)


def transfer_create(
    *,
    amount: Decimal,
    currency: str,
    destination: str,
    transfer_group: str,
    metadata: dict[str, str],
    idempotency_key: str,
) -> TransferResult:
    """A Stripe Connect transfer from the platform's balance to a connected account (`acct_…`).

    Never raises for a transfer Stripe refused or could not make: the result says why, in
    Stripe's words when it gave some (a missing account, an insufficient balance)."""
    try:
        transfer = _client().v1.transfers.create(
            params={
                "amount": to_minor_units(amount, currency),
                "currency": currency.lower(),
                "destination": destination,
                "transfer_group": transfer_group,
                "metadata": metadata,
            },
            options={"idempotency_key": idempotency_key},
        )
    except stripe.StripeError as error:
        logger.warning("Stripe transfer failed: %s (%s)", type(error).__name__, error.code or "-")
        message = (
            error.user_message or f"Stripe did not make the transfer ({type(error).__name__})."
        )
        return TransferResult(failure_message=str(message)[:300])
    return TransferResult(transfer_id=transfer.to_dict()["id"])


def transfer_find(*, transfer_group: str, payout_id: str) -> TransferResult:
    """The transfer already made for this payout, if any: a send whose answer was lost may
    have been made, and a retry under a new idempotency key (another account, or after
    Stripe forgot the key at 24 hours) must not make a second one. An empty result with no
    failure means none exists; a failure means Stripe could not say (send nothing)."""
    try:
        page = _client().v1.transfers.list(params={"transfer_group": transfer_group, "limit": 100})
    except stripe.StripeError as error:
        logger.warning("Stripe transfer lookup failed: %s", type(error).__name__)
        return TransferResult(
            failure_message=f"Stripe could not say whether the transfer was made "
            f"({type(error).__name__}); nothing was sent."
        )
    for transfer in page.to_dict().get("data", []):
        if (transfer.get("metadata") or {}).get("payout_id") == payout_id:
            return TransferResult(transfer_id=transfer["id"])
    return TransferResult()


# --- Inbound webhooks -----------------------------------------------------------------------
class SignatureInvalid(TollgateError):
    code = "stripe_signature_invalid"
    status = 400
    title = "The Stripe signature does not match"


def webhook_event_verify(*, payload: bytes, signature_header: str) -> dict:
    """The event of a webhook delivery, once its Stripe-Signature is verified (as a plain
    dict, exactly the JSON Stripe sent). Raises SignatureInvalid, or InvalidInput for a
    signed body that is not an event."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise StripeNotConfigured("STRIPE_WEBHOOK_SECRET is not set.")
    try:
        stripe.Webhook.construct_event(payload, signature_header, secret)
        # The stored event is the JSON exactly as Stripe sent it, not the library's object.
        body = json.loads(payload)
    except stripe.SignatureVerificationError as error:
        raise SignatureInvalid("The Stripe-Signature header does not verify.") from error
    except (ValueError, TypeError, AttributeError, KeyError) as error:
        # Signed, but not JSON (ValueError) or JSON the library cannot read as an event.
        raise InvalidInput("The body is not a Stripe event.", code="malformed_request") from error
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("id"), str)
        or not isinstance(body.get("type"), str)
        or not isinstance(body.get("data"), dict)
    ):
        raise InvalidInput("The body is not a Stripe event.", code="malformed_request")
    return body
