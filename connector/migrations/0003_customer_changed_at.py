from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0002_order_awaiting_payment')]
    initial = False
    operations = [ops.AddField(model_name='CustomerRow', name='changed_at', field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False))]
