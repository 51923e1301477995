from json import dumps, loads
import functools

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0004_customer_birth_date')]
    initial = False
    operations = [
        ops.CreateModel(name='FlowOutboxRow', bases=['Model'], options={'table': 'flow_outbox', 'app': 'models', 'unique_together': (('shop', 'key'),), 'indexes': [Index(fields=['shop_id', 'status'])], 'pk_attr': 'id', 'table_description': 'A Flow trigger call to send once: recorded with the state change that fired it, marked when sent.'}, fields=[
            ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
            ('shop', fields.ForeignKeyField('models.ShopRow', source_field='shop_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
            ('key', fields.CharField(max_length=255)),
            ('handle', fields.CharField(max_length=64)),
            ('payload', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ('status', fields.CharField(default='pending', max_length=20)),
            ('error', fields.TextField(null=True, unique=False)),
            ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
        ]),
        ops.CreateModel(name='FlowStateRow', bases=['Model'], options={'table': 'flow_state', 'app': 'models', 'unique_together': (('shop', 'customer_id'),), 'pk_attr': 'id', 'table_description': "A customer's Flow-relevant state after the last recompute (segments, churn risk, tier, birthday soon)."}, fields=[
            ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
            ('shop', fields.ForeignKeyField('models.ShopRow', source_field='shop_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
            ('customer_id', fields.CharField(max_length=255)),
            ('state', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
        ]),
    ]
