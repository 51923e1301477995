from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0007_program_arm')]
    initial = False
    operations = [ops.AddField(model_name='ProductRow', name='image_url', field=fields.CharField(max_length=2048, null=True))]
