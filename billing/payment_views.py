"""The org billing page's payment method: Stripe Checkout (setup mode) to save a card.

POST .../payment-method starts a Checkout session and redirects to Stripe; Stripe sends the
customer back to .../payment-method/done?session_id=..., which saves the card (the
`checkout.session.completed` webhook saves it too, whichever comes first).
"""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from billing import payments
from common.errors import TollgateError
from portal.audit import Actor
from portal.decorators import org_member_required
from portal.roles import Permission


def _overview_url(request: HttpRequest) -> str:
    return reverse("org_billing:overview", kwargs={"slug": request.organization.slug})


@org_member_required(Permission.BILLING_MANAGE)
@require_POST
def payment_method_add(request: HttpRequest) -> HttpResponse:
    done = reverse("org_billing:payment_method_done", kwargs={"slug": request.organization.slug})
    try:
        url = payments.payment_method_checkout_start(
            actor=Actor.from_request(request),
            organization=request.organization,
            # Stripe replaces {CHECKOUT_SESSION_ID} with the session's id.
            success_url=request.build_absolute_uri(done) + "?session_id={CHECKOUT_SESSION_ID}",
            cancel_url=request.build_absolute_uri(_overview_url(request)),
        )
    except TollgateError as error:
        messages.error(request, error.detail)
        return redirect(_overview_url(request))
    return redirect(url)


@org_member_required(Permission.BILLING_MANAGE)
@require_GET
def payment_method_done(request: HttpRequest) -> HttpResponse:
    try:
        payments.payment_method_checkout_complete(
            actor=Actor.from_request(request),
            organization=request.organization,
            session_id=request.GET.get("session_id", ""),
        )
    except TollgateError as error:
        messages.error(request, error.detail)
    else:
        messages.success(
            request, "Your card is saved: invoices are charged to it when they are issued."
        )
    return redirect(_overview_url(request))
