"""The sandbox's known program effect (the proof demo's ground truth): members order TREATMENT_EFFECT times as often."""
from __future__ import annotations

from starlette.testclient import TestClient

from sandboxes.shopify.serve import TREATMENT_EFFECT, program_orders_route
from tests.adapters.shopify.support import make_sandbox


def test_program_members_order_as_often_as_the_known_effect_says() -> None:
    sandbox = make_sandbox()
    store = sandbox.store
    store.seed(300, 10, days=30, seed=1)
    ids = sorted(store.customers)
    for i, cid in enumerate(ids):  # a third in the program, a third held out, a third neither
        store.customers[cid]["tags"] = [["rt:vip"], ["rt:vip_control"], ["rt:first_time"]][i % 3]
    before = len(store.orders)
    sandbox.app.router.routes.append(program_orders_route(sandbox, seed=5))
    answer = TestClient(sandbox.app).post("/sandbox/program-orders", params={"count": 3000}).json()
    assert answer["orders"] == 3000 == answer["program"] + answer["control"] + answer["neither"]
    assert len(store.orders) == before + 3000
    placed = list(store.orders.values())[before:]
    by_arm = {"rt:vip": 0, "rt:vip_control": 0, "rt:first_time": 0}
    for order in placed:
        by_arm[store.customers[order["customer_id"]]["tags"][0]] += 1
    assert (by_arm["rt:vip"], by_arm["rt:vip_control"], by_arm["rt:first_time"]) == (
        answer["program"], answer["control"], answer["neither"])
    # Equal arm sizes: the ratio of orders is the effect (3000 orders: within 20%, about 4 standard errors); those outside any program order
    # as often as the control arm.
    assert abs(by_arm["rt:vip"] / by_arm["rt:vip_control"] - TREATMENT_EFFECT) < 0.20 * TREATMENT_EFFECT
    assert abs(by_arm["rt:first_time"] / by_arm["rt:vip_control"] - 1) < 0.20
