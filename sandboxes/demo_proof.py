"""The demo's proof part: the accuracy check of the first full refit, and the demo program's lift so far.

The demo marks `repeat` as a program with a 30% control arm (demo_config), and the sandbox's live orders come
TREATMENT_EFFECT times as often from the program's members as from its control arm: a known effect to measure.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from connector import insights
from jobs.commands.proof import accuracy_text, programs_text
from sandboxes.shopify.serve import TREATMENT_EFFECT

PROGRAM = '\n[[analytics.programs]]\nsegment = "repeat"\nholdout = 0.3\n'


BURST = 300  # orders the sandbox places at once after the install: enough for the lift to have a sample


def counted(kpis: dict[str, Any], program: str) -> float:
    """Orders since entering that our last recompute counted in a program's two arms."""
    lift = (kpis.get("programs") or {}).get(program) or {}
    per = lift.get("orders_per_customer") or {}
    return (float(per.get("program") or 0) * int(lift.get("program_customers") or 0)
            + float(per.get("control") or 0) * int(lift.get("control_customers") or 0))


async def report(shop_id: int, store_url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    found = await insights.shop(shop_id, "accuracy")
    while found is None and time.monotonic() < deadline:  # queued by the worker after the first full refit
        await asyncio.sleep(1)
        found = await insights.shop(shop_id, "accuracy")
    print(accuracy_text(found.data if found is not None else {}))
    # The store's customers now carry our program and control tags: a month of orders arrives at once, members
    # ordering TREATMENT_EFFECT times as often as the control arm. The store says where they went (the truth);
    # what follows is what our recompute measured from the webhooks alone.
    placed = httpx.post(f"{store_url}/sandbox/program-orders", params={"count": BURST}, timeout=60).json()
    print(f"\nThe store placed {placed['orders']} orders at once: {placed['program']} by program members, "
          f"{placed['control']} by the control arm, {placed['neither']} by others (simulated effect: members order "
          f"{TREATMENT_EFFECT:g}x as often as the control arm).")
    want = placed["program"] + placed["control"]
    kpis = await insights.shop(shop_id, "kpis")
    while counted(kpis.data if kpis else {}, "repeat") < want and time.monotonic() < deadline + 60:
        await asyncio.sleep(1)  # the webhooks are applied, then the debounced recompute counts them
        kpis = await insights.shop(shop_id, "kpis")
    data = kpis.data if kpis is not None else {}
    if counted(data, "repeat") < want:
        print(f"(the worker has counted {counted(data, 'repeat'):.0f} of those {want} orders so far; "
              "`retention programs SHOP` shows the figures once it has applied them)")
    print(programs_text(data.get("programs") or {}))
