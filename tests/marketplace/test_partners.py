"""Partners (MKT-1, MKT-5): an org applies, the operator decides in admin, tiers set the
default revenue share; every step audited and e-mailed; one org never sees another's."""

from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse

from common.errors import Conflict, InvalidInput
from marketplace.models import Partner, PartnerTier
from marketplace.services import partner_apply, partner_decide
from portal.audit import Actor
from portal.models import AuditLogEntry
from portal.roles import Role
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")
APPLICATION = {
    "display_name": "Acme Integrations",
    "website": "https://integrations.example.com",
    "description": "Connectors for the Documents API.",
    "support_email": "support@integrations.example.com",
    "support_url": "https://integrations.example.com/help",
    "payout_method": "stripe_connect",
    "payout_reference": "acct_1Nv0FGQ9RKHgCVdK",
    "payout_email": "finance@integrations.example.com",
}


def page_url(org) -> str:
    return reverse("marketplace:partner", kwargs={"slug": org.slug})


def member(org, role=Role.OWNER):
    user = UserFactory()
    MembershipFactory(organization=org, user=user, role=role)
    return user


def test_default_tiers_carry_the_default_revenue_share():
    shares = dict(PartnerTier.objects.values_list("code", "revenue_share_percent"))
    assert shares == {
        "registered": Decimal("70.00"),
        "certified": Decimal("75.00"),
        "premier": Decimal("80.00"),
    }


def test_a_tier_brings_its_co_marketing_on_approval_and_never_takes_any_away(org):
    flags = ("featured", "case_study", "joint_announcements")
    assert {
        tier.code: tuple(getattr(tier, flag) for flag in flags)
        for tier in PartnerTier.objects.all()
    } == {
        "registered": (False, False, False),
        "certified": (False, True, False),
        "premier": (True, True, True),
    }
    partner = partner_apply(actor=SYSTEM, organization=org, **APPLICATION)
    partner.joint_announcements = True  # the operator offered it by hand
    partner.save(update_fields=["joint_announcements"])
    certified = PartnerTier.objects.get(code="certified")
    approved = partner_decide(actor=SYSTEM, partner=partner, status="approved", tier=certified)
    assert tuple(getattr(approved, flag) for flag in flags) == (False, True, True)
    entry = AuditLogEntry.objects.get(action="partner.approved")
    assert entry.changes["case_study"] is True and entry.changes["featured"] is False


def test_the_partner_page_lists_its_co_marketing(client, org):
    partner = partner_apply(actor=SYSTEM, organization=org, **APPLICATION)
    premier = PartnerTier.objects.get(code="premier")
    partner_decide(actor=SYSTEM, partner=partner, status="approved", tier=premier)
    client.force_login(member(org))
    page = client.get(reverse("marketplace:partner", kwargs={"slug": org.slug})).content.decode()
    assert "Featured in the marketplace" in page and "Joint announcements" in page


def test_an_owner_applies_from_the_partner_page(client, org):
    client.force_login(member(org))

    response = client.post(page_url(org), APPLICATION)

    assert response.status_code == 302
    partner = Partner.objects.get(organization=org)
    assert partner.status == Partner.Status.APPLIED and partner.tier is None
    entry = AuditLogEntry.objects.get(action="partner.applied")
    assert "payout_reference" not in entry.changes  # payout details stay out of the log
    page = client.get(page_url(org)).content.decode()
    assert 'data-partner-status="applied"' in page


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("website", "javascript:alert(1)"),
        ("support_email", "not-an-address"),
        ("payout_reference", "DE89370400440532013000"),  # an IBAN is not a Stripe account
        ("payout_method", "cash"),
        ("display_name", ""),
    ],
)
def test_bad_applications_are_refused_with_a_reason_and_nothing_stored(client, org, field, value):
    client.force_login(member(org))

    response = client.post(page_url(org), {**APPLICATION, field: value})

    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not Partner.objects.exists()


def test_the_service_refuses_the_same_bad_input(org):
    with pytest.raises(InvalidInput) as refused:
        partner_apply(actor=SYSTEM, organization=org, **{**APPLICATION, "payout_reference": "x"})
    assert refused.value.code == "invalid_payout_reference"
    with pytest.raises(InvalidInput):
        partner_apply(actor=SYSTEM, organization=org, **{**APPLICATION, "status": "approved"})
    assert not Partner.objects.exists()


