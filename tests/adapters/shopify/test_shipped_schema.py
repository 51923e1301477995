"""The schema the sandbox ships with is the real 2026-07 Admin schema, descriptions aside."""
from __future__ import annotations

import gzip
import json
from typing import Any

from sandboxes.shopify.app import DEFAULT_SCHEMA
from tests.adapters.shopify.support import SCHEMA


def without_descriptions(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_descriptions(v) for k, v in value.items() if k != "description"}
    if isinstance(value, list):
        return [without_descriptions(v) for v in value]
    return value


def test_the_shipped_schema_is_the_shared_one_without_descriptions() -> None:
    shipped = json.loads(gzip.decompress(DEFAULT_SCHEMA.read_bytes()))
    real = without_descriptions(json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert shipped == real
    assert len(shipped["data"]["__schema"]["types"]) > 1000
