# Every task row gets the type its definition declares (taskhub.definitions.task_types), indexed
# for ?type= newest first. Rows written before are given their definition's type here: one UPDATE
# per type, over the rows of the tasks declaring it (a task unknown to this code stays "other").

from django.db import migrations, models


def type_existing_rows(apps, schema_editor):
    # The definitions registered in this process (taskhub.apps discovers every app's tasks
    # before migrate runs): the types the code declares now.
    from taskhub.definitions.registry import all_definitions
    from taskhub.definitions.task_types import TaskType

    Task = apps.get_model("taskhub", "Task")
    names_by_type: dict[str, list[str]] = {}
    for name, definition in all_definitions().items():
        if definition.task_type != TaskType.OTHER:
            names_by_type.setdefault(definition.task_type, []).append(name)
    for task_type, names in names_by_type.items():
        Task.objects.filter(name__in=names).update(task_type=task_type)


class Migration(migrations.Migration):
    dependencies = [
        ("taskhub", "0008_role_permissions"),
    ]

    operations = [
        migrations.AddField(
            model_name="task",
            name="task_type",
            field=models.CharField(db_default="other", default="other", max_length=32),
        ),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(fields=["task_type", "-created_at"], name="task_type_created_idx"),
        ),
        migrations.RunPython(type_existing_rows, migrations.RunPython.noop, elidable=True),
    ]
