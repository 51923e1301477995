"""`retention export`: every analysed customer, guests included, with segments and predictions."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from adapters.registry import REGISTRY
from connector import model as m
from connector.config import Settings
from jobs.commands.export import COLUMNS, export
from jobs.tasks.recompute import recompute
from tests.jobs.shop_data import AS_OF, order, products, seed, shop_orders
from tests.jobs.test_recompute import new_shop

pytestmark = pytest.mark.postgres


async def test_guests_are_exported_with_their_segments_and_a_segment_filter_narrows_the_list(
        settings: Settings) -> None:
    shop_id = await new_shop(settings)
    guest = m.guest_id("walk.in@example.com")
    guest_orders = [m.Upsert(order(f"g{i}", guest, AS_OF - timedelta(days=30 * i), [1])) for i in range(1, 4)]
    await seed(shop_id, products() + shop_orders(60, seed=5) + guest_orders)
    await recompute(settings, REGISTRY, shop_id, AS_OF)

    out = io.StringIO()
    count = await export("a.myshopify.com", None, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == COLUMNS and len(rows) == count > 60
    mine = next(r for r in rows if r["customer_id"] == guest)
    assert mine["guest"] == "True" and mine["email"] == "walk.in@example.com"
    assert mine["number_of_orders"] == "3" and "repeat" in mine["segments"].split()

    repeat = io.StringIO()
    n_repeat = await export("a.myshopify.com", "repeat", repeat)
    kept = list(csv.DictReader(io.StringIO(repeat.getvalue())))
    assert 0 < n_repeat == len(kept) < count
    assert all("repeat" in r["segments"].split() for r in kept)
    with pytest.raises(SystemExit):
        await export("missing.myshopify.com", None, io.StringIO())
