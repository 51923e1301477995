"""Recommender benchmark: `retention recommend` on completejourney (wall and CPU time), a generated 10M-line
store, and next-basket metrics of ours and every baseline on completejourney and instacart_sample.

Every measured step runs in its own subprocess so that ru_maxrss is the peak of that step alone.
completejourney is read with the documented mapping customer_id=household_id, order_id=basket_id,
processed_at=transaction_timestamp, amount=sales_value (product_type from products.csv.gz). Hyper-parameters
were chosen on completejourney's validation split (second-to-last orders, the evaluated last orders removed;
`python bench/bench_recommend.py --step validation:completejourney` prints it), never on instacart_sample. The tie
rule (equal scores: more orders in the shop first, then the lower product id as text; ours and TIFU-KNN alike) was
chosen there too, over "latest own purchase, then popularity, then id": the same list for all 2,406 validation
customers, so the simpler rule; instacart_sample was then run once with it.
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

# The data sets are not in the repository: point BENCH_DATASETS at a folder holding completejourney/ and
# instacart_sample/ (`make bench BENCH_DATASETS=/path/to/datasets`). Without it, only the generated store is measured.
from bench.rec_datasets import CJ, CJ_COLUMNS as COLUMNS, INSTACART, completejourney, instacart  # noqa: E402
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
    return completejourney()


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
    from jobs.recommend.model import fit
    from jobs.recommend.scoring import recommend

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


def evaluation(name: str, validation: bool = False) -> dict[str, object]:
    """Leave-last-order-out metrics (customers with >= 2 orders) of ours and every baseline on one data set; with
    `validation`, on the tuning split instead (second-to-last orders, the evaluated last orders removed)."""
    from jobs.recommend.evaluation import evaluate, leave_last_order_out, validation_split

    lines, catalog = completejourney() if name == "completejourney" else instacart()
    split = validation_split(lines, 2) if validation else leave_last_order_out(lines, 2)
    start = time.perf_counter()
    results = evaluate(split, catalog)
    return {"models": results, "seconds": time.perf_counter() - start, "peak_mb": peak_mb(),
            "protocol": split.protocol}


# Explore slots in the blended list (issue 15), as "ours, then cross_sell picks": t=T keeps the customer's own
# candidates scored >= T first (t=0: all with a positive score), then cross_sell, then the rest of ours;
# m=M gives the last M slots to cross_sell for everyone; cross_sell alone; current.
EXPLORE_RULES = ("current", "cross_sell", "t=0", "t=0.005", "t=0.01", "t=0.02", "t=0.05", "t=0.1", "m=1", "m=3",
                 "m=5", "m=7")


def explore_rules(name: str, validation: bool) -> dict[str, object]:
    """Recall@10 and explore Recall@10 of every EXPLORE_RULES list, with P-TopFreq+G and G-TopFreq, on one split."""
    import dataclasses

    from connector.recommend_settings import RecommendSettings
    from jobs.recommend import evaluation as ev
    from jobs.recommend.model import fit
    from jobs.recommend.scoring import recommend_and_lists

    lines, catalog = completejourney() if name == "completejourney" else instacart()
    split = ev.validation_split(lines, 2) if validation else ev.leave_last_order_out(lines, 2)
    who = list(split.truth["customer_id"].unique())
    span = (split.as_of - pd.Timestamp(split.train["processed_at"].min())).days + 1
    settings = RecommendSettings()
    model = fit(split.train, split.as_of, catalog, dataclasses.replace(settings, lookback_days=max(
        settings.lookback_days, span)))
    recs, lists = recommend_and_lists(model, k=10, n=10)
    recs = recs[recs["customer_id"].isin(who)]
    cross = lists[(lists["list"] == "cross_sell") & lists["customer_id"].isin(who)]
    own = recs["reason"].isin(["buy_again", "due_to_reorder"]).to_numpy()

    def merged(*parts: pd.DataFrame) -> pd.DataFrame:
        both = pd.concat([p.assign(src=i) for i, p in enumerate(parts)], ignore_index=True)
        both = both.sort_values(["customer_id", "src", "rank"], kind="stable").drop_duplicates(
            ["customer_id", "product_id"])
        both["rank"] = both.groupby("customer_id").cumcount() + 1
        return both[both["rank"] <= 10]

    def variant(rule: str) -> pd.DataFrame:
        kind, _, value = rule.partition("=")
        if kind == "t":
            return merged(recs[own & (recs["score"].to_numpy() >= float(value))], cross, recs)
        if kind == "m":
            return merged(recs[recs["rank"] <= 10 - int(value)], cross, recs)
        return cross if rule == "cross_sell" else recs

    size = split.train["product_id"].nunique()
    out: dict[str, object] = {f"baseline:{m}": ev.metrics(f(split.train, who, 10), split.truth, 10, size)
                              for m, f in (("P-TopFreq+G", ev.p_topfreq_g), ("G-TopFreq", ev.g_topfreq))}
    out.update({rule: ev.metrics(variant(rule), split.truth, 10, size) for rule in EXPLORE_RULES})
    out["customers_with_fewer_than_10_own_candidates"] = int(
        (recs[own].groupby("customer_id").size().reindex(who, fill_value=0) < 10).sum())
    return out


def emit_explore_rules(name: str, results: dict[str, object]) -> None:
    """One line per rule: Recall@10 against P-TopFreq+G (bound 1.03), explore Recall@10 against G-TopFreq (1.0)."""
    base = results["baseline:P-TopFreq+G"], results["baseline:G-TopFreq"]
    assert isinstance(base[0], dict) and isinstance(base[1], dict)
    for rule in EXPLORE_RULES:
        v = results[rule]
        assert isinstance(v, dict)
        recall, explore = v["recall"] / base[0]["recall"], v["explore_recall"] / base[1]["explore_recall"]
        emit(f"recommend.{name}.explore_rule.{rule}", explore, "ratio", metric="explore_recall@10",
             baseline="G-TopFreq", value_model=round(v["explore_recall"], 4),
             baseline_value=round(base[1]["explore_recall"], 4), recall=round(v["recall"], 4),
             recall_vs_P_TopFreq_G=round(recall, 4), ok=bool(recall >= 1.03 and explore >= 1.0))
    few = results["customers_with_fewer_than_10_own_candidates"]
    assert isinstance(few, int)
    emit(f"recommend.{name}.explore_rule.customers_with_fewer_than_10_own_candidates", few, "customers")


def cli_recommend() -> dict[str, float]:
    """`retention recommend` on completejourney end to end, as a user runs it: wall and CPU seconds."""
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "jobs.cli", "recommend", str(CJ / "transactions.csv.gz"),
                           "--columns", COLUMNS, "--catalog", str(CJ / "products.csv.gz"), "--out", os.devnull],
                          capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit("retention recommend failed")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "peak_mb": after.ru_maxrss / 1024}


def emit_evaluation(name: str, ev: dict[str, object]) -> None:
    """Every metric of every model, then the checks of issue 15 as ratios."""
    models = ev["models"]
    assert isinstance(models, dict)
    protocol = f"{ev['protocol']}, k=10"
    for model, values in models.items():
        for metric in ("recall", "ndcg", "hit_rate", "coverage", "repeat_recall", "repeat_ndcg", "explore_recall",
                       "explore_ndcg", "explore_share"):
            if metric in values:
                emit(f"recommend.{name}.eval.{model}.{metric}@10", values[metric], "fraction", model=model,
                     protocol=protocol)

    def check(label: str, ours: str, base: str, metric: str, bound: float) -> None:
        a, b = models[ours][metric], models[base][metric]
        emit(f"recommend.{name}.check.{label}", a / b if b else float("inf"), "ratio", model=ours,
             metric=f"{metric}@10", baseline=base, baseline_value=round(b, 4), value_model=round(a, 4),
             bound=bound, ok=bool(b and a / b >= bound))

    check("ours_vs_P-TopFreq+G_recall", "ours", "P-TopFreq+G", "recall", 1.03)
    check("ours_cross_sell_vs_G-TopFreq_explore_recall", "ours:cross_sell", "G-TopFreq", "explore_recall", 1.0)
    check("ours_vs_G-TopFreq_explore_recall", "ours", "G-TopFreq", "explore_recall", 1.0)
    check("TIFU-KNN_vs_P-TopFreq_recall", "TIFU-KNN", "P-TopFreq", "recall", 1.0)
    check("ours_vs_TIFU-KNN_recall", "ours", "TIFU-KNN", "recall", 1.0)
    emit(f"recommend.{name}.eval.seconds", float(str(ev["seconds"])), "s")


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
        what = sys.argv[2]
        # validation:completejourney prints the tuning split's metrics (what hyper-parameters were chosen on).
        if what.startswith("explore:"):  # explore:validation:completejourney or explore:test:instacart_sample
            _, split_name, data = what.split(":")
            emit_explore_rules(f"{data}.{split_name}", explore_rules(data, split_name == "validation"))
            return 0
        result: object = (evaluation(what.split(":", 1)[1]) if what.startswith("evaluation:")
                          else evaluation(what.split(":", 1)[1], validation=True) if what.startswith("validation:")
                          else cli_recommend() if what == "cli" else step(what))
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

    cli = child("cli")
    emit("recommend.completejourney.cli_wall", cli["wall_s"], "s", baseline="target bound 30 s on 2 cores",
         baseline_value=TARGET_SECONDS, ratio=round(cli["wall_s"] / TARGET_SECONDS, 4),
         note="wall time on a shared machine; cli_cpu is the CPU time the command used")
    emit("recommend.completejourney.cli_cpu", cli["cpu_s"], "s", baseline_value=TARGET_SECONDS,
         ratio=round(cli["cpu_s"] / TARGET_SECONDS, 4))
    emit("recommend.completejourney.cli_peak_rss", cli["peak_mb"], "MB")
    emit_evaluation("completejourney", child("evaluation:completejourney"))
    if (INSTACART / "df_sample.csv.gz").exists():
        emit_evaluation("instacart_sample", child("evaluation:instacart_sample"))
    else:
        emit("recommend.instacart_sample.missing", 0, "files", path=str(INSTACART), note="set BENCH_DATASETS; skipped")

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
