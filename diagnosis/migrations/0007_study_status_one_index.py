from django.db import migrations


class Migration(migrations.Migration):
    """Study.status had two identical indexes, the field's db_index and Meta's
    "study_status": every status change wrote both. The field's index stays."""

    dependencies = [("diagnosis", "0006_study_ai_probability")]

    operations = [
        migrations.RemoveIndex(model_name="study", name="study_status"),
    ]