def test_developers_and_viewers_cannot_apply_and_other_orgs_get_404(client, org, other_org):
    for role in (Role.DEVELOPER, Role.VIEWER, Role.BILLING):
        client.force_login(member(org, role))
        assert client.post(page_url(org), APPLICATION).status_code == 403
    partner_apply(actor=SYSTEM, organization=org, **APPLICATION)
    outsider = member(other_org)
    client.force_login(outsider)
    assert client.get(page_url(org)).status_code == 404
    page = client.get(page_url(other_org)).content.decode()
    assert "Acme Integrations" not in page
    assert Partner.objects.count() == 1


def test_the_operator_approves_into_a_tier_and_the_owners_hear_of_it(
    org, django_capture_on_commit_callbacks
):
    owner = member(org)
    member(org, Role.DEVELOPER)
    partner = partner_apply(actor=SYSTEM, organization=org, **APPLICATION)
    certified = PartnerTier.objects.get(code="certified")
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        decided = partner_decide(
            actor=SYSTEM, partner=partner, status="approved", tier=certified, note="Welcome!"
        )

    assert decided.status == Partner.Status.APPROVED
    assert decided.revenue_share_percent == Decimal("75.00")
    assert AuditLogEntry.objects.filter(action="partner.approved").count() == 1
    [message] = mail.outbox
    assert owner.email in message.to and len(message.to) == 1  # owners and admins only
    assert "75.00%" in message.body and "Welcome!" in message.body


def test_decisions_follow_the_allowed_transitions(org):
    partner = partner_apply(actor=SYSTEM, organization=org, **APPLICATION)
    with pytest.raises(Conflict):
        partner_decide(actor=SYSTEM, partner=partner, status="suspended")
    partner_decide(actor=SYSTEM, partner=partner, status="rejected", note="Need a website.")
    with pytest.raises(Conflict):
        partner_decide(actor=SYSTEM, partner=partner, status="approved")

    # A declined org applies again; then it can be approved (lowest tier by default).
    again = partner_apply(actor=SYSTEM, organization=org, **APPLICATION)
    assert again.status == Partner.Status.APPLIED
    approved = partner_decide(actor=SYSTEM, partner=again, status="approved")
    assert approved.tier.code == "registered"
    suspended = partner_decide(actor=SYSTEM, partner=approved, status="suspended")
    with pytest.raises(Conflict) as refused:
        partner_apply(actor=SYSTEM, organization=org, **APPLICATION)
    assert refused.value.code == "partner_suspended"
    assert Partner.objects.get(pk=suspended.pk).status == Partner.Status.SUSPENDED


def test_an_approved_partner_edits_its_profile_and_stays_approved(org):
    partner = partner_apply(actor=SYSTEM, organization=org, **APPLICATION)
    partner_decide(actor=SYSTEM, partner=partner, status="approved")

    edited = partner_apply(
        actor=SYSTEM, organization=org, **{**APPLICATION, "display_name": "Acme Apps"}
    )

    assert (edited.status, edited.display_name) == (Partner.Status.APPROVED, "Acme Apps")
    assert AuditLogEntry.objects.get(action="partner.updated").changes["display_name"] == (
        "Acme Apps"
    )


def test_the_operator_decides_in_admin_with_a_tier_and_a_note(admin_client, org):
    partner = partner_apply(actor=SYSTEM, organization=org, **APPLICATION)
    premier = PartnerTier.objects.get(code="premier")

    response = admin_client.post(
        reverse("admin:marketplace_partner_changelist"),
        {
            "action": "partner_approved",
            "_selected_action": [str(partner.pk)],
            "tier": str(premier.pk),
            "note": "Great connectors.",
        },
    )

    assert response.status_code == 302
    partner.refresh_from_db()
    assert (partner.status, partner.tier, partner.review_note) == (
        Partner.Status.APPROVED,
        premier,
        "Great connectors.",
    )
    assert (
        admin_client.get(reverse("admin:marketplace_partner_change", args=[partner.pk])).status_code
        == 200
    )
    # Deciding twice is refused with a message, and changes nothing.
    admin_client.post(
        reverse("admin:marketplace_partner_changelist"),
        {"action": "partner_approved", "_selected_action": [str(partner.pk)]},
    )
    assert AuditLogEntry.objects.filter(action="partner.approved").count() == 1
