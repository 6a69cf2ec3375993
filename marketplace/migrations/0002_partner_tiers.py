"""The three default partner tiers (MKT-5); the operator edits or adds tiers in admin."""

from decimal import Decimal

from django.db import migrations

TIERS = [
    ("registered", "Registered", Decimal("70.00"), 10, "Listed apps, standard review."),
    ("certified", "Certified", Decimal("75.00"), 20, "Apps certified by the operator."),
    ("premier", "Premier", Decimal("80.00"), 30, "Co-marketing and priority review."),
]


def create_tiers(apps, schema_editor):
    PartnerTier = apps.get_model("marketplace", "PartnerTier")
    for code, name, share, rank, description in TIERS:
        PartnerTier.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "revenue_share_percent": share,
                "rank": rank,
                "description": description,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("marketplace", "0001_initial")]

    operations = [migrations.RunPython(create_tiers, migrations.RunPython.noop)]
