"""Evaluate parsed merchant segment rules over the customer frame, vectorized (missing values never match)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from connector.segment_rules import ATTRIBUTES, BoolOp, Compare, Literal, Node, Not, Rule, parse_rule


def resolve_date(literal: Literal, as_of: pd.Timestamp) -> pd.Timestamp:
    """Turn an absolute, relative or `today` date literal into a day, relative to as_of."""
    today = as_of.normalize()
    if literal.kind == "today":
        return today
    if literal.kind == "reldate":
        assert isinstance(literal.value, tuple)  # the parser makes reldate values (amount, unit)
        amount, unit = literal.value
        if unit == "d":
            return today + pd.Timedelta(days=amount)
        if unit == "w":
            return today + pd.Timedelta(weeks=amount)
        return today + pd.DateOffset(months=amount if unit == "m" else 12 * amount)
    return pd.Timestamp(str(literal.value)).normalize()


def evaluate(rule: Rule | str, frame: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    """Boolean membership of every row of frame; missing values never match a comparison."""
    parsed = parse_rule(rule) if isinstance(rule, str) else rule
    return _eval(parsed.tree, frame, pd.Timestamp(as_of)).astype(bool)


def _eval(node: Node, frame: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    if isinstance(node, BoolOp):
        left, right = _eval(node.left, frame, as_of), _eval(node.right, frame, as_of)
        return (left & right) if node.op == "AND" else (left | right)
    if isinstance(node, Not):
        return ~_eval(node.operand, frame, as_of)
    return _compare(node, frame, as_of)


def _compare(node: Compare, frame: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    if node.attr == "customer_id" and node.attr not in frame.columns:
        column = pd.Series(frame.index.astype(str), index=frame.index)
    elif node.attr in frame.columns:
        column = frame[node.attr]
    else:
        return pd.Series(False, index=frame.index) if node.op != "isnull" else pd.Series(True, index=frame.index)
    kind = ATTRIBUTES[node.attr]
    present = column.notna()
    if node.op == "isnull":
        return ~present
    if node.op == "notnull":
        return present
    if node.op in ("contains", "notcontains"):
        wanted = str(node.values[0].value).casefold()
        # Explode over positions, not labels, so the result lines up even with a non-unique index.
        exploded = column.reset_index(drop=True).explode()
        hit = exploded.astype("string").str.casefold().eq(wanted).fillna(False)
        found = hit.groupby(level=0, sort=False).any().reindex(range(len(frame)), fill_value=False)
        mask = pd.Series(found.to_numpy(dtype=bool), index=frame.index)
        return ~mask if node.op == "notcontains" else mask
    values: pd.Series
    bounds: list[Any]
    if kind == "date":
        values = pd.to_datetime(column).dt.normalize()
        bounds = [resolve_date(v, as_of) for v in node.values]
    elif kind == "string":
        # Text comparisons ignore case: merchants type 'champions' as often as 'Champions'.
        values = column.astype("string").str.casefold()
        bounds = [str(node.values[0].value).casefold()]
    else:
        values = pd.to_numeric(column, errors="coerce").astype(float)
        bounds = [float(str(v.value)) for v in node.values]
    if node.op == "between":
        low, high = sorted(bounds)
        result = (values >= low) & (values <= high)
    else:
        bound = bounds[0]
        result = {
            "=": lambda: values == bound, "!=": lambda: values != bound, ">": lambda: values > bound,
            ">=": lambda: values >= bound, "<": lambda: values < bound, "<=": lambda: values <= bound,
        }[node.op]()
    return pd.Series(np.asarray(result.fillna(False), dtype=bool) & present.to_numpy(), index=frame.index)
