"""The activity counters' unique constraint takes the model's name, like every other named
constraint (``connect_<model>_…``): renamed in place, no rebuild of the index."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("connect", "0027_log_team_ids"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE connect_activitycount RENAME CONSTRAINT "
                    "connect_activity_unique TO connect_activitycount_unique",
                    "ALTER TABLE connect_activitycount RENAME CONSTRAINT "
                    "connect_activitycount_unique TO connect_activity_unique",
                ),
            ],
            state_operations=[
                migrations.RemoveConstraint(
                    model_name="activitycount", name="connect_activity_unique"
                ),
                migrations.AddConstraint(
                    model_name="activitycount",
                    constraint=models.UniqueConstraint(
                        fields=("connector", "hour", "kind", "label"),
                        name="connect_activitycount_unique",
                    ),
                ),
            ],
        ),
    ]
