"""`retention analyze FILE`: every doubtful cell is a clear error naming its line, or a reading the output reports."""
from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import subprocess
from pathlib import Path

import pytest

from jobs.cli import main

HEADER = "customer_id,order_id,processed_at,amount"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The command in this process (the subprocess end-to-end run is in test_analyze_cli.py)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["analyze", *args])
    return subprocess.CompletedProcess(["retention", "analyze", *args], code, out.getvalue(), err.getvalue())


def write(tmp_path: Path, text: str, name: str = "sales.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def analyze_json(path: Path, *extra: str) -> tuple[dict, str]:
    out = run_cli(str(path), "--json", *extra)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), out.stderr


def test_an_empty_customer_id_is_an_error_naming_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n1,a,2026-01-01,10\n,b,2026-01-02,5\n2,c,2026-01-03,7\n")
    out = run_cli(str(path))
    assert out.returncode == 2
    assert "sales.csv line 3: empty customer_id" in out.stderr and "Traceback" not in out.stderr


def test_a_blank_line_is_skipped_and_later_line_numbers_stay_those_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n1,a,2026-01-01,10\n\n2,c,2026-01-03,oops\n")
    out = run_cli(str(path))
    assert out.returncode == 2 and "line 4: amount is not a number" in out.stderr, out.stderr


@pytest.mark.parametrize(("cells", "revenue"), [
    (["$12.00", "$1,234.50", "$3"], 1249.5),
    (["12,50", "1.234,50", "3"], 1250.0),
    (["12,50 €", "3 €", "1 000,25 €"], 1015.75),
    (["USD 10", "USD 2.5", "USD 1"], 13.5),
])
def test_formatted_amounts_are_read_and_the_reading_is_reported(tmp_path: Path, cells: list[str],
                                                                   revenue: float) -> None:
    path = tmp_path / "sales.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER.split(","))
        for i, cell in enumerate(cells):
            writer.writerow([i + 1, f"o{i}", f"2026-01-0{i + 1}", cell])
    payload, err = analyze_json(path)
    assert payload["kpis"]["revenue"] == pytest.approx(revenue)
    assert payload["input"]["notes"] and payload["input"]["notes"] == [
        line.removeprefix("retention analyze: ") for line in err.splitlines()]


@pytest.mark.parametrize(("cells", "message"), [
    (['"12,50"', "12.50"], "mixes a decimal comma (line 2: '12,50') and a decimal point (line 3: '12.50')"),
    (["$12", "€3"], "amount in more than one currency"),
    (["12", "(3.00)"], "line 3: amount is not a number"),
    (["12", '"1,2,3"'], "line 3: amount has misplaced separators"),
    (["12", "99999999999999999"], "line 3: amount out of range"),
])
def test_amounts_that_cannot_be_read_one_way_are_refused_with_the_line(tmp_path: Path, cells: list[str],
                                                                       message: str) -> None:
    rows = "".join(f"{i + 1},o{i},2026-01-0{i + 1},{cell}\n" for i, cell in enumerate(cells))
    out = run_cli(str(write(tmp_path, f"{HEADER}\n{rows}")))
    assert out.returncode == 2 and message in out.stderr, out.stderr


def test_a_refund_row_with_its_own_order_id_is_netted_against_the_customer(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n1,a,2026-01-01,100\n1,b,2026-02-01,50\n1,r1,2026-02-10,-30\n"
                           "2,c,2026-01-05,40\n2,r2,2026-01-06,-40\n3,d,2026-03-01,20\n")
    payload, err = analyze_json(path, "--as-of", "2026-03-01")
    # 100 + (50 - 30) + 0 + 20: customer 2's order was refunded in full and is no sale; no refund row is an order.
    assert payload["kpis"]["revenue"] == pytest.approx(140.0)
    assert payload["orders"] == 3 and payload["customers"] == 2
    assert "2 refund order(s)" in err


def test_a_refund_with_no_earlier_order_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n1,a,2026-01-01,100\n2,r,2026-01-02,-5\n")
    payload, err = analyze_json(path)
    assert "sales.csv line 3: refund(s) with no earlier order" in err
    assert payload["kpis"]["revenue"] == pytest.approx(100.0)


