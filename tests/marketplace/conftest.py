"""Marketplace tests: the rows migrations seed (partner tiers, default meters), present in
every test."""

import importlib

import pytest

from billing.defaults import ensure_default_meters
from billing.models import Meter
from marketplace.models import PartnerTier
from tests.keys.conftest import gate  # noqa: F401 -- the gate over the documents API, for apps' calls

TIERS = importlib.import_module("marketplace.migrations.0002_partner_tiers").TIERS
CO_MARKETING = importlib.import_module("marketplace.migrations.0007_tier_co_marketing").CO_MARKETING


@pytest.fixture(autouse=True)
def _seeded_rows(request):
    """A transactional test's flush removes migration-seeded rows, and every test after it
    in the run would find none: put them back where a test uses the DB."""
    names = set(request.fixturenames)
    marker = request.node.get_closest_marker("django_db")
    if "transactional_db" in names or (marker and marker.kwargs.get("transaction")):
        request.getfixturevalue("transactional_db")
    elif "db" in names or marker:
        request.getfixturevalue("db")
    else:
        return
    ensure_default_meters(Meter)
    for code, name, share, rank, description in TIERS:
        PartnerTier.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "revenue_share_percent": share,
                "rank": rank,
                "description": description,
                **CO_MARKETING.get(code, {}),
            },
        )
