from django.db import migrations, models


def copy_from_current_results(apps, schema_editor):
    """Studies analysed before this field show their current result's probability."""
    Study = apps.get_model("diagnosis", "Study")
    AIResult = apps.get_model("diagnosis", "AIResult")
    for result in AIResult.objects.filter(is_current=True).only(
        "study_id", "probability"
    ):
        Study.objects.filter(pk=result.study_id).update(
            ai_probability=result.probability
        )


class Migration(migrations.Migration):
    dependencies = [("diagnosis", "0005_study_claimed_by")]

    operations = [
        migrations.AddField(
            model_name="study",
            name="ai_probability",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.RunPython(copy_from_current_results, migrations.RunPython.noop),
    ]
