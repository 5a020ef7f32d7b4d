# The operator roles become permissions (taskhub.role_viewer, role_operator, role_admin) that any
# group or user can hold, instead of groups matched by name. Django creates the Permission rows
# after migrate; `manage.py taskhub groups` creates the ready-made groups holding them.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("taskhub", "0007_leader_lease"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="task",
            options={
                "ordering": ["-created_at"],
                "permissions": [
                    (
                        "role_viewer",
                        "Viewer: read tasks, queues, workflows, schedules and webhooks",
                    ),
                    (
                        "role_operator",
                        "Operator: also schedule, retry and cancel tasks, pause and resume queues",
                    ),
                    (
                        "role_admin",
                        "Admin: also clear queues, remove tasks and edit schedules and webhooks",
                    ),
                ],
            },
        ),
    ]
