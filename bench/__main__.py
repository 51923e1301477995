"""Run every benchmark script in bench/ (bench_*.py); each prints JSON lines. BENCH_QUICK=1 (or --quick): small sizes."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

# Quick mode for development: every figure still printed, at sizes that finish in a few minutes. An explicit
# BENCH_* variable wins over these.
QUICK = {
    "BENCH_CUSTOMERS": "100000", "BENCH_RECOMPUTE_CUSTOMERS": "50000", "BENCH_APPLY_EVENTS": "1000",
    "BENCH_INTAKE_ROUNDS": "2", "BENCH_INTAKE_SECONDS": "2", "BENCH_INTAKE_OPEN_SECONDS": "3",
    "BENCH_WRITEBACK_CUSTOMERS": "2000", "BENCH_RECOMMEND_LINES": "1000000", "BENCH_SCHEDULE_SHOPS": "2000",
}


def main() -> int:
    """Run the scripts one after another and fail if any fails."""
    here = Path(__file__).resolve().parent
    args = sys.argv[1:]
    quick = "--quick" in args or os.environ.get("BENCH_QUICK", "") not in ("", "0")
    only = [a for a in args if a != "--quick"]
    env = {**QUICK, **os.environ} if quick else dict(os.environ)
    failed = 0
    started = time.perf_counter()
    for script in sorted(here.glob("bench_*.py")):
        if only and not any(word in script.stem for word in only):
            continue
        print(f"# {script.name}", file=sys.stderr, flush=True)
        rc = subprocess.call([sys.executable, str(script)], cwd=here.parent, env=env)
        failed += rc != 0
    print(f"# bench: {time.perf_counter() - started:.0f} s{' (quick)' if quick else ''}", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
