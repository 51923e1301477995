"""When the status calls saved settings applied: only after a run that began after the save (no browser needed)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from connector.home.data import run_started


def test_a_run_is_dated_by_its_start_so_one_that_began_before_a_save_does_not_apply_it() -> None:
    ended = datetime(2026, 12, 7, 20, 0, 30, tzinfo=timezone.utc)
    saved = ended - timedelta(seconds=10)  # saved while a 25-second run was under way
    began = run_started(ended, {"seconds": {"total": 25.0}})
    assert began == ended - timedelta(seconds=25) and began < saved
    assert run_started(ended, {"seconds": {"total": 4}}) > saved  # a run begun after the save
    assert run_started(ended, {}) == ended  # a summary without its duration: its end, as before
