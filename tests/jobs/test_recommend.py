"""Recommendation components on small synthetic shops whose right answers are known by construction."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import jobs.recommend.cooccurrence as cooccurrence
from connector.recommend_settings import RecommendSettings
from jobs.recommend.model import REASONS, fit, related_products, upgrade_products
from jobs.recommend.scoring import lists, recommend

AS_OF = pd.Timestamp("2026-11-23")
# The merchant option that keeps one-off purchases nobody re-buys (a kettle) out of the blended list (off by default).
ONE_OFFS = dataclasses.replace(RecommendSettings(), skip_never_rebought=True)
REPO = Path(__file__).resolve().parents[2]


def shop(orders: list[tuple[str, str, list[str]]], prefix: str = "o") -> pd.DataFrame:
    """Lines from (customer, date, products) orders, one order per tuple."""
    rows = []
    for n, (customer, day, products) in enumerate(orders):
        for product in products:
            rows.append({"customer_id": customer, "order_id": f"{prefix}{n}", "processed_at": pd.Timestamp(day),
                         "product_id": product, "quantity": 1.0, "amount": 10.0})
    return pd.DataFrame(rows)


def popular_milk_shop() -> pd.DataFrame:
    """Milk is in almost every order; chips and salsa are rarer but always bought together."""
    orders = []
    for i in range(60):
        day = (AS_OF - pd.Timedelta(days=5 + i)).date().isoformat()
        basket = ["milk", f"filler{i % 7}"]
        if i % 4 == 0:
            basket += ["chips", "salsa"]
        orders.append((f"c{i % 15}", day, basket))
    return shop(orders)


def test_cross_sell_does_not_just_echo_popularity() -> None:
    model = fit(popular_milk_shop(), AS_OF)
    related = related_products(model)
    chips = related[related["product_id"] == "chips"].sort_values("rank")
    assert chips["related_product_id"].iloc[0] == "salsa"
    salsa_score = chips.loc[chips["related_product_id"] == "salsa", "score"].iloc[0]
    milk = chips.loc[chips["related_product_id"] == "milk", "score"]
    assert milk.empty or milk.iloc[0] < salsa_score


def test_pairs_below_min_support_get_no_association() -> None:
    lines = popular_milk_shop()
    strict = RecommendSettings(cross_sell=dataclasses.replace(RecommendSettings().cross_sell, min_support=100))
    assert related_products(fit(lines, AS_OF, settings=strict)).empty
    assert not related_products(fit(lines, AS_OF)).empty


def test_blocked_sparse_association_equals_a_direct_dense_count(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    n_orders, n_products = 400, 30
    dense = (rng.random((n_orders, n_products)) < rng.random(n_products) * 0.4).astype(float)
    orders, products = np.nonzero(dense)
    x = cooccurrence.incidence(orders, products, n_orders, n_products)
    settings = dataclasses.replace(RecommendSettings().cross_sell, neighbors=n_products, max_basket_size=n_products)
    monkeypatch.setattr(cooccurrence, "_BLOCK_PAIRS", 500)  # forces many blocks
    got = cooccurrence.bought_together(x, settings).toarray()
    keep = dense[dense.sum(axis=1) >= 2]
    co = keep.T @ keep
    n = np.diag(co).copy()
    expected = co / np.sqrt(np.outer(n, n)) * co / (co + settings.shrinkage)
    expected[co < settings.min_support] = 0.0
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_top_n_per_row_keeps_the_largest_entries() -> None:
    rng = np.random.default_rng(3)
    dense = rng.random((20, 40)) * (rng.random((20, 40)) < 0.5)
    kept = cooccurrence.top_n_per_row(cooccurrence.sp.csr_matrix(dense), 3).toarray()
    for row, got in zip(dense, kept):
        assert set(np.flatnonzero(got)) == set(np.argsort(-row)[:3][row[np.argsort(-row)[:3]] > 0])


def test_unavailable_products_are_never_recommended() -> None:
    lines = popular_milk_shop()
    everyone = recommend(fit(lines, AS_OF))
    banned = everyone["product_id"].value_counts().index[:2].tolist()
    catalog = pd.DataFrame({"product_id": banned, "available": [False, "false"]})
    recs = recommend(fit(lines, AS_OF, catalog))
    assert not recs["product_id"].isin(banned).any()
    assert len(recs) > 0


def test_customers_who_own_every_available_product_get_nothing_and_others_still_do() -> None:
    lines = shop([("a", "2026-11-01", ["p1", "p2"]), ("b", "2026-11-02", ["p1"])])
    catalog = pd.DataFrame({"product_id": ["p1", "p2"], "available": [True, True]})
    recs = recommend(fit(lines, AS_OF, catalog, ONE_OFFS))
    assert set(recs["customer_id"]) == {"b"}  # a bought both once: no candidate is left for them
    assert recs.loc[recs["customer_id"] == "b", "product_id"].tolist() == ["p2"]
    alone = recommend(fit(shop([("a", "2026-11-01", ["p1"])]), AS_OF, catalog.iloc[:1], ONE_OFFS))
    assert alone.empty


def test_one_off_purchases_are_excluded_but_regular_rebuys_come_back() -> None:
    orders = [("alice", f"2026-{m:02d}-01", ["coffee"]) for m in range(1, 11)]
    orders += [("alice", "2026-05-02", ["kettle"])]
    orders += [("bob", "2026-10-01", ["kettle", "tea"]), ("bob", "2026-11-01", ["coffee", "tea"])]
    recs = recommend(fit(shop(orders), AS_OF, settings=ONE_OFFS), ["alice"])
    assert "coffee" in set(recs["product_id"])
    assert "kettle" not in set(recs["product_id"])
    # By default the blended list is TIFU-KNN's: the kettle keeps its place, below the coffee.
    default = recommend(fit(shop(orders), AS_OF), ["alice"]).set_index("product_id")["rank"]
    assert default["coffee"] < default["kettle"]
    coffee = recs[recs["product_id"] == "coffee"].iloc[0]
    assert coffee["reason"] == "due_to_reorder"


def test_timing_reorders_repeat_products_without_removing_any() -> None:
    orders = []
    for m in range(1, 11):
        orders.append(("ann", f"2026-{m:02d}-10", ["soap", "rice"]))
    orders.append(("ann", "2026-11-22", ["rice"]))  # rice was just bought, soap is overdue
    model = fit(shop(orders), AS_OF)
    buy_again = lists(model, ["ann"]).query("list == 'buy_again'")
    assert buy_again["product_id"].tolist() == ["soap", "rice"]  # most due first, nothing filtered out
    soap, rice = buy_again.set_index("product_id").loc[["soap", "rice"]].itertuples()
    assert soap.reason == "due_to_reorder" and soap.expected_date == "2026-11-09"  # every 30 days, last on Oct 10
    assert rice.reason == "buy_again" and rice.expected_date > "2026-11-22"
    # In the blended list a strong timing weight lets the overdue product pass the one just bought; both stay.
    strict = fit(shop(orders), AS_OF, settings=dataclasses.replace(RecommendSettings(), due_floor=0.3))
    score = recommend(strict, ["ann"]).set_index("product_id")["score"]
    assert score["soap"] > score["rice"] > 0


def test_customers_without_history_get_trending_products() -> None:
    orders = [(f"old{i}", "2026-07-01", ["classic"]) for i in range(30)]
    orders += [(f"new{i}", "2026-11-15", ["viral"]) for i in range(10)]
    orders += [(f"new{i}", "2026-11-10", ["classic"]) for i in range(3)]
    recs = recommend(fit(shop(orders), AS_OF), ["stranger"])
    assert list(recs["reason"].unique()) == ["trending"]
    assert recs.sort_values("rank")["product_id"].iloc[0] == "viral"


def test_upgrade_is_a_pricier_same_type_product_that_buyers_moved_to() -> None:
    catalog = pd.DataFrame({
        "product_id": ["basic", "pro", "luxury", "cheap", "other_pro"],
        "product_type": ["grinder", "grinder", "grinder", "grinder", "kettle"],
        "price": [20.0, 35.0, 90.0, 10.0, 35.0],
        "available": [True] * 5,
    })
    orders = []
    for i in range(8):
        orders += [(f"c{i}", "2026-03-01", ["basic"]), (f"c{i}", "2026-06-01", ["pro", "other_pro"])]
    orders += [(f"l{i}", "2026-06-01", ["luxury", "cheap"]) for i in range(20)]
    orders += [("newbie", "2026-11-01", ["basic"])]
    model = fit(shop(orders), AS_OF, catalog)
    basic = upgrade_products(model).query("product_id == 'basic'")
    assert basic.sort_values("rank")["related_product_id"].iloc[0] == "pro"
    assert not basic["related_product_id"].isin(["luxury", "cheap", "other_pro"]).any()
    up = lists(model, ["newbie"]).query("list == 'up_sell'")
    pro = up[up["product_id"] == "pro"].iloc[0]
    assert (pro["rank"], pro["reason"], pro["because_of"]) == (1, "upgrade", "basic")
    assert not up["product_id"].isin(["luxury", "cheap", "other_pro", "basic"]).any()


def test_every_recommendation_carries_a_reason_and_its_source() -> None:
    settings = RecommendSettings(blend=dataclasses.replace(RecommendSettings().blend, bought_together=0.5,
                                                           upgrade=0.5))
    recs = recommend(fit(popular_milk_shop(), AS_OF, settings=settings), k=10)
    assert "bought_together" in set(recs["reason"])
    assert set(recs["reason"]) <= set(REASONS)
    sourced = recs[recs["reason"].isin(["bought_together", "upgrade"])]
    assert sourced["because_of"].notna().all()
    assert recs.groupby("customer_id").size().max() <= 10
    assert (recs.groupby("customer_id")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()


def test_bought_together_names_the_customers_own_product_that_explains_it() -> None:
    lines = popular_milk_shop()
    lines = pd.concat([lines, shop([("solo", "2026-11-20", ["chips"])], prefix="solo")], ignore_index=True)
    settings = RecommendSettings(blend=dataclasses.replace(RecommendSettings().blend, cross_sell_together=0.5))
    cross = lists(fit(lines, AS_OF, settings=settings), ["solo"]).query("list == 'cross_sell'")
    salsa = cross[cross["product_id"] == "salsa"].iloc[0]
    assert (salsa["reason"], salsa["because_of"]) == ("bought_together", "chips")
    assert "chips" not in set(cross["product_id"])  # cross-sell is what the customer has not bought


def test_lines_after_as_of_and_variant_ids_do_not_change_anything() -> None:
    lines = popular_milk_shop()
    future = shop([("c1", "2027-01-01", ["salsa", "zzz"])]).assign(order_id="future")
    noisy = pd.concat([lines, future], ignore_index=True)
    noisy["variant_id"] = "v" + noisy.index.astype(str)
    a = recommend(fit(lines, AS_OF))
    b = recommend(fit(noisy, AS_OF))
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@pytest.mark.parametrize("module", ["jobs/recommend/model.py", "jobs/recommend/cooccurrence.py", "jobs/recommend/upsell.py",
                                    "jobs/recommend/scoring.py", "jobs/recommend/tifu.py", "jobs/recommend/baselines.py",
                                    "jobs/recommend/evaluation.py", "connector/recommend_settings.py"])
def test_pure_modules_import_no_io_library_and_never_read_the_clock(module: str) -> None:
    tree = ast.parse((REPO / module).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"tortoise", "httpx", "redis", "arq", "starlette", "sqlite3", "socket", "urllib",
                           "os", "pathlib", "io", "time", "datetime", "requests"}
    calls = {node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
             for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert not calls & {"open", "now", "today", "utcnow", "read_csv", "read_parquet", "to_csv"}


def grocery_shop() -> pd.DataFrame:
    """Twelve customers re-buying their staples; two variants of one product; one refund."""
    orders = []
    for c in range(12):
        for m in range(1, 9):
            orders.append((f"c{c}", f"2026-{m:02d}-{1 + c}", ["milk", f"staple{c % 3}", f"extra{(c + m) % 5}"]))
    lines = shop(orders)
    lines["variant_id"] = np.where(lines.index % 2 == 0, "v-small", "v-large")  # two variants of every product
    refund = shop([("c0", "2026-08-20", ["staple0"])], prefix="r").assign(quantity=-1.0, amount=-10.0)
    return pd.concat([lines, refund], ignore_index=True)


def test_pins_lead_exclusions_refunds_and_stockouts_never_appear_and_a_product_shows_once_per_list() -> None:
    catalog = pd.DataFrame({"product_id": ["milk", "extra4", "promo", "gone"], "available": [True, False, True, False]})
    settings = dataclasses.replace(RecommendSettings(), pinned_products=("gone", "promo"),
                                   excluded_products=("milk",))
    model = fit(grocery_shop(), AS_OF, catalog, settings)
    blended = recommend(model).assign(list="blended")
    every = pd.concat([blended, lists(model)], ignore_index=True)
    assert not every["product_id"].isin(["milk", "extra4", "gone"]).any()  # excluded, out of stock, unpinnable
    assert not ((every["customer_id"] == "c0") & (every["product_id"] == "staple0")).any()  # c0 refunded it
    assert not every.duplicated(["customer_id", "list", "product_id"]).any()  # one entry per product (variants fold)
    for name in ("blended", "cross_sell"):
        firsts = every[(every["list"] == name) & (every["rank"] == 1)]
        assert (firsts["product_id"] == "promo").all() and (firsts["reason"] == "pinned").all()
        assert len(firsts) == 12
    assert set(every.loc[every["list"] == "buy_again", "reason"]) <= {"due_to_reorder", "buy_again"}
    assert every["reason"].notna().all()


def test_customers_with_one_or_two_orders_still_get_full_lists() -> None:
    lines = pd.concat([grocery_shop(), shop([("new", "2026-11-01", ["staple1"]),
                                             ("new", "2026-11-15", ["staple1", "milk"])], prefix="n")])
    recs = recommend(fit(lines, AS_OF), ["new"], k=5)
    assert len(recs) == 5 and set(recs["product_id"].iloc[:2]) == {"staple1", "milk"}  # their own lead
    assert {"similar_customers", "trending"} & set(recs["reason"])  # neighbours and popularity fill the rest
