"""Benchmark the customer analytics on 1M simulated customers beside `lifetimes` 0.11.3, one JSON line per figure.

Data: a BG/NBD + Gamma-Gamma process with known parameters (fixed seed), first purchases spread over two
years, about 2.3 orders per customer. Each side runs in its own subprocess and reports its own peak RSS
(ru_maxrss), so the memory figures do not include the other side or the generator.

Sides:
  ours_pipeline  orders -> features + RFM + BG/NBD + Gamma-Gamma + CLV + P(alive) + next order + segments
  ours_models    summary (x, t_x, T, zbar) -> both fits + 12-month CLV + P(alive)
  lifetimes      the same summary -> BetaGeoFitter + GammaGammaFitter + customer_lifetime_value
                 + conditional_probability_alive
lifetimes is compared with ours_models (same input, same outputs). PEER_CUSTOMERS (env BENCH_PEER_CUSTOMERS)
sets the sample both of them run on; by default the full 1M.

Whole process, against whole process, on the same CSV of the same orders (customer_id, order_id, processed_at,
amount, discount; all BENCH_CUSTOMERS customers, never subsampled), each timed from spawn to exit by the parent
and its peak RSS taken from its own rusage:
  ours       `retention analyze orders.csv --as-of D --json --customers out.csv`: startup, imports, CSV read and
             checks, features, RFM, both fits, predictions, segments, KPIs, the summary and the per-customer CSV
  lifetimes  python + pandas.read_csv + lifetimes.utils.summary_data_from_transaction_data (days / 7, same-day
             orders merged: the same convention) + BetaGeoFitter + GammaGammaFitter + 12-month CLV + P(alive),
             written per customer with DataFrame.to_csv
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "1000000"))
PEER_CUSTOMERS = int(os.environ.get("BENCH_PEER_CUSTOMERS", str(N_CUSTOMERS)))
SEED = 20261123
TRUE_BGNBD = {"r": 0.4, "alpha": 9.0, "a": 0.7, "b": 2.8}
TRUE_GG = {"p": 6.0, "q": 4.0, "gamma": 15.0}
AS_OF = np.datetime64("2026-11-23", "D")
HISTORY_DAYS = 730
MONTHLY_DISCOUNT = (1.10) ** (1 / 12) - 1


def generate(n: int, seed: int) -> dict[str, np.ndarray]:
    """Orders of n customers from BG/NBD (weeks) + Gamma-Gamma spend, fully vectorized."""
    rng = np.random.default_rng(seed)
    r, alpha, a, b = (TRUE_BGNBD[k] for k in ("r", "alpha", "a", "b"))
    p, q, g = (TRUE_GG[k] for k in ("p", "q", "gamma"))
    age_days = rng.integers(1, HISTORY_DAYS + 1, n)
    T = age_days / 7.0
    lam = rng.gamma(r, 1.0 / alpha, n)
    drop = rng.beta(a, b, n)
    arrivals = rng.poisson(lam * T)
    lifetime = rng.geometric(drop)  # repeat purchases made before dropping out (>= 1)
    x = np.minimum(arrivals, lifetime)
    # Given x of n arrivals on [0, T], the x-th arrival time is T * Beta(x, n - x + 1);
    # the earlier x - 1 arrivals are uniform on [0, t_x].
    t_x = np.where(x > 0, T * rng.beta(np.maximum(x, 1), np.maximum(arrivals - x + 1, 1)), 0.0)
    earlier = np.maximum(x - 1, 0)
    owner_earlier = np.repeat(np.arange(n), earlier)
    t_earlier = rng.random(len(owner_earlier)) * t_x[owner_earlier]
    repeaters = np.flatnonzero(x > 0)
    customer = np.concatenate([np.arange(n), repeaters, owner_earlier])
    weeks = np.concatenate([np.zeros(n), t_x[repeaters], t_earlier])
    nu = rng.gamma(q, 1.0 / g, n)
    amount = np.round(rng.gamma(p, 1.0 / nu[customer]), 2)
    first_day = AS_OF - age_days.astype("timedelta64[D]")
    ns = (first_day[customer].astype("datetime64[ns]").astype(np.int64)
          + (weeks * 7 * 86_400e9).astype(np.int64) + rng.integers(0, 3_600_000_000_000, len(customer)))
    discounted = rng.random(len(customer)) < 0.3
    return {"customer": customer, "ns": ns, "amount": amount, "discounted": discounted}


def orders_frame(data: dict[str, np.ndarray]) -> "object":
    import pandas as pd
    ids = np.char.add("c", data["customer"].astype(str)).astype(object)
    return pd.DataFrame({
        "customer_id": ids, "order_id": np.arange(len(ids)).astype(str),
        "processed_at": pd.to_datetime(data["ns"]), "amount": data["amount"], "gross": data["amount"],
        "discounted": data["discounted"], "items": 1, "valid": True,
    })


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def side_ours_pipeline(path: str) -> dict[str, object]:
    import pandas as pd

    from connector.analytics_settings import AnalyticsSettings
    from jobs.analytics.clv import predict
    from jobs.analytics.features import customer_features
    from jobs.analytics.rfm import rfm_scores
    from jobs.analytics.segments import builtin_segments

    data = dict(np.load(path))
    orders = orders_frame(data)
    as_of = pd.Timestamp(str(AS_OF))
    settings = AnalyticsSettings()
    started = time.perf_counter()
    features = customer_features(orders, as_of)
    rfm = rfm_scores(features)
    predictions = predict(features, as_of, settings)
    customers = pd.concat([features, rfm, predictions.frame], axis=1)
    segments = builtin_segments(customers, orders, None, as_of, settings)
    elapsed = time.perf_counter() - started
    bg, gg = predictions.bgnbd, predictions.gamma_gamma
    return {"seconds": elapsed, "peak_mb": peak_mb(), "customers": len(features), "orders": len(orders),
            "model": predictions.model, "segments": int(segments.to_numpy().sum()),
            "params": {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b,
                       "p": gg.p, "q": gg.q, "gamma": gg.gamma} if bg and gg else {}}


def side_ours_models(path: str) -> dict[str, object]:
    from jobs.analytics.clv import clv_bgnbd, expected_spend, fit_bgnbd, fit_gamma_gamma, p_alive

    s = dict(np.load(path))
    started = time.perf_counter()
    bg = fit_bgnbd(s["x"], s["t_x"], s["T"])
    gg = fit_gamma_gamma(s["x"], s["zbar"])
    spend = expected_spend(gg, s["x"], s["zbar"])
    clv, _ = clv_bgnbd(bg, spend, s["x"], s["t_x"], s["T"], months=12, annual_rate=0.10)
    alive = p_alive(bg, s["x"], s["t_x"], s["T"])
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "peak_mb": peak_mb(), "clv_sum": float(clv.sum()), "alive_mean": float(alive.mean()),
            "params": {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "p": gg.p, "q": gg.q, "gamma": gg.gamma}}


def side_lifetimes_analyze(path: str, out: str) -> dict[str, object]:
    """The peer's whole job on the CSV: what a lifetimes user writes (its own summary helper, fits, predictions)."""
    warnings.simplefilter("ignore")
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    orders = pd.read_csv(path, parse_dates=["processed_at"])
    summary = summary_data_from_transaction_data(orders, "customer_id", "processed_at", monetary_value_col="amount",
                                                 observation_period_end=pd.Timestamp(str(AS_OF)), freq="D",
                                                 freq_multiplier=7)
    bgf = BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
    rep = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    ggf = GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])
    summary["predicted_clv"] = ggf.customer_lifetime_value(
        bgf, summary["frequency"], summary["recency"], summary["T"], summary["monetary_value"], time=12,
        discount_rate=MONTHLY_DISCOUNT, freq="W")
    summary["p_alive"] = bgf.conditional_probability_alive(summary["frequency"], summary["recency"], summary["T"])
    summary.to_csv(out)
    bp = bgf.params_
    return {"customers": len(summary), "params": {k: float(bp[k]) for k in ("r", "alpha", "a", "b")}}


