from tortoise import migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """Indexes a scoped recompute reads by: changed customers, and a few customers' checkouts and refunds."""

    dependencies = [('models', '0008_product_image')]

    initial = False

    operations = [
        ops.AddIndex(model_name='CustomerRow', index=Index(fields=['shop_id', 'changed_at'])),
        ops.AddIndex(model_name='CheckoutRow', index=Index(fields=['shop_id', 'customer_id'])),
        ops.AddIndex(model_name='RefundRow', index=Index(fields=['shop_id', 'order_id'])),
    ]
