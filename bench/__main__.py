"""Run every benchmark script in bench/ (bench_*.py); each prints JSON lines."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> int:
    """Run the scripts one after another and fail if any fails."""
    here = Path(__file__).resolve().parent
    failed = 0
    only = sys.argv[1:]
    for script in sorted(here.glob("bench_*.py")):
        if only and not any(word in script.stem for word in only):
            continue
        print(f"# {script.name}", file=sys.stderr, flush=True)
        rc = subprocess.call([sys.executable, str(script)], cwd=here.parent)
        failed += rc != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
