from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0002_order_awaiting_payment')]

    initial = False

    operations = [
        ops.AddField(
            model_name='CustomerRow',
            name='changed_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
