"""POST /webhooks/stripe/: Stripe's events about payments and saved cards.

Verify the Stripe-Signature (stripe.Webhook.construct_event), store the raw event, then
process it once per Stripe event id (billing.payments). A bad signature is refused with 400
and stores nothing; a stored event that fails to process answers 500 so Stripe sends it
again, and the retry picks up where the failure left off.
"""

import logging

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import payments, stripe_api
from common.errors import TollgateError
from common.problems import problem_response

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    try:
        event = stripe_api.webhook_event_verify(
            payload=request.body,
            signature_header=request.headers.get("Stripe-Signature", ""),
        )
    except stripe_api.StripeNotConfigured as error:
        # Stripe keeps retrying for days, so events sent before the secret is set arrive.
        return problem_response(status=503, code=error.code, title=error.title, detail=error.detail)
    except TollgateError as error:
        return problem_response(
            status=error.status, code=error.code, title=error.title, detail=error.detail
        )
    try:
        stored = payments.stripe_event_receive(event=event)
    except Exception:
        logger.exception("Processing Stripe event %s failed", event["id"])
        return problem_response(
            status=500,
            code="stripe_event_failed",
            title="The event could not be processed",
            detail="The event is stored and will be processed when Stripe sends it again.",
        )
    return JsonResponse({"received": True, "id": stored.pk, "type": stored.type})
