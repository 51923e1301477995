"""A run's record (its marks and its summary) is kept whole or not at all, and a lock at its end retries the run."""
from __future__ import annotations

from typing import Any

import pytest
from arq import Retry
from arq.connections import RedisSettings
from tortoise.exceptions import OperationalError

from adapters.registry import REGISTRY
from connector import insights, shops
from connector.config import Settings
from connector.db import ShopInsightRow, ShopRow
from connector.model import InstallState
from connector.runtime import RedisHandle
from connector.services import Services
from jobs.tasks.recompute import FULL_REFIT_AT, PLAN_SETTINGS, PLANNED_THROUGH, recompute, recompute_shop
from tests.jobs.shop_data import AS_OF, products, seed, shop_orders

pytestmark = pytest.mark.postgres  # CI runs these again on PostgreSQL (conftest's database_url)

MARKS = (PLANNED_THROUGH, FULL_REFIT_AT, PLAN_SETTINGS)


async def shop_with_a_run(settings: Settings) -> tuple[int, dict[str, Any]]:
    """A pending shop (computed and planned, nothing sent) after one full run, with the marks that run left."""
    row = await shops.save_install(settings, "shopify", "r.myshopify.com", {"access_token": "t"},
                                   state=InstallState.PENDING)
    await seed(row.id, products() + shop_orders(40, seed=3))
    first = await recompute(settings, REGISTRY, row.id, AS_OF)
    assert first["run"] == "full"
    cursors = (await ShopRow.get(id=row.id)).cursors
    return row.id, {name: cursors.get(name) for name in MARKS}


def locked_summary(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The summary's save fails as SQLite does under a competing writer; other documents save as usual."""
    saved = insights.set_shop
    refused: list[str] = []

    async def set_shop(shop_id: int, name: str, data: Any) -> None:
        if name == "last_run":
            refused.append(name)
            raise OperationalError("database is locked")
        await saved(shop_id, name, data)

    monkeypatch.setattr(insights, "set_shop", set_shop)
    return refused


async def test_a_summary_that_fails_to_save_leaves_the_marks_so_the_next_run_does_it_all_again(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    shop_id, marks = await shop_with_a_run(settings)
    before = await ShopInsightRow.get(shop_id=shop_id, name="last_run")
    # A settings change (as the app home saves one): the next run must be full and its summary must say so.
    await shops.set_cursors(shop_id, {PLAN_SETTINGS: "settings saved since"})
    marks[PLAN_SETTINGS] = "settings saved since"
    refused = locked_summary(monkeypatch)

    with pytest.raises(OperationalError):
        await recompute(settings, REGISTRY, shop_id, AS_OF)

    assert refused == ["last_run"]
    cursors = (await ShopRow.get(id=shop_id)).cursors
    assert {name: cursors.get(name) for name in MARKS} == marks  # no mark moved without its summary
    assert (await ShopInsightRow.get(shop_id=shop_id, name="last_run")).computed_at == before.computed_at
    monkeypatch.undo()

    again = await recompute(settings, REGISTRY, shop_id, AS_OF)

    assert again["run"] == "full"  # not "nothing changed": the failed run is redone whole
    stored = await ShopInsightRow.get(shop_id=shop_id, name="last_run")
    assert stored.computed_at > before.computed_at and stored.data["run"] == "full"
    assert (await ShopRow.get(id=shop_id)).cursors[PLAN_SETTINGS] != "settings saved since"


async def test_a_lock_at_the_end_of_a_run_retries_the_job_instead_of_failing_it(
        settings: Settings, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    shop_id, _ = await shop_with_a_run(settings)
    await shops.set_cursors(shop_id, {PLAN_SETTINGS: "settings saved since"})
    locked_summary(monkeypatch)
    services = Services(settings=settings, adapters=REGISTRY, redis=RedisHandle(RedisSettings.from_dsn(redis_url)))
    try:
        with pytest.raises(Retry):
            await recompute_shop({"services": services, "job_try": 1}, shop_id)
        monkeypatch.undo()
        done = await recompute_shop({"services": services, "job_try": 2}, shop_id)
        assert done["run"] == "full"
        assert (await ShopInsightRow.get(shop_id=shop_id, name="last_run")).data["run"] == "full"
    finally:
        await services.close()


async def test_a_document_saved_twice_keeps_the_latest(settings: Settings) -> None:
    row = await shops.save_install(settings, "shopify", "d.myshopify.com", {"access_token": "t"})
    await insights.set_shop(row.id, "last_run", {"run": "full", "refused": [{"owner": "1", "reason": "é"}]})
    first = await ShopInsightRow.get(shop_id=row.id, name="last_run")
    await insights.set_shop(row.id, "last_run", {"run": "scoped", "seconds": {"total": 1.5}})

    rows = await ShopInsightRow.filter(shop_id=row.id, name="last_run")

    assert len(rows) == 1 and rows[0].data == {"run": "scoped", "seconds": {"total": 1.5}}
    assert rows[0].computed_at >= first.computed_at and first.data["refused"][0]["reason"] == "é"
