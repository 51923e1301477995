"""GraphQL documents validated against a saved Shopify Admin schema (introspection JSON, gzipped or not)."""
from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path
from typing import Any

from graphql import (GraphQLError, GraphQLSchema, NoDeprecatedCustomRule, build_client_schema, parse,
                     specified_rules, validate)


def load_introspection(path: str | Path) -> dict[str, Any]:
    """The introspection result ({"__schema": ...}) in a .json or .json.gz file, with or without {"data": ...}."""
    raw = Path(path).read_bytes()
    data: dict[str, Any] = json.loads(gzip.decompress(raw) if str(path).endswith(".gz") else raw)
    return data.get("data", data)


@functools.lru_cache(maxsize=4)
def load_schema(path: str) -> GraphQLSchema:
    """The schema in `path`, built once per path.

    assume_valid: graphql-core >= 3.3 checks that an implementation field is not deprecated when the interface field
    is not, which Shopify's published schema breaks (e.g. Customer.hasTimelineComment), and validate() would raise.
    Skipping the schema's self-check does not change how documents are validated.
    """
    return build_client_schema(load_introspection(path), assume_valid=True)


def validate_document(document: str, schema_path: str | Path, forbid_deprecated: bool = False) -> list[str]:
    """Readable errors of `document` on the schema; empty when valid.

    forbid_deprecated also reports deprecated fields, arguments and enum values (graphql-core's
    NoDeprecatedCustomRule), e.g. Customer.email, deprecated for defaultEmailAddress.emailAddress since 2025-10.
    """
    schema = load_schema(str(schema_path))
    try:
        ast = parse(document)
    except GraphQLError as exc:
        return [f"syntax: {exc.message} at {exc.locations}"]
    rules = [*specified_rules, *([NoDeprecatedCustomRule] if forbid_deprecated else [])]
    out = []
    for error in validate(schema, ast, rules):
        where = ",".join(f"{at.line}:{at.column}" for at in error.locations or [])
        out.append(f"{where} {error.message}".strip())
    return out
