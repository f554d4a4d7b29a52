from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('connect', '0010_trusted_issuer_rules'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='trustedissuer',
            name='environment',
        ),
        migrations.RemoveField(
            model_name='trustedissuer',
            name='project',
        ),
        migrations.RemoveField(
            model_name='trustedissuer',
            name='required_claims',
        ),
        migrations.AlterField(
            model_name='trustedissuer',
            name='audience',
            field=models.CharField(help_text="Exact `aud` your workloads request; your team's own audience unless you must use another.", max_length=255),
        ),
        migrations.AddConstraint(
            model_name='trustedissuer',
            constraint=models.UniqueConstraint(fields=('issuer', 'audience'), name='connect_trustedissuer_one_team_per_audience', violation_error_message="This issuer is already trusted for this audience. Use your team's own audience."),
        ),
    ]
