"""The app home's chart aggregates, computed once per recompute."""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from jobs.analytics.charts import clv_distribution, repeat_rate_over_time, rfm_grid


def orders(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [c for c, _ in rows], "processed_at": pd.to_datetime([t for _, t in rows]),
                         "valid": True})


def test_repeat_rate_counts_second_orders_by_each_months_end() -> None:
    frame = orders([("a", "2026-01-05"), ("a", "2026-03-01"), ("b", "2026-02-10"), ("c", "2026-03-20"),
                    ("c", "2026-03-21")])
    points = repeat_rate_over_time(frame, datetime(2026, 3, 31))
    assert [(p["month"], p["buyers"], p["repeaters"]) for p in points] == [
        ("2026-01", 1, 0), ("2026-02", 2, 0), ("2026-03", 3, 2)]
    assert points[-1]["rate"] == 2 / 3


def test_clv_histogram_holds_every_buyer_and_the_rfm_grid_every_scored_one() -> None:
    customers = pd.DataFrame({"number_of_orders": [1, 2, 0, 3], "predicted_clv": [10.0, 50.0, 0.0, np.nan],
                              "rfm_recency": [5, 1, 3, 2], "rfm_frequency": [1, 5, 3, 2]})
    hist = clv_distribution(customers)
    assert sum(hist["counts"]) == 2  # the non-buyer and the unknown prediction are not drawn
    grid = rfm_grid(customers)
    cells = {(c["r"], c["f"]): c for c in grid["cells"]}
    assert len(cells) == 25 and cells[(5, 1)]["count"] == 1 and cells[(5, 1)]["group"] == "New"
    assert sum(grid["groups"].values()) == 3
