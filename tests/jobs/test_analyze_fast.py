"""The fast paths of `retention analyze` give exactly what the straightforward pandas/numpy code gave."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from connector.analytics_settings import AnalyticsSettings
from jobs.analytics.analyze import analyze
from jobs.analytics.clv import compress
from jobs.analytics.features import customer_codes, customer_features, stable_order
from jobs.analytics.fit import top_boundary
from jobs.analytics.kpis import cohort_matrix, distinct, period_retention
from jobs.analytics.rfm import strictly_below
from jobs.analytics.segments import holiday_buyers, members, top_percent
from jobs.commands.analyze_output import customer_table, format_g6, write_customers
from jobs.transactions.read import read_transactions


def random_orders(seed: int, n: int = 3000, customers: int = 700) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    who = rng.integers(0, customers, n)
    # Few distinct days and prices: ties everywhere (same-day orders, equal spends, equal timestamps).
    when = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D") \
        + pd.to_timedelta(rng.choice([0, 3600, 7200], n), unit="s")
    return pd.DataFrame({
        "customer_id": pd.Series([f"c{w:04d}" if w % 7 else f"Z{w}" for w in who], dtype="str"),
        "order_id": pd.Series([f"o{i}" for i in range(n)], dtype="str"),
        "processed_at": when.to_numpy(dtype="datetime64[ns]"),
        "amount": rng.choice([0.0, 9.99, 10.0, 25.5, 100.0, 1234.56], n),
        "gross": rng.choice([0.0, 9.99, 10.0], n),
        "discounted": rng.random(n) < 0.3,
        "items": rng.integers(1, 4, n),
        "valid": rng.random(n) < 0.95,
    })


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_customer_codes_equal_a_sorted_factorize(seed: int) -> None:
    ids = random_orders(seed)["customer_id"]
    codes, index = customer_codes(ids)
    expected_codes, uniques = pd.factorize(ids.astype(str), sort=True)
    assert (codes == expected_codes).all()
    pd.testing.assert_index_equal(index, pd.Index(np.asarray(uniques, dtype=object), name="customer_id"))
    # Object ids (the recompute's frames) take pandas' own path and agree too.
    codes_obj, index_obj = customer_codes(ids.astype(object))
    assert (codes_obj == codes).all() and list(index_obj) == list(index)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stable_order_equals_lexsort_with_ties_nans_and_signed_zeros(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.choice([0.0, -0.0, 1.0, np.nan, np.inf, -np.inf, 2.5], 5000)
    b = rng.choice([0.0, -0.0, 3.0, np.nan], 5000)
    c = rng.integers(0, 3, 5000).astype(float)
    assert (stable_order(a, b, c) == np.lexsort((c, b, a))).all()
    ints = rng.integers(0, 50, 5000)
    ts = rng.integers(0, 20, 5000) * 10**9
    assert (stable_order(ints, ts) == np.lexsort((ts, ints))).all()
    # Whole numbers and whole sevenths (days in weeks), -0.0 among them: the packed-integer path.
    x = rng.choice([0.0, -0.0, 1.0, 2.0, 5.0], 5000)
    weeks = rng.integers(-3, 700, 5000) / 7.0
    assert (stable_order(x, weeks, ints) == np.lexsort((ints, weeks, x))).all()
    assert (stable_order(weeks) == np.argsort(weeks, kind="stable")).all()


def test_compress_groups_like_before() -> None:
    rng = np.random.default_rng(4)
    x = rng.integers(0, 4, 4000).astype(float)
    t = rng.integers(0, 10, 4000) / 7.0
    (ux, ut), counts, inverse = compress(x, t)
    order = np.lexsort((t, x))
    pairs = sorted(set(zip(x.tolist(), t.tolist())))
    assert list(zip(ux.tolist(), ut.tolist())) == pairs
    assert counts.sum() == 4000 and (ux[inverse] == x).all() and (ut[inverse] == t).all()
    assert (np.diff(inverse[order]) >= 0).all()


@pytest.mark.parametrize("seed", [5, 6])
def test_strictly_below_equals_searchsorted(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.choice([1.0, 2.0, 2.0, -0.0, 0.0, np.nan, 7.5], 3000)
    expected = np.searchsorted(np.sort(values, kind="stable"), values, side="left")
    assert (strictly_below(values) == expected).all()
    ints = rng.integers(0, 9, 3000)
    assert (strictly_below(ints) == np.searchsorted(np.sort(ints), ints, side="left")).all()
    days = rng.choice([0.0, -0.0, 3.0, 12.0, -40.0], 3000)  # whole floats: the counting path
    assert (strictly_below(days) == np.searchsorted(np.sort(days), days, side="left")).all()
    wide = rng.choice([0.0, 1e12], 100)  # whole but spread out: the sorting path
    assert (strictly_below(wide) == np.searchsorted(np.sort(wide), wide, side="left")).all()


def test_distinct_equals_unique() -> None:
    values = np.random.default_rng(7).integers(-5, 50, 2000)
    assert (distinct(values) == np.unique(values)).all()
    kept, counts = distinct(values, counts=True)
    expected, expected_counts = np.unique(values, return_counts=True)
    assert (kept == expected).all() and (counts == expected_counts).all()
    assert len(distinct(np.zeros(0, dtype=np.int64))) == 0


def reference_top_percent(values: pd.Series, percent: float) -> pd.Series:
    n = len(values)
    k = math.ceil(n * percent / 100.0) if n else 0
    numbers = values.to_numpy(dtype=float)
    numbers = np.where(np.isfinite(numbers), numbers, -np.inf)
    order = np.lexsort((values.index.to_numpy().astype(str), -numbers))
    chosen = np.zeros(n, dtype=bool)
    chosen[order[:k]] = True
    return pd.Series(chosen & (numbers > 0), index=values.index)


@pytest.mark.parametrize("percent", [0.5, 10, 33.3, 100])
def test_top_percent_and_its_boundary_equal_a_full_lexsort(percent: float) -> None:
    rng = np.random.default_rng(8)
    ids = [f"id{i}" for i in rng.permutation(2000)]
    values = pd.Series(rng.choice([0.0, 5.0, 5.0, 12.0, np.nan, np.inf, 30.0, -1.0], 2000), index=ids)
    expected = reference_top_percent(values, percent)
    pd.testing.assert_series_equal(top_percent(values, percent), expected)
    k = math.ceil(len(values) * percent / 100.0)
    numbers = np.where(np.isfinite(values.to_numpy()), values.to_numpy(), -np.inf)
    last = np.lexsort((values.index.to_numpy().astype(str), -numbers))[k - 1]
    assert top_boundary(values, percent) == [float(numbers[last]), ids[last]]


def reference_retention(orders: pd.DataFrame, as_of: pd.Timestamp, days: int) -> tuple[int, int]:
    valid = orders.loc[orders["valid"] & (orders["processed_at"] < as_of + pd.Timedelta(days=1))]
    end = as_of + pd.Timedelta(days=1)
    start = end - pd.Timedelta(days=days)
    when = valid["processed_at"]
    previous = set(valid.loc[(when >= start - pd.Timedelta(days=days)) & (when < start), "customer_id"])
    current = set(valid.loc[(when >= start) & (when < end), "customer_id"])
    return len(previous), len(previous & current)


def reference_cohorts(orders: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The pandas drop_duplicates / groupby / unstack version cohort_matrix replaced."""
    valid = orders.loc[orders["valid"] & (orders["processed_at"] < as_of + pd.Timedelta(days=1))]
    months = valid["processed_at"].dt.year.to_numpy() * 12 + valid["processed_at"].dt.month.to_numpy() - 1
    codes, _ = pd.factorize(valid["customer_id"].astype(str))
    first = np.full(codes.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(first, codes, months)
    cohort = first[codes]
    active = pd.DataFrame({"cohort": cohort, "age": months - cohort, "customer": codes}).drop_duplicates()
    counts = active.groupby(["cohort", "age"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=range(int(counts.columns.max()) + 1), fill_value=0)
    sizes = np.bincount(first - first.min())[counts.index.to_numpy() - first.min()]
    shares = counts.div(sizes, axis=0)
    last_month = as_of.year * 12 + as_of.month - 1
    ages = shares.columns.to_numpy()[None, :]
    shares = shares.where(shares.index.to_numpy()[:, None] + ages <= last_month)
    shares.index = [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in shares.index]
    shares.index.name = "cohort"
    shares.columns.name = "months_since_first_order"
    return shares


@pytest.mark.parametrize("seed", [9, 10])
def test_retention_and_cohorts_on_integer_codes_equal_the_pandas_versions(seed: int) -> None:
    orders = random_orders(seed)
    as_of = pd.Timestamp("2025-03-31")
    got = period_retention(orders, as_of, 90)
    assert (got["previous_period_customers"], got["retained_customers"]) == reference_retention(orders, as_of, 90)
    pd.testing.assert_frame_equal(cohort_matrix(orders, as_of), reference_cohorts(orders, as_of), check_exact=True)


def test_cohorts_over_decades_take_the_group_by_path_and_still_agree() -> None:
    orders = random_orders(15, n=1500, customers=300)
    rng = np.random.default_rng(15)
    orders["processed_at"] = (pd.Timestamp("1990-01-01") + pd.to_timedelta(rng.integers(0, 12000, 1500), unit="D")
                              ).to_numpy(dtype="datetime64[ns]")
    as_of = pd.Timestamp("2025-01-31")
    pd.testing.assert_frame_equal(cohort_matrix(orders, as_of), reference_cohorts(orders, as_of), check_exact=True)


def test_holiday_membership_by_arrow_lookup_equals_isin() -> None:
    orders = random_orders(11)
    as_of = pd.Timestamp("2025-06-30")
    index = customer_features(orders, as_of).index
    ids = holiday_buyers(orders, as_of)
    assert ids
    expected = index.isin(list(ids))
    from jobs.analytics.segments import holiday_ids
    assert (members(index, holiday_ids(orders, as_of)) == expected).all()
    assert (members(pd.Index(index.to_numpy(dtype=object)), ids) == expected).all()


G6_EDGES = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-4, 9.99995e-5, 0.000123456789, 999999.0, 999999.5, 999999.4999,
            1e6, 123456.5, 123457.5, 0.1234565, 2.5e-5, 1e15, -3.14159265, 5.09, 31.38605, 1.5e-10, 7e5 + 0.25,
            float("nan"), float("inf"), float("-inf"), 12345.65, 1.000005, 9.999995, 99999.95]


def test_format_g6_is_python_percent_g6_on_every_value() -> None:
    rng = np.random.default_rng(12)
    values = np.concatenate([
        np.array(G6_EDGES),
        rng.random(20000) * 10.0 ** rng.integers(-7, 9, 20000) * rng.choice([-1, 1], 20000),
        np.round(rng.random(20000) * 1000, 2),  # money
        np.round(rng.random(5000), 7),  # 7th decimal digits: ties near the 6-digit cut
        np.arange(0, 2e6, 97.5),
    ])
    expected = ["" if np.isnan(v) else "%.6g" % v for v in values.tolist()]
    assert format_g6(values).to_pylist() == expected


def cdnow_like(tmp_path: Path, ids: list[str]) -> Path:
    rng = np.random.default_rng(13)
    n = 4000
    path = tmp_path / "orders.csv"
    pd.DataFrame({
        "customer_id": rng.choice(ids, n), "order_id": np.arange(1000, 1000 + n),
        "processed_at": (pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 600, n), unit="D"))
        .strftime("%Y-%m-%d"),
        "amount": np.round(rng.gamma(2.0, 20.0, n), 2), "discount": rng.choice([0, 0, 1.5], n),
    }).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("ids", [[f"c{i}" for i in range(900)], [f"c{i}" for i in range(899)] + ['Smith, "J"']])
