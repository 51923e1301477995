"""Shops simulated from known models: BG/NBD buyers, and a program that raises the repeat rate by a set amount."""
from __future__ import annotations

import numpy as np
import pandas as pd

START = pd.Timestamp("2024-01-01")


def bgnbd_orders(customers: int, weeks: float, r: float = 0.5, alpha: float = 4.0, a: float = 0.8,
                 b: float = 2.5, seed: int = 1, arrival_weeks: float = 12.0) -> pd.DataFrame:
    """Orders of customers who follow BG/NBD: Poisson purchases at rate ~ Gamma(r, alpha), death after each ~ p."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(r, 1.0 / alpha, customers)
    drop = rng.beta(a, b, customers)
    rows: list[tuple[str, pd.Timestamp, float]] = []
    for i in range(customers):
        t = rng.uniform(0, arrival_weeks)
        spend = rng.gamma(6.0, 10.0)  # the customer's typical order value
        first = True
        while t < weeks:
            rows.append((f"c{i}", START + pd.Timedelta(days=float(np.floor(t * 7))),
                         round(spend * rng.uniform(0.8, 1.2), 2)))
            # BG/NBD: a customer may drop out after each repeat purchase, never right after the first.
            if not first and rng.random() < drop[i]:
                break
            first = False
            t += rng.exponential(1.0 / rates[i]) if rates[i] > 0 else np.inf
    frame = pd.DataFrame(rows, columns=["customer_id", "processed_at", "amount"])
    frame.insert(1, "order_id", [f"o{n}" for n in range(len(frame))])
    frame["valid"] = True
    return frame


def program_outcomes(customers: int, base_rate: float, effect: float, control_share: float,
                     seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Members entering a program on one day; each orders again within the window with base_rate (+effect if in it)."""
    rng = np.random.default_rng(seed)
    ids = [f"m{i}" for i in range(customers)]
    control = rng.random(customers) < control_share
    entered = START + pd.Timedelta(days=100)
    chance = np.where(control, base_rate, base_rate + effect)
    buys = rng.random(customers) < chance
    arms = pd.DataFrame({"customer_id": ids, "control": control, "entered_at": entered})
    orders = pd.DataFrame({
        "customer_id": [c for c, b in zip(ids, buys) if b],
        "processed_at": entered + pd.Timedelta(days=10),
        "amount": 50.0,
    })
    before = pd.DataFrame({"customer_id": ids, "processed_at": entered - pd.Timedelta(days=5), "amount": 40.0})
    return arms, pd.concat([before, orders], ignore_index=True)
