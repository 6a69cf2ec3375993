"""E-mail to the members of an organization who hold some roles (billing contacts, the
owners of a webhook endpoint...). Mail leaves after the transaction that caused it commits,
so a rolled-back change never sends a message."""

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string

from portal.models import Membership, Organization


def member_emails(organization_id, roles) -> list[str]:
    return list(
        Membership.objects.filter(organization_id=organization_id, role__in=roles)
        .order_by("created_at")
        .values_list("user__email", flat=True)
    )


def email_on_commit(
    recipients: list[str],
    *,
    organization: Organization,
    subject: str,
    template: str,
    context: dict,
) -> None:
    """Renders `template` (text) now and sends it after commit; nothing without recipients."""
    if not recipients:
        return
    body = render_to_string(
        template, {"organization": organization, "site_url": settings.SITE_URL, **context}
    )
    full_subject = f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{subject}"

    def send() -> None:
        send_mail(subject=full_subject, message=body, from_email=None, recipient_list=recipients)

    transaction.on_commit(send)