def test_customers_csv_is_byte_for_byte_what_pandas_wrote(tmp_path: Path, ids: list[str]) -> None:
    read = read_transactions(str(cdnow_like(tmp_path, ids)))
    result = analyze(read.orders, AnalyticsSettings(), pd.Timestamp("2025-08-31"))
    ours = tmp_path / "ours.csv"
    write_customers(result, str(ours))
    reference = tmp_path / "pandas.csv"
    customer_table(result).to_csv(reference, index=False, float_format="%.6g")
    assert ours.read_bytes() == reference.read_bytes()
    segments = result.segments.reindex(result.customers.index, fill_value=False)
    names = segments.columns.to_numpy(dtype=object)
    joined = [" ".join(names[row]) for row in segments.to_numpy(dtype=bool)]
    assert customer_table(result).set_index("customer_id")["segments"].tolist() == \
        pd.Series(joined, index=result.customers.index).sort_index(kind="stable").tolist()


def test_one_line_per_order_fast_path_equals_the_grouped_path(tmp_path: Path) -> None:
    """Numeric distinct order ids skip the group-by; text ids take it; the orders are the same."""
    rng = np.random.default_rng(14)
    n = 3000
    frame = pd.DataFrame({
        "customer_id": [f"c{i}" for i in rng.integers(0, 500, n)], "order_id": rng.permutation(n) + 10,
        "processed_at": (pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**7, n), unit="s"))
        .strftime("%Y-%m-%dT%H:%M:%S"),
        "amount": np.round(rng.normal(30, 20, n), 2), "quantity": rng.integers(1, 5, n),
        "discount": rng.choice([0, 2.5], n),
    })
    frame.loc[5, "amount"] = -0.0
    numeric, text = tmp_path / "numeric.csv", tmp_path / "text.csv"
    frame.to_csv(numeric, index=False)
    frame.assign(order_id="x" + frame["order_id"].astype(str)).to_csv(text, index=False)
    fast, grouped = read_transactions(str(numeric)), read_transactions(str(text))
    expected = grouped.orders.assign(order_id=grouped.orders["order_id"].str.slice(1))
    pd.testing.assert_frame_equal(fast.orders, expected, check_exact=True)
    assert fast.notes == [note.replace(str(text), str(numeric)) for note in grouped.notes]
