"""The demo's proof part: the accuracy check of the first full refit, and the demo program's lift so far.

The demo marks `repeat` as a program with a 30% control arm (demo_config), and the sandbox's live orders come
TREATMENT_EFFECT times as often from the program's members as from its control arm: a known effect to measure.
"""
from __future__ import annotations

import asyncio
import time

from connector import insights
from jobs.commands.proof import accuracy_text, programs_text
from sandboxes.shopify.serve import TREATMENT_EFFECT

PROGRAM = '\n[[analytics.programs]]\nsegment = "repeat"\nholdout = 0.3\n'


async def report(shop_id: int, timeout: float = 180) -> None:
    print("\n== Proof: how right the predictions were, and what the program changed")
    deadline = time.monotonic() + timeout
    found = await insights.shop(shop_id, "accuracy")
    while found is None and time.monotonic() < deadline:  # queued by the worker after the first full refit
        await asyncio.sleep(1)
        found = await insights.shop(shop_id, "accuracy")
    print(accuracy_text(found.data if found is not None else {}))
    kpis = await insights.shop(shop_id, "kpis")
    print(f"\nProgram (simulated: members order {TREATMENT_EFFECT:g}x as often as the control arm in the live orders "
          "since the install; a few minutes of orders is a small sample):")
    print(programs_text((kpis.data if kpis is not None else {}).get("programs") or {}))
