from json import dumps, loads
import functools

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0005_flow_triggers')]
    initial = False
    operations = [
        ops.CreateModel(name='ShopSettingsRow', bases=['Model'], options={'table': 'shop_settings', 'app': 'models', 'unique_together': (('shop',),), 'pk_attr': 'id', 'table_description': "A shop's own settings from the app home, overriding app.toml for that shop alone (see connector.shop_settings)."}, fields=[
            ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
            ('shop', fields.ForeignKeyField('models.ShopRow', source_field='shop_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
            ('data', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ('saved_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
        ]),
    ]
