"""E-mail to an organization's billing contacts (invoices, dunning, alerts, anomalies).

The contacts are the billing profile's address plus every owner and billing member: the
people who can act on a bill. Mail leaves after the transaction that caused it commits, so a
rolled-back change never sends a message.
"""

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string

from portal.models import Membership, Organization
from portal.roles import Role

CONTACT_ROLES = (Role.OWNER, Role.BILLING)


def billing_contacts(organization: Organization) -> list[str]:
    emails = list(
        Membership.objects.filter(organization=organization, role__in=CONTACT_ROLES)
        .order_by("created_at")
        .values_list("user__email", flat=True)
    )
    profile_email = (
        organization.billing_profile.billing_email
        if hasattr(organization, "billing_profile")
        else ""
    )
    if profile_email and profile_email not in emails:
        emails.insert(0, profile_email)
    return emails


def notify_billing_contacts(
    organization: Organization, *, subject: str, template: str, context: dict
) -> None:
    """Sends `template` (a text template under templates/billing/email/) on commit."""
    recipients = billing_contacts(organization)
    if not recipients:
        return
    body = render_to_string(template, {"organization": organization, **context})

    def send() -> None:
        send_mail(
            subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{subject}",
            message=body,
            from_email=None,
            recipient_list=recipients,
        )

    transaction.on_commit(send)
