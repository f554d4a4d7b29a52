"""Team API tokens; environments get public ids (``env_…``, given to existing rows one by one);
project links get created and updated times (existing links: now)."""

import connect.ids
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def give_environments_ids(apps, schema_editor):
    Environment = apps.get_model("connect", "Environment")
    for environment in Environment.objects.filter(public_id__isnull=True).only("pk"):
        Environment.objects.filter(pk=environment.pk).update(
            public_id=connect.ids.generate("env")
        )


class Migration(migrations.Migration):

    dependencies = [
        ('connect', '0022_proxy_calls'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='environment',
            name='public_id',
            field=models.CharField(editable=False, max_length=40, null=True),
        ),
        migrations.RunPython(give_environments_ids, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='environment',
            name='public_id',
            field=models.CharField(default=connect.ids.PublicIdFactory('env'), editable=False, max_length=40, unique=True),
        ),
        migrations.AddField(
            model_name='projectlink',
            name='created_at',
            field=models.DateTimeField(default=django.utils.timezone.now, editable=False),
        ),
        migrations.AddField(
            model_name='projectlink',
            name='updated_at',
            field=models.DateTimeField(default=django.utils.timezone.now, editable=False),
        ),
        migrations.CreateModel(
            name='TeamApiToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('public_id', models.CharField(default=connect.ids.PublicIdFactory('tok'), editable=False, max_length=40, unique=True)),
                ('name', models.CharField(max_length=120)),
                ('role', models.CharField(choices=[('viewer', 'Viewer'), ('member', 'Member'), ('owner', 'Owner')], default='viewer', max_length=10)),
                ('prefix', models.CharField(editable=False, max_length=16, unique=True)),
                ('secret_sha256', models.CharField(editable=False, max_length=64)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ('expires_at', models.DateTimeField(blank=True, help_text='Empty: until revoked.', null=True)),
                ('last_used_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('revoked_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('created_by', models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('team', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_tokens', to='connect.team')),
            ],
            options={
                'verbose_name': 'team API token',
                'ordering': ['team', '-created_at'],
                'constraints': [models.CheckConstraint(condition=models.Q(('role__in', ['viewer', 'member', 'owner'])), name='connect_teamapitoken_role_valid')],
            },
        ),
    ]
