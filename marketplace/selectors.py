"""Reads for partners, always through the organization that owns them."""

from marketplace.models import Partner
from portal.models import Organization


def partner_for(*, organization: Organization) -> Partner | None:
    return Partner.objects.select_related("tier").filter(organization=organization).first()
