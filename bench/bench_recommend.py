"""Recommender benchmark: time and peak memory on completejourney and a generated 10M-line store, plus metrics.

Every measured step runs in its own subprocess so that ru_maxrss is the peak of that step alone.
completejourney is read with the documented mapping customer_id=household_id, order_id=basket_id,
processed_at=transaction_timestamp, amount=sales_value (product_type from products.csv.gz).
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# The full data set is not in the repository (14 MB): point BENCH_DATASETS at a folder holding completejourney/
# (`make bench BENCH_DATASETS=/path/to/datasets`). Without it, only the generated store is measured.
CJ = Path(os.environ.get("BENCH_DATASETS") or "/nonexistent") / "completejourney"
COLUMNS = "customer_id=household_id,order_id=basket_id,processed_at=transaction_timestamp,amount=sales_value"
TARGET_SECONDS = 30.0
SYNTH_LINES = int(os.environ.get("BENCH_RECOMMEND_LINES", "10000000"))  # quick mode: fewer


def emit(name: str, value: float, unit: str, **extra: object) -> None:
    """One JSON line of output."""
    print(json.dumps({"name": name, "value": round(float(value), 4), "unit": unit, **extra}), flush=True)


def peak_mb() -> float:
    """Peak resident memory of this process in MB (ru_maxrss is in KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_completejourney() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Lines and catalog of completejourney through the same CSV reader as the CLI."""
    from jobs.commands.recommend import read_catalog, read_lines

    lines = read_lines(str(CJ / "transactions.csv.gz"), COLUMNS)
    return lines, read_catalog(str(CJ / "products.csv.gz"))


def synthetic_store(n_lines: int = SYNTH_LINES, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A large store: Zipf products, personal staples re-bought often, complementary pairs, 1 year of orders."""
    rng = np.random.default_rng(seed)
    n_customers, n_products, n_types = 250_000, 60_000, 3_000
    popularity = 1.0 / np.arange(1, n_products + 1) ** 0.9
    popularity /= popularity.sum()
    activity = rng.gamma(0.8, 1.0, n_customers)
    sizes = 1 + rng.poisson(8.0, int(n_lines / 9 * 1.02))
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n_lines) + 1]
    n_orders = len(sizes)
    order_customer = rng.choice(n_customers, n_orders, p=activity / activity.sum())
    order_time = np.datetime64("2026-01-01") + (rng.random(n_orders) * 365 * 86400).astype("timedelta64[s]")
    line_order = np.repeat(np.arange(n_orders), sizes)[:n_lines]
    staples = rng.choice(n_products, (n_customers, 15), p=popularity)
    customer = order_customer[line_order]
    kind = rng.random(n_lines)
    product = rng.choice(n_products, n_lines, p=popularity)  # browsing: global popularity
    own = kind < 0.55
    product[own] = staples[customer[own], rng.integers(0, 15, own.sum())]
    # Complements: the product next to a staple in id order is often in the same basket.
    pair = (kind >= 0.55) & (kind < 0.65)
    product[pair] = (staples[customer[pair], rng.integers(0, 3, pair.sum())] + 1) % n_products
    price = np.round(rng.lognormal(1.5, 0.7, n_products), 2)
    lines = pd.DataFrame({
        "customer_id": pd.Categorical.from_codes(customer, [f"c{i}" for i in range(n_customers)]),
        "order_id": pd.Categorical.from_codes(line_order, [f"o{i}" for i in range(n_orders)]),
        "processed_at": order_time[line_order].astype("datetime64[ns]"),
        "product_id": pd.Categorical.from_codes(product, [f"p{i}" for i in range(n_products)]),
        "quantity": 1.0,
        "amount": price[product],
    })
    catalog = pd.DataFrame({
        "product_id": [f"p{i}" for i in range(n_products)],
        "product_type": rng.integers(0, n_types, n_products).astype(str),
        "price": price,
        "available": rng.random(n_products) > 0.03,
    })
    return lines, catalog


