"""On PostgreSQL: partition the ledger by month on event time and make it append-only."""

from django.db import migrations

PARTITION = """
ALTER TABLE billing_usageevent RENAME TO billing_usageevent_unpartitioned;
CREATE SEQUENCE billing_usageevent_ledger_id_seq;
CREATE TABLE billing_usageevent (
    LIKE billing_usageevent_unpartitioned INCLUDING DEFAULTS
) PARTITION BY RANGE (occurred_at);
ALTER TABLE billing_usageevent
    ALTER COLUMN id SET DEFAULT nextval('billing_usageevent_ledger_id_seq');
ALTER SEQUENCE billing_usageevent_ledger_id_seq OWNED BY billing_usageevent.id;
DROP TABLE billing_usageevent_unpartitioned;
ALTER TABLE billing_usageevent ADD PRIMARY KEY (id, occurred_at);
CREATE INDEX usage_org_time ON billing_usageevent (organization_id, occurred_at);
CREATE TABLE billing_usageevent_default PARTITION OF billing_usageevent DEFAULT;
CREATE TRIGGER billing_usageevent_append_only
    BEFORE UPDATE OR DELETE ON billing_usageevent
    FOR EACH ROW EXECUTE FUNCTION tollgate_refuse_change();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from billing.partitions import ensure_ledger_partitions

    schema_editor.execute(PARTITION)
    ensure_ledger_partitions(using=schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_initial"),
        ("portal", "0002_audit_append_only"),  # defines tollgate_refuse_change()
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
