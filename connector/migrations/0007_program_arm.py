from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0006_shop_settings')]
    initial = False
    operations = [
        ops.CreateModel(name='ProgramArmRow', bases=['Model'], options={'table': 'program_arm', 'app': 'models', 'unique_together': (('shop', 'program', 'customer_id'),), 'pk_attr': 'id', 'table_description': 'A customer\'s arm in a program (control or not), drawn once when they first entered it and never changed.'}, fields=[
            ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
            ('shop', fields.ForeignKeyField('models.ShopRow', source_field='shop_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
            ('program', fields.CharField(max_length=64)),
            ('customer_id', fields.CharField(max_length=255)),
            ('control', fields.BooleanField()),
            ('entered_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
        ]),
    ]