def step(name: str) -> dict[str, float]:
    """Run one measured step in this process and return its timings and peak memory."""
    from jobs.recommend.model import fit, recommend

    out: dict[str, float] = {}
    start = time.perf_counter()
    lines, catalog = load_completejourney() if name == "completejourney" else synthetic_store()
    out["load_s"] = time.perf_counter() - start
    out["lines"] = float(len(lines))
    as_of = pd.Timestamp(lines["processed_at"].max())
    t = time.perf_counter()
    model = fit(lines, as_of, catalog)
    out["fit_s"] = time.perf_counter() - t
    t = time.perf_counter()
    recs = recommend(model)
    out["score_s"] = time.perf_counter() - t
    out["customers"] = float(recs["customer_id"].nunique())
    out["total_s"] = time.perf_counter() - start
    out["peak_mb"] = peak_mb()
    return out


def evaluation() -> dict[str, object]:
    """Leave-last-order-out metrics of ours and the baselines on completejourney."""
    from jobs.recommend.evaluation import evaluate, leave_last_order_out

    lines, catalog = load_completejourney()
    split = leave_last_order_out(lines, 3)
    start = time.perf_counter()
    results = evaluate(split, catalog)
    return {"models": results, "seconds": time.perf_counter() - start, "peak_mb": peak_mb()}


def child(name: str) -> dict[str, object]:
    """Run a step in a fresh interpreter and parse its JSON result."""
    done = subprocess.run([sys.executable, __file__, "--step", name], capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"step {name} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    """Measure every step and print JSON lines."""
    if len(sys.argv) == 3 and sys.argv[1] == "--step":
        result = evaluation() if sys.argv[2] == "evaluation" else step(sys.argv[2])
        print(json.dumps(result))
        return 0
    if not (CJ / "transactions.csv.gz").exists():
        emit("recommend.completejourney.missing", 0, "files", path=str(CJ), note="set BENCH_DATASETS; skipped")
        big = child("synthetic10m")
        emit("recommend.synthetic10m.fit_and_score", big["fit_s"] + big["score_s"], "s")
        emit("recommend.synthetic10m.peak_rss", big["peak_mb"], "MB")
        return 0
    cj = child("completejourney")
    emit("recommend.completejourney.lines", cj["lines"], "lines")
    emit("recommend.completejourney.load", cj["load_s"], "s")
    emit("recommend.completejourney.fit", cj["fit_s"], "s")
    emit("recommend.completejourney.score_all_customers", cj["score_s"], "s", customers=int(cj["customers"]))
    emit("recommend.completejourney.end_to_end", cj["total_s"], "s", baseline="target bound 30 s on 2 cores",
         baseline_value=TARGET_SECONDS, ratio=round(cj["total_s"] / TARGET_SECONDS, 4))
    emit("recommend.completejourney.peak_rss", cj["peak_mb"], "MB")

    ev = child("evaluation")
    models = ev["models"]
    strongest = max(("P-TopFreq", "GP-TopFreq", "G-TopFreq"), key=lambda m: models[m]["recall"])
    for model, values in models.items():
        for metric in ("hit_rate", "recall", "ndcg", "coverage"):
            extra: dict[str, object] = {"model": model, "protocol": "leave-last-order-out, >= 3 orders, k=10"}
            if model == "ours" and metric in ("recall", "ndcg", "hit_rate"):
                extra.update(baseline=strongest, baseline_value=round(models[strongest][metric], 4),
                             ratio=round(values[metric] / models[strongest][metric], 4))
            if model == "ours" and metric == "coverage":
                extra.update(baseline="G-TopFreq", baseline_value=round(models["G-TopFreq"]["coverage"], 6),
                             ratio=round(values["coverage"] / models["G-TopFreq"]["coverage"], 2))
            emit(f"recommend.completejourney.eval.{model}.{metric}@10", values[metric], "fraction", **extra)
    emit("recommend.completejourney.eval.seconds", ev["seconds"], "s")

    big = child("synthetic10m")
    emit("recommend.synthetic10m.lines", big["lines"], "lines")
    emit("recommend.synthetic10m.generate", big["load_s"], "s")
    emit("recommend.synthetic10m.fit", big["fit_s"], "s")
    emit("recommend.synthetic10m.score_all_customers", big["score_s"], "s", customers=int(big["customers"]))
    emit("recommend.synthetic10m.fit_and_score", big["fit_s"] + big["score_s"], "s",
         baseline="completejourney fit+score", baseline_value=round(cj["fit_s"] + cj["score_s"], 4),
         ratio=round((big["fit_s"] + big["score_s"]) / (cj["fit_s"] + cj["score_s"]), 2))
    emit("recommend.synthetic10m.peak_rss", big["peak_mb"], "MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