def side_lifetimes(path: str) -> dict[str, object]:
    warnings.simplefilter("ignore")
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    s = dict(np.load(path))
    frame = pd.DataFrame({k: s[k] for k in ("x", "t_x", "T", "zbar")})
    started = time.perf_counter()
    bgf = BetaGeoFitter().fit(frame["x"], frame["t_x"], frame["T"])
    rep = frame[(frame["x"] > 0) & (frame["zbar"] > 0)]
    ggf = GammaGammaFitter().fit(rep["x"], rep["zbar"])
    clv = ggf.customer_lifetime_value(bgf, frame["x"], frame["t_x"], frame["T"], frame["zbar"], time=12,
                                      discount_rate=MONTHLY_DISCOUNT, freq="W")
    alive = bgf.conditional_probability_alive(frame["x"], frame["t_x"], frame["T"])
    elapsed = time.perf_counter() - started
    bp, gp = bgf.params_, ggf.params_
    return {"seconds": elapsed, "peak_mb": peak_mb(), "clv_sum": float(np.asarray(clv).sum()),
            "alive_mean": float(np.mean(alive)),
            "params": {"r": bp["r"], "alpha": bp["alpha"], "a": bp["a"], "b": bp["b"],
                       "p": gp["p"], "q": gp["q"], "gamma": gp["v"]}}


