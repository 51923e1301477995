"""The accuracy task: fit a shop's history up to a cut-off, predict the days since, compare, keep the trend."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pandas as pd

from connector import insights, shop_settings, shops
from connector.config import Settings
from connector.db import OrderRow
from jobs.analytics.accuracy import prediction_accuracy
from jobs.cpu import run_cpu
from jobs.tasks.context import services
from jobs.tasks.frames import load_shop

HISTORY = 60  # refits kept in the trend


async def refresh_accuracy(settings: Settings, shop_id: int, as_of: datetime) -> dict[str, Any]:
    """Check the predictions a fit `accuracy_window_days` ago would have made; store it with the earlier checks."""
    settings = await shop_settings.effective(settings, shop_id)
    days = settings.analytics.accuracy_window_days
    if days <= 0:
        return {"status": "off"}
    stamp = pd.Timestamp(as_of)
    end = (stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp).normalize()
    cutoff = end - pd.Timedelta(days=days)
    before = (cutoff + pd.Timedelta(days=1)).to_pydatetime().replace(tzinfo=timezone.utc)
    # Checked first in SQL: a young shop (or one still backfilling) costs one query, not a load of every order.
    if not await OrderRow.filter(shop_id=shop_id, processed_at__lt=before).exists():
        return {"status": "skipped", "reason": f"no order on or before the cut-off {cutoff.date()}"}
    frames = await load_shop(shop_id, settings)
    orders = frames.orders
    if not (orders["processed_at"] < cutoff + pd.Timedelta(days=1)).any():
        return {"status": "skipped", "reason": f"no valid order on or before the cut-off {cutoff.date()}"}
    checked = (await run_cpu(prediction_accuracy, orders, settings.analytics, cutoff, end, frames.checkouts)).to_dict()
    checked["computed_at"] = datetime.now(timezone.utc).isoformat()
    previous = await insights.shop(shop_id, "accuracy")
    history = list(previous.data.get("history", [])) if previous is not None else []
    trend = {k: v for k, v in checked.items() if k not in ("deciles", "sentence")}
    history = [h for h in history if h.get("end") != checked["end"]] + [trend]
    await insights.set_shop(shop_id, "accuracy", {"latest": checked, "history": history[-HISTORY:]})
    return {"status": "ok", **trend}


async def accuracy_shop(ctx: dict[str, Any], shop_id: int) -> dict[str, Any]:
    """arq task: refresh the shop's accuracy check (queued after each full refit)."""
    found = services(ctx)
    return await refresh_accuracy(found.settings, shop_id, shops.utcnow())


