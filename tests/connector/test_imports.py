"""What each process loads: the web app no analytics library, each CLI command only its own module."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"pandas", "numpy", "scipy"}


def loaded_after(code: str) -> set[str]:
    """Top-level modules loaded in a fresh interpreter after running `code`."""
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_web_app_with_its_adapters_loads_no_analytics_library() -> None:
    code = ("from adapters.registry import REGISTRY\nfrom connector.app import create_app\n"
            "from connector.config import DEFAULT_CONFIG, load_settings\n"
            "create_app(load_settings(DEFAULT_CONFIG, env={}), REGISTRY)")
    assert loaded_after(code) & HEAVY == set()


def test_the_probe_does_see_an_analytics_import() -> None:
    assert "pandas" in loaded_after("import jobs.tasks.recompute")


@pytest.mark.parametrize("command", ["serve", "worker", "migrate", "inbox", "export", "analyze"])
def test_the_cli_imports_only_the_module_of_the_command_it_runs(command: str) -> None:
    out = subprocess.run([sys.executable, "-c", f"import sys, jobs.cli\njobs.cli.build_parser({command!r})\n"
                          "print(sorted(m for m in sys.modules if m.startswith('jobs.commands.')))"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    assert eval(out.stdout) == [f"jobs.commands.{command}"]  # noqa: S307 - our own printed list


def test_serving_loads_no_analytics_library_through_the_cli() -> None:
    assert loaded_after("import jobs.cli\njobs.cli.build_parser('serve')") & HEAVY == set()


def test_help_still_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "jobs.cli", "--help"], cwd=ROOT, capture_output=True, text=True, check=True)
    for command in ("serve", "worker", "migrate", "inbox", "analyze", "recommend", "evaluate-recs", "export"):
        assert command in out.stdout