SIDES = {"ours_pipeline": side_ours_pipeline, "ours_models": side_ours_models, "lifetimes": side_lifetimes,
         "lifetimes_analyze": side_lifetimes_analyze}


def run_side(name: str, *paths: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, __file__, "--side", name, *paths], capture_output=True, text=True,
                         cwd=ROOT, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def whole_process(name: str, args: list[str]) -> dict[str, object]:
    """Run a command from spawn to exit: wall seconds, its own peak RSS (wait4's rusage) and its last stdout line."""
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(args, cwd=ROOT, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed ({proc.returncode}):\n{stderr.read().decode()[-3000:]}")
        lines = stdout.read().decode().strip().splitlines()
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024.0, "output": json.loads(lines[-1]) if lines else {}}


def emit(name: str, value: float, unit: str, **extra: object) -> None:
    print(json.dumps({"name": name, "value": round(value, 6), "unit": unit, **extra}), flush=True)


def side_generate(directory: str) -> dict[str, object]:
    """Write the orders and the (optionally subsampled) model summary; runs in its own process too."""
    import pandas as pd

    from jobs.analytics.features import customer_features

    started = time.perf_counter()
    data = generate(N_CUSTOMERS, SEED)
    np.savez(str(Path(directory) / "orders.npz"), **data)
    write_csv(data, Path(directory) / "orders.csv")
    features = customer_features(orders_frame(data), pd.Timestamp(str(AS_OF)))
    summary = {k: features[k].to_numpy(float) for k in ("x", "t_x", "T", "zbar")}
    if PEER_CUSTOMERS < len(features):
        pick = np.random.default_rng(SEED + 1).choice(len(features), PEER_CUSTOMERS, replace=False)
        summary = {k: v[pick] for k, v in summary.items()}
    np.savez(str(Path(directory) / "summary.npz"), **summary)
    return {"seconds": time.perf_counter() - started, "orders": int(len(data["ns"])), "peer_customers": len(summary["x"])}


SIDES["generate"] = side_generate


