"""`retention recommend` and `retention evaluate-recs` run end to end on CSV files."""
from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobs.cli import build_parser, main
from jobs.commands import recommend as command


@pytest.fixture
def transactions(tmp_path: Path) -> Path:
    """A small shop with repeat buyers and a bought-together pair, as a CSV with Shopify-style timestamps."""
    rng = np.random.default_rng(5)
    rows = []
    for order in range(300):
        customer = f"cust{order % 40}"
        day = pd.Timestamp("2026-01-01") + pd.Timedelta(days=int(order * 1.1))
        basket = {f"p{customer[-1]}", f"p{rng.integers(10, 30)}"}
        if order % 3 == 0:
            basket |= {"bread", "butter"}
        for product in sorted(basket):
            rows.append({"customer_id": customer, "order_id": f"#{1000 + order}",
                         "processed_at": day.strftime("%Y-%m-%dT%H:%M:%S-05:00"), "amount": 4.5,
                         "product_id": product, "quantity": 1})
    path = tmp_path / "lines.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_both_subcommands_are_registered_with_a_callable() -> None:
    sub = argparse.ArgumentParser().add_subparsers()
    command.register(sub)
    for name in ("recommend", "evaluate-recs"):
        assert callable(sub.choices[name].get_default("func"))
    args = build_parser().parse_args(["evaluate-recs", "x.csv", "--split-date", "2026-06-01", "--json"])
    assert args.func is command.run_evaluate


def test_recommend_writes_one_line_per_customer_with_reasons(transactions: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.csv"
    pd.DataFrame({"product_id": ["butter", "bread"], "title": ["Butter", "Bread"], "product_type": ["dairy", "bakery"],
                  "price": [2.0, 3.0], "available": [False, True]}).to_csv(catalog, index=False)
    out = tmp_path / "recs.jsonl"
    assert main(["recommend", str(transactions), "--out", str(out), "--catalog", str(catalog), "--k", "5"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 40 == len({r["customer_id"] for r in records})
    for record in records:
        assert 0 < len(record["items"]) <= 5
        for item in record["items"]:
            assert item["reason"] in {"bought_together", "upgrade", "due_to_reorder", "buy_again", "similar_customers",
                                      "trending"}
            assert item["product_id"] != "butter"
            assert ("because_of" in item) == (item["reason"] in {"bought_together", "upgrade"})


def test_as_of_ignores_later_orders(transactions: Path, tmp_path: Path) -> None:
    out = tmp_path / "early.jsonl"
    assert main(["recommend", str(transactions), "--out", str(out), "--as-of", "2026-01-10"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    early = pd.read_csv(transactions)
    early = early[pd.to_datetime(early["processed_at"], utc=True) < pd.Timestamp("2026-01-11", tz="UTC")]
    assert {r["customer_id"] for r in records} == set(early["customer_id"])
    bought = set(early["product_id"])
    assert all(i["product_id"] in bought for r in records for i in r["items"])


def test_evaluate_recs_maps_columns_and_reports_every_model(transactions: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    renamed = tmp_path / "renamed.csv"
    pd.read_csv(transactions).rename(columns={"customer_id": "household_id", "order_id": "basket_id"}).to_csv(
        renamed, index=False)
    assert main(["evaluate-recs", str(renamed), "--columns", "customer_id=household_id,order_id=basket_id",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["models"]) == {"ours", "ours:cross_sell", "ours:buy_again", "TIFU-KNN", "G-TopFreq", "P-TopFreq",
                                     "P-TopFreq+G"}
    assert report["models"]["ours"]["customers"] == 40
    for model in report["models"].values():
        assert 0.0 <= model["recall"] <= model["hit_rate"] <= 1.0
    assert main(["evaluate-recs", str(renamed), "--columns", "customer_id=household_id,order_id=basket_id",
                 "--split-date", "2026-09-01"]) == 0
    table = capsys.readouterr().out
    assert "Recall@10" in table and "P-TopFreq+G" in table and "ExpRecall" in table and "time split" in table


GOOD_HEADER = "customer_id,order_id,processed_at,product_id,quantity,amount\n"
GOOD_ROWS = "c1,o1,2026-01-01T10:00:00Z,p1,1,2.0\nc1,o2,2026-02-01T10:00:00Z,p1,1,2.0\n"


def bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each broken input with the words its error message must contain."""
    cases: dict[str, tuple[Path, str]] = {}

    def put(name: str, data: bytes, expect: str) -> None:
        path = tmp_path / name
        path.write_bytes(data)
        cases[name] = (path, expect)

    put("empty.csv", b"", "empty")
    put("header_only.csv", GOOD_HEADER.encode(), "only a header")
    put("bad_date.csv", (GOOD_HEADER + GOOD_ROWS + "c2,o3,31/31/2026,p2,1,2.0\n").encode(), "line 4")
    put("latin1.csv", (GOOD_HEADER + GOOD_ROWS).encode() + "c3,o4,2026-03-01,caf\u00e9,1,2.0\n".encode("latin-1"),
        "line 4")
    put("fake.csv.gz", (GOOD_HEADER + GOOD_ROWS).encode(), "not gz-compressed")
    put("truncated.csv.gz", gzip.compress((GOOD_HEADER + GOOD_ROWS * 50).encode())[:40], "damaged gz")
    return cases


@pytest.mark.parametrize("command_name", ["recommend", "evaluate-recs"])
@pytest.mark.parametrize("case", ["empty.csv", "header_only.csv", "bad_date.csv", "latin1.csv", "fake.csv.gz",
                                  "truncated.csv.gz"])
def test_unreadable_input_is_a_clear_error_with_exit_status_2(command_name: str, case: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path, expect = bad_inputs(tmp_path)[case]
    assert main([command_name, str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(path) in err and expect in err
    assert "Traceback" not in err


def test_a_real_gzip_file_and_a_utf8_bom_still_read(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv.gz"
    path.write_bytes(gzip.compress(("\ufeff" + GOOD_HEADER + GOOD_ROWS).encode("utf-8")))
    out = tmp_path / "out.jsonl"
    assert main(["recommend", str(path), "--out", str(out)]) == 0
    assert [json.loads(line)["customer_id"] for line in out.read_text().splitlines()] == ["c1"]


def test_merchant_pins_and_exclusions_are_read_from_app_toml(tmp_path: Path) -> None:
    from connector.config import load_settings

    path = tmp_path / "app.toml"
    path.write_text('[recommendations]\npinned_products = ["11", "12"]\nexcluded_products = ["13"]\n'
                    '[recommendations.tifu]\nalpha = 0.6\n')
    settings = load_settings(path, env={}).recommendations
    assert (settings.pinned_products, settings.excluded_products, settings.tifu.alpha) == (("11", "12"), ("13",), 0.6)
