"""E-mail to an organization's billing contacts (invoices, dunning, alerts, anomalies).

The contacts are the billing profile's address plus every owner and billing member: the
people who can act on a bill. Mail leaves after the transaction that caused it commits, so a
rolled-back change never sends a message.
"""

from portal.models import Organization
from portal.notifications import email_on_commit, member_emails
from portal.roles import Role

CONTACT_ROLES = (Role.OWNER, Role.BILLING)


def billing_contacts(organization: Organization) -> list[str]:
    emails = member_emails(organization.pk, CONTACT_ROLES)
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
    email_on_commit(
        billing_contacts(organization),
        organization=organization,
        subject=subject,
        template=template,
        context=context,
    )