def test_a_date_in_the_future_is_reported_and_does_not_move_the_analysis_date(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n1,a,2026-01-01,10\n2,b,2026-02-01,5\n3,c,2199-01-01,7\n")
    payload, err = analyze_json(path)
    assert payload["as_of"] == "2026-02-01"
    assert "sales.csv line 4: dated after today" in err and payload["orders"] == 2


@pytest.mark.parametrize(("dates", "flag", "expected_last"), [
    (["01/02/2026", "13/02/2026"], None, "2026-02-13"),  # 13 can only be a day: the whole file is day/month
    (["01/02/2026", "02/13/2026"], None, "2026-02-13"),  # 13 can only be a month-day: month/day
    (["01/02/2026", "03/02/2026"], "--dayfirst", "2026-02-03"),
    (["01/02/2026", "03/02/2026"], "--monthfirst", "2026-03-02"),
])
def test_one_day_month_order_reads_every_date_of_the_file(tmp_path: Path, dates: list[str], flag: str | None,
                                                          expected_last: str) -> None:
    rows = "".join(f"{i + 1},o{i},{d},10\n" for i, d in enumerate(dates))
    payload, err = analyze_json(write(tmp_path, f"{HEADER}\n{rows}"), *([flag] if flag else []))
    assert payload["as_of"] == expected_last
    assert "read as" in err


@pytest.mark.parametrize(("dates", "flag", "message"), [
    (["01/02/2026", "03/02/2026"], None, "pass --dayfirst or --monthfirst"),
    (["13/02/2026", "02/13/2026"], None, "both day/month (line 2: '13/02/2026') and month/day order (line 3"),
    (["01/02/2026", "02/13/2026"], "--dayfirst", "line 3: '02/13/2026' cannot be day/month"),
])
def test_an_undecidable_day_month_order_is_refused(tmp_path: Path, dates: list[str], flag: str | None,
                                                   message: str) -> None:
    rows = "".join(f"{i + 1},o{i},{d},10\n" for i, d in enumerate(dates))
    out = run_cli(str(write(tmp_path, f"{HEADER}\n{rows}")), *([flag] if flag else []))
    assert out.returncode == 2 and message in out.stderr, out.stderr


@pytest.mark.parametrize(("row", "message"), [
    ("2,b,2026-01-02,5,99999999999999999999999", "line 3: quantity out of range"),
    ("2,b,2026-01-02,5,1.5", "line 3: quantity is not a whole number"),
    ("2,b,9999-01-02,5,1", "line 3: processed_at is not a date in range"),
    ("2,b,0001-01-02,5,1", "line 3: processed_at is not a date in range"),
    ("2,b,2026-02-30,5,1", "line 3: processed_at is not a date"),
])
def test_values_out_of_range_are_errors_not_overflow(tmp_path: Path, row: str, message: str) -> None:
    path = write(tmp_path, f"{HEADER},quantity\n1,a,2026-01-01,10,1\n{row}\n")
    out = run_cli(str(path))
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_one_order_id_on_two_customers_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n1,a,2026-01-01,10\n2,a,2026-01-01,5\n")
    out = run_cli(str(path))
    assert out.returncode == 2 and "line 3: order_id already used by another customer" in out.stderr


@pytest.mark.parametrize(("data", "message"), [
    (b"", "the file is empty"),
    (HEADER.encode() + b"\n", "no orders in the file"),
    (HEADER.encode() + b"\n1,a,2026-01-01,10\n2,b,2026-01-02,caf\xe9\n", "line 3: not UTF-8"),
])
def test_unreadable_files_are_clear_errors(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "sales.csv"
    path.write_bytes(data)
    out = run_cli(str(path))
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_gzip_is_told_by_its_bytes_not_its_name(tmp_path: Path) -> None:
    text = f"{HEADER}\n1,a,2026-01-01,10\n2,b,2026-01-02,5\n"
    real = tmp_path / "sales.csv.gz"
    real.write_bytes(gzip.compress(text.encode()))
    fake = write(tmp_path, text, "plain.csv.gz")
    assert analyze_json(real)[0]["orders"] == analyze_json(fake)[0]["orders"] == 2


def test_without_a_discount_column_the_discount_segments_are_off_and_said_so(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n1,a,2026-01-01,10\n2,b,2026-01-02,5\n")
    payload, _ = analyze_json(path)
    assert "full_price" not in payload["segments"] and "discount_shopper" not in payload["segments"]
    assert set(payload["segments_off"]) >= {"full_price", "discount_shopper"}
    text = run_cli(str(path)).stdout
    assert "Off (the data cannot decide them)" in text and "no discount data" in text
    with_discounts = write(tmp_path, f"{HEADER},discount\n1,a,2026-01-01,10,0\n2,b,2026-01-02,5,\n3,c,2026-01-03,5,1\n",
                           "d.csv")
    payload, _ = analyze_json(with_discounts)
    assert payload["segments"]["full_price"] == 2 and payload["segments"]["discount_shopper"] == 1


def test_customers_option_writes_one_row_per_customer(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n1,a,2026-01-01,10\n1,b,2026-02-01,30\n2,c,2026-01-15,5\n")
    out_csv = tmp_path / "customers.csv"
    payload, _ = analyze_json(path, "--customers", str(out_csv))
    with out_csv.open(newline="") as handle:
        rows = {row["customer_id"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"1", "2"}
    first = rows["1"]
    for column in ("segments", "rfm_recency", "rfm_frequency", "rfm_monetary", "rfm_score", "rfm_group",
                   "predicted_clv", "p_alive", "expected_next_order_date", "number_of_orders", "amount_spent"):
        assert column in first
    assert first["number_of_orders"] == "2" and float(first["amount_spent"]) == pytest.approx(40.0)
    assert "repeat" in first["segments"].split() and "first_time" in rows["2"]["segments"].split()
    assert float(first["predicted_clv"]) > 0 and 0 <= float(first["p_alive"]) <= 1
    assert first["expected_next_order_date"] > "2026-02-01" and first["rfm_group"]
    assert sum(r["segments"].split().count("repeat") for r in rows.values()) == payload["segments"]["repeat"]
