"""Seed the default meters (requests, records_processed, storage_gb, active_users, gpu_seconds)."""

from django.db import migrations


def seed(apps, schema_editor):
    from billing.defaults import ensure_default_meters

    ensure_default_meters(apps.get_model("billing", "Meter"))


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_ledger_partitioned_append_only")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
