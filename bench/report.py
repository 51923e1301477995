"""One JSON line per figure, as every bench prints them."""
from __future__ import annotations

import json
from typing import Any


def emit(name: str, value: float, unit: str, **extra: Any) -> None:
    """One figure: name, value (3 decimals), unit and any extra fields."""
    print(json.dumps({"name": name, "value": round(value, 3), "unit": unit, **extra}), flush=True)
