"""`retention status`: a bar per shop on a terminal, plain key=value lines otherwise."""
from __future__ import annotations

from typing import Any

from jobs.commands.status import bar, line


def progress(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "shop": "a.myshopify.com", "platform": "shopify", "state": "active", "percent": 75,
        "backfill": {"percent": 100, "customers": 1200, "done": [], "kinds": []},
        "last_webhook": None, "events": {"waiting": 0, "failed": 2},
        "recompute": {"at": None, "accepted": None, "failed": None},
        "settings": {"applied": True}, "busy": True,
    }
    base.update(changes)
    return base


def test_a_terminal_gets_a_bar_naming_the_step_under_way() -> None:
    shown = bar(progress())
    assert shown.startswith("a.myshopify.com") and "[" + "#" * 22 + "." * 8 + "]" in shown
    assert shown.endswith("first recompute")
    installing = bar(progress(state="pending", percent=0))
    assert "installing (pending)" in installing and "#" not in installing


def test_a_pipe_gets_one_plain_line_per_shop() -> None:
    text = line(progress())
    assert "state=active" in text and "backfill=100%" in text and "failed=2" in text and "last_recompute=-" in text
