"""`retention analyze` end to end on CDNOW, and the purity rule of the analytics modules."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.fixtures import CDNOW

REPO = Path(__file__).resolve().parents[2]
PURE = ["jobs/analytics/features.py", "jobs/analytics/rfm.py", "jobs/analytics/clv.py", "jobs/analytics/kpis.py",
        "jobs/analytics/segments.py", "jobs/analytics/analyze.py", "jobs/analytics/rules.py",
        "connector/segment_rules.py", "connector/analytics_settings.py", "jobs/analytics/refunds.py",
        "jobs/analytics/birthdays.py", "jobs/analytics/vip_tiers.py"]
IO = {"tortoise", "httpx", "redis", "arq", "starlette", "sqlite3", "socket", "urllib", "requests", "os", "io",
      "subprocess", "pathlib", "time", "datetime"}


@pytest.fixture(scope="module")
def cdnow_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = pd.read_csv(CDNOW / "CDNOW_sample.txt", sep=r"\s+", header=None,
                      names=["master_id", "sample_id", "date", "cds", "dollars"])
    path = tmp_path_factory.mktemp("cdnow") / "cdnow.csv"
    pd.DataFrame({
        "customer_id": raw["sample_id"], "order_id": np.arange(len(raw)),
        "processed_at": pd.to_datetime(raw["date"].astype(str)).dt.strftime("%Y-%m-%d"), "amount": raw["dollars"],
        "quantity": raw["cds"],
    }).to_csv(path, index=False)
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jobs.cli", "analyze", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_analyze_json_on_cdnow_reproduces_the_published_fit(cdnow_csv: Path) -> None:
    out = run_cli(str(cdnow_csv), "--calibration-end", "1997-09-30", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["model"] == "bgnbd+gg" and payload["customers"] == 2357
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for key, value in published.items():
        assert payload["bgnbd"][key] == pytest.approx(value, rel=0.005)
    assert payload["bgnbd"]["log_likelihood"] == pytest.approx(-9582.4, abs=0.1)
    for key, value in {"p": 6.25, "q": 3.74, "gamma": 15.44}.items():
        assert payload["gamma_gamma"][key] == pytest.approx(value, rel=0.01)
    assert {"repeat_purchase_rate", "retention_rate", "churn_rate", "average_clv", "median_clv"} <= set(payload["kpis"])
    assert {"vip", "at_risk", "rfm_champions", "holiday_buyer"} <= set(payload["segments"])
    deciles = payload["holdout_deciles"]
    assert len(deciles) == 10 and sum(d["customers"] for d in deciles) == 2357
    predicted = [d["predicted"] for d in deciles]
    assert predicted == sorted(predicted)
    total_actual = sum(d["actual"] for d in deciles)
    assert abs(sum(predicted) - total_actual) / total_actual < 0.2  # BG/NBD tracks the 39-week holdout
    checked = payload["accuracy"]  # the same check the app home shows, in the same units as the deciles
    assert checked["predicted_purchases"] == pytest.approx(sum(predicted), rel=1e-6)
    assert checked["actual_purchases"] == total_actual and checked["customers"] == 2357
    assert 0 < checked["mae_purchases"] < 2 and 0 < checked["came_back"] < checked["lapsed_or_at_risk"]
    assert checked["sentence"].startswith("Customers we predicted to buy")


def test_analyze_with_a_calibration_end_prints_the_accuracy_in_words(cdnow_csv: Path) -> None:
    out = run_cli(str(cdnow_csv), "--calibration-end", "1997-09-30")
    assert out.returncode == 0, out.stderr
    assert "Customers we predicted to buy" in out.stdout and "lapsed or at risk who came back" in out.stdout


def test_analyze_prints_an_aligned_table_by_default(cdnow_csv: Path) -> None:
    out = run_cli(str(cdnow_csv), "--as-of", "1997-12-31")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("as of 1997-12-31: ")
    assert "model: bgnbd+gg" in out.stdout and "rfm_champions" in out.stdout


def test_a_small_file_reports_the_heuristic_it_fell_back_to(tmp_path: Path) -> None:
    path = tmp_path / "tiny.csv"
    path.write_text("customer_id,order_id,processed_at,amount,product_id,quantity,discount\n"
                    "1,a,2026-01-01,10,p1,1,0\n1,a,2026-01-01,5,p2,2,1\n2,b,2026-03-01,20,p1,1,0\n"
                    "1,c,2026-05-01,12,p3,1,0\n")
    out = run_cli(str(path), "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["model"] == "heuristic: too few buyers (2 < 500)"
    assert payload["bgnbd"] is None and payload["orders"] == 3
    assert payload["kpis"]["revenue"] == pytest.approx(47.0)


def test_a_file_without_the_required_columns_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,when\n1,2026-01-01\n")
    out = run_cli(str(path))
    assert out.returncode == 2 and "missing column" in out.stderr


@pytest.mark.parametrize("module", PURE)
def test_analytics_modules_are_pure(module: str) -> None:
    tree = ast.parse((REPO / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            assert name != "open" and not name.endswith((".now", ".today", "time.time", ".utcnow")), name
    assert not imported & IO, imported & IO
