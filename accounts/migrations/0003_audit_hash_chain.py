"""Chain the audit trail: every entry gets `prev_hash` and `entry_hash`, existing
entries too, in id order, so that `manage.py audit_verify` covers the whole trail.
The timestamp is now set by audit_record, which must know it before hashing."""

import django.utils.timezone
from django.db import migrations, models

from accounts.audit import GENESIS, HASHED_FIELDS, entry_hash

TRIGGER = "accounts_auditentry_no_change"


def chain_existing(apps, schema_editor):
    AuditEntry = apps.get_model("accounts", "AuditEntry")
    postgresql = schema_editor.connection.vendor == "postgresql"
    if postgresql:
        # The append-only trigger of 0002 refuses these updates; the migrating
        # (owning) role may lift it for the length of this transaction.
        schema_editor.execute(
            f"ALTER TABLE accounts_auditentry DISABLE TRIGGER {TRIGGER}"
        )
    prev_hash = GENESIS
    fields = [name for name in HASHED_FIELDS if name != "prev_hash"]
    for row in AuditEntry.objects.order_by("id").values("id", *fields).iterator():
        row["prev_hash"] = prev_hash
        prev_hash = entry_hash(row)
        AuditEntry.objects.filter(pk=row["id"]).update(
            prev_hash=row["prev_hash"], entry_hash=prev_hash
        )
    if postgresql:
        schema_editor.execute(
            f"ALTER TABLE accounts_auditentry ENABLE TRIGGER {TRIGGER}"
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_audit_append_only")]

    operations = [
        migrations.AlterField(
            model_name="auditentry",
            name="timestamp",
            field=models.DateTimeField(
                db_index=True, default=django.utils.timezone.now, editable=False
            ),
        ),
        migrations.AddField(
            model_name="auditentry",
            name="prev_hash",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditentry",
            name="entry_hash",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(chain_existing, migrations.RunPython.noop),
    ]
