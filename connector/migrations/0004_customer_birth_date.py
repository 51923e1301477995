from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0003_customer_changed_at')]
    initial = False
    operations = [ops.AddField(model_name='CustomerRow', name='birth_date', field=fields.DateField(null=True))]
