"""On PostgreSQL, refuse UPDATE and DELETE on the audit log in the database itself."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION tollgate_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '%% is append-only: %% refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER portal_auditlogentry_append_only
    BEFORE UPDATE OR DELETE ON portal_auditlogentry
    FOR EACH ROW EXECUTE FUNCTION tollgate_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS portal_auditlogentry_append_only ON portal_auditlogentry;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("portal", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