def write_csv(data: dict[str, np.ndarray], path: Path) -> None:
    """The orders as a shop export: one line per order, seconds-precision times, a discount on 30 % of them."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    n = len(data["ns"])
    when = data["ns"].view("datetime64[ns]").astype("datetime64[s]")
    table = pa.table({
        "customer_id": pc.binary_join_element_wise("c", pa.array(data["customer"]).cast(pa.string()), ""),
        "order_id": pa.array(np.arange(n)).cast(pa.string()),
        "processed_at": pa.array(when).cast(pa.string()),
        "amount": pa.array(data["amount"]),
        "discount": pa.array(np.where(data["discounted"], np.round(data["amount"] * 0.1, 2), 0.0)),
    })
    with path.open("wb") as out:
        out.write((",".join(table.column_names) + "\n").encode())
        pcsv.write_csv(table, out, pcsv.WriteOptions(include_header=False, quoting_style="none"))


def main() -> int:
    # The parent only launches processes, so each child's ru_maxrss is its own peak
    # (a forked child starts with its parent's high-water mark).
    with tempfile.TemporaryDirectory() as tmp:
        generated = run_side("generate", tmp)
        emit("bench_generate_seconds", generated["seconds"], "s", customers=N_CUSTOMERS, orders=generated["orders"])
        ours = run_side("ours_pipeline", str(Path(tmp) / "orders.npz"))
        models = run_side("ours_models", str(Path(tmp) / "summary.npz"))
        peer = run_side("lifetimes", str(Path(tmp) / "summary.npz"))
        csv = str(Path(tmp) / "orders.csv")
        retention = str(Path(sys.executable).with_name("retention"))
        ours_whole = whole_process("retention analyze", [retention, "analyze", csv, "--as-of", str(AS_OF), "--json",
                                                         "--customers", str(Path(tmp) / "ours_customers.csv")])
        peer_whole = whole_process("lifetimes", [sys.executable, __file__, "--side", "lifetimes_analyze", csv,
                                                 str(Path(tmp) / "lifetimes_customers.csv")])
    emit("analytics_pipeline_seconds", ours["seconds"], "s", customers=ours["customers"], orders=ours["orders"],
         model=ours["model"])
    emit("analytics_pipeline_peak_rss", ours["peak_mb"], "MB")
    n_peer = generated["peer_customers"]
    emit("models_seconds", models["seconds"], "s", customers=n_peer, baseline="lifetimes 0.11.3",
         baseline_value=round(peer["seconds"], 6), ratio=round(peer["seconds"] / models["seconds"], 2))
    emit("models_peak_rss", models["peak_mb"], "MB", customers=n_peer, baseline="lifetimes 0.11.3",
         baseline_value=round(peer["peak_mb"], 3), ratio=round(peer["peak_mb"] / models["peak_mb"], 2))
    emit("clv_total_vs_lifetimes", models["clv_sum"], "currency", customers=n_peer, baseline="lifetimes 0.11.3",
         baseline_value=round(peer["clv_sum"], 2), ratio=round(peer["clv_sum"] / models["clv_sum"], 4))
    emit("p_alive_mean_vs_lifetimes", models["alive_mean"], "", customers=n_peer, baseline="lifetimes 0.11.3",
         baseline_value=round(peer["alive_mean"], 6), ratio=round(peer["alive_mean"] / models["alive_mean"], 6))
    ours_out, peer_out = ours_whole["output"], peer_whole["output"]
    assert isinstance(ours_out, dict) and isinstance(peer_out, dict)
    whole_ratio = float(peer_whole["seconds"]) / float(ours_whole["seconds"])
    emit("analyze_whole_seconds", float(ours_whole["seconds"]), "s", customers=ours_out["customers"],
         orders=ours_out["orders"], baseline="lifetimes 0.11.3 whole process",
         baseline_value=round(float(peer_whole["seconds"]), 6), ratio=round(whole_ratio, 2), target="ratio >= 10",
         met=N_CUSTOMERS >= 1_000_000 and whole_ratio >= 10)
    emit("analyze_whole_peak_rss", float(ours_whole["peak_mb"]), "MB", baseline="lifetimes 0.11.3 whole process",
         baseline_value=round(float(peer_whole["peak_mb"]), 3),
         ratio=round(float(peer_whole["peak_mb"]) / float(ours_whole["peak_mb"]), 2))
    emit("analyze_whole_param_r", float(ours_out["bgnbd"]["r"]), "", baseline="lifetimes 0.11.3 whole process",
         baseline_value=round(float(peer_out["params"]["r"]), 6),
         ratio=round(float(peer_out["params"]["r"]) / float(ours_out["bgnbd"]["r"]), 4))
    truth = {**TRUE_BGNBD, **TRUE_GG}
    for key, true_value in truth.items():
        fitted = float(ours["params"][key])
        emit(f"param_{key}", fitted, "", truth=true_value, relative_error=round(abs(fitted / true_value - 1), 4),
             baseline="lifetimes 0.11.3", baseline_value=round(float(peer["params"][key]), 6),
             ratio=round(float(peer["params"][key]) / float(models["params"][key]), 4))
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--side":
        print(json.dumps(SIDES[sys.argv[2]](*sys.argv[3:])))
        sys.exit(0)
    sys.exit(main())
