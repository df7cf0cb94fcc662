from django.db import migrations, models


def clear_non_finite_priorities(apps, schema_editor):
    """A NaN or infinite priority stored before the constraint sorts as least urgent
    (0, as a study with no AI finding) so that the constraint can be added."""
    Study = apps.get_model("diagnosis", "Study")
    Study.objects.exclude(priority__gte=-1e6, priority__lte=1e6).update(priority=0.0)


class Migration(migrations.Migration):
    dependencies = [
        ("diagnosis", "0002_ai_finding_volume_outside_scope"),
    ]

    operations = [
        migrations.RunPython(clear_non_finite_priorities, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="study",
            constraint=models.CheckConstraint(
                condition=models.Q(priority__gte=-1e6, priority__lte=1e6),
                name="study_priority_finite",
            ),
        ),
    ]
