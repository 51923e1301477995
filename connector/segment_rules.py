"""Parse and evaluate merchant segment rules (a ShopifyQL-like subset) without eval, vectorized over features."""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Union

import numpy as np
import pandas as pd

# Attribute name -> kind. The names are columns of the customer frame built by jobs.analyze;
# the Shopify segment-editor names (number_of_orders, amount_spent, ...) are used where they overlap.
ATTRIBUTES: dict[str, str] = {
    "number_of_orders": "number",
    "amount_spent": "number",
    "gross_spent": "number",
    "aov": "number",
    "discount_share": "number",
    "items_per_order": "number",
    "days_since_last_order": "number",
    "avg_days_between_orders": "number",
    "predicted_clv": "number",
    "predicted_purchases": "number",
    "predicted_aov": "number",
    "p_alive": "number",
    "churn_risk": "number",
    "rfm_recency": "number",
    "rfm_frequency": "number",
    "rfm_monetary": "number",
    "rfm_score": "number",
    "first_order_date": "date",
    "last_order_date": "date",
    "expected_next_order_date": "date",
    "rfm_group": "string",
    "customer_id": "string",
    "categories_bought": "set",
}

KEYWORDS = {"AND", "OR", "NOT", "BETWEEN", "IS", "NULL", "CONTAINS", "TODAY"}
TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<date>\d{4}-\d{2}-\d{2}(?![\w-]))
      | (?P<reldate>[+-]\d+[dwmy](?!\w))
      | (?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?![\w.]))
      | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<op>!=|<>|>=|<=|=|>|<)
      | (?P<lparen>\()
      | (?P<rparen>\))
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)""",
    re.VERBOSE,
)


class RuleError(ValueError):
    """A rule that does not parse or does not type-check; the message points at the bad token."""

    def __init__(self, message: str, rule: str, position: int, hint: str = "") -> None:
        self.reason = message
        self.rule = rule
        self.position = position
        super().__init__(f"{message} at column {position + 1}{hint}\n  {rule}\n  {' ' * position}^")


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


@dataclass(frozen=True)
class Literal:
    kind: str  # number, string, date, reldate, today
    value: object
    pos: int


@dataclass(frozen=True)
class Compare:
    attr: str
    op: str  # = != > >= < <= between isnull notnull contains notcontains
    values: tuple[Literal, ...]


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND / OR
    left: "Node"
    right: "Node"


@dataclass(frozen=True)
class Not:
    operand: "Node"


Node = Union[Compare, BoolOp, Not]


@dataclass(frozen=True)
class Rule:
    text: str
    tree: Node


def tokenize(text: str) -> list[Token]:
    """Split a rule into tokens, raising RuleError at the first character that fits no token."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if match is None:
            raise RuleError(f"unexpected character {text[pos]!r}", text, pos)
        kind = match.lastgroup or ""
        if kind != "ws":
            word = match.group()
            if kind == "ident" and word.upper() in KEYWORDS:
                kind, word = word.upper(), word.upper()
            tokens.append(Token(kind, word, pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    """Recursive descent: or := and (OR and)*; and := not (AND not)*; not := NOT not | '(' or ')' | cmp."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def fail(self, message: str, token: Token) -> RuleError:
        return RuleError(message, self.text, token.pos)

    def expect(self, kind: str, what: str) -> Token:
        token = self.peek()
        if token.kind != kind:
            raise self.fail(f"expected {what}, found {describe(token)}", token)
        return self.take()

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.fail("empty rule", self.peek())
        node = self.parse_or()
        if self.peek().kind != "end":
            raise self.fail(f"expected AND, OR or end of rule, found {describe(self.peek())}", self.peek())
        return node

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self.peek().kind == "OR":
            self.take()
            node = BoolOp("OR", node, self.parse_and())
        return node

    def parse_and(self) -> Node:
        node = self.parse_not()
        while self.peek().kind == "AND":
            self.take()
            node = BoolOp("AND", node, self.parse_not())
        return node

    def parse_not(self) -> Node:
        token = self.peek()
        if token.kind == "NOT":
            self.take()
            return Not(self.parse_not())
        if token.kind == "lparen":
            self.take()
            node = self.parse_or()
            self.expect("rparen", "')'")
            return node
        return self.parse_comparison()

    def parse_comparison(self) -> Compare:
        token = self.peek()
        if token.kind != "ident":
            raise self.fail(f"expected an attribute, found {describe(token)}", token)
        self.take()
        name = token.text.lower()
        if name not in ATTRIBUTES:
            close = difflib.get_close_matches(name, list(ATTRIBUTES), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise RuleError(f"unknown attribute {token.text!r}", self.text, token.pos, hint)
        kind = ATTRIBUTES[name]
        op_token = self.peek()
        if op_token.kind == "op":
            self.take()
            op = "!=" if op_token.text == "<>" else op_token.text
            if kind == "set":
                raise self.fail(f"{name} is a set: use CONTAINS", op_token)
            if kind == "string" and op not in ("=", "!="):
                raise self.fail(f"{name} is text: only = and != apply", op_token)
            return Compare(name, op, (self.parse_value(kind),))
        if op_token.kind == "BETWEEN":
            self.take()
            if kind not in ("number", "date"):
                raise self.fail(f"BETWEEN needs a number or date attribute, {name} is {kind}", op_token)
            low = self.parse_value(kind)
            self.expect("AND", "AND")
            return Compare(name, "between", (low, self.parse_value(kind)))
        if op_token.kind == "IS":
            self.take()
            negate = self.peek().kind == "NOT"
            if negate:
                self.take()
            self.expect("NULL", "NULL")
            return Compare(name, "notnull" if negate else "isnull", ())
        if op_token.kind in ("CONTAINS", "NOT"):
            self.take()
            negate = op_token.kind == "NOT"
            if negate:
                self.expect("CONTAINS", "CONTAINS")
            if kind != "set":
                raise self.fail(f"CONTAINS needs a set attribute, {name} is {kind}", op_token)
            return Compare(name, "notcontains" if negate else "contains", (self.parse_value("string"),))
        raise self.fail(f"expected an operator after {name}, found {describe(op_token)}", op_token)

    def parse_value(self, kind: str) -> Literal:
        token = self.take()
        if kind == "number" and token.kind == "number":
            return Literal("number", float(token.text), token.pos)
        if kind in ("string", "set") and token.kind == "string":
            body = token.text[1:-1]
            return Literal("string", re.sub(r"\\(.)", r"\1", body), token.pos)
        if kind == "date" and token.kind == "date":
            try:
                return Literal("date", pd.Timestamp(token.text), token.pos)
            except ValueError:
                raise RuleError(f"invalid date {token.text!r}", self.text, token.pos) from None
        if kind == "date" and token.kind == "reldate":
            return Literal("reldate", (int(token.text[:-1]), token.text[-1]), token.pos)
        if kind == "date" and token.kind == "TODAY":
            return Literal("today", None, token.pos)
        wanted = {"number": "a number", "string": "a quoted string", "set": "a quoted string",
                  "date": "a date (2024-01-01, -30d, -3m, -1y or today)"}[kind]
        raise RuleError(f"expected {wanted}, found {describe(token)}", self.text, token.pos)


def describe(token: Token) -> str:
    """How a token is named in an error message."""
    return "end of rule" if token.kind == "end" else repr(token.text)


def parse_rule(text: str) -> Rule:
    """Parse a rule into a tree; raise RuleError with a caret message if it is not valid."""
    return Rule(text, _Parser(text).parse())


def resolve_date(literal: Literal, as_of: pd.Timestamp) -> pd.Timestamp:
    """Turn an absolute, relative or `today` date literal into a day, relative to as_of."""
    today = as_of.normalize()
    if literal.kind == "today":
        return today
    if literal.kind == "reldate":
        amount, unit = literal.value  # type: ignore[misc]
        if unit == "d":
            return today + pd.Timedelta(days=amount)
        if unit == "w":
            return today + pd.Timedelta(weeks=amount)
        return today + pd.DateOffset(months=amount if unit == "m" else 12 * amount)
    return pd.Timestamp(literal.value).normalize()  # type: ignore[arg-type]


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
    if kind == "date":
        values = pd.to_datetime(column).dt.normalize()
        bounds = [resolve_date(v, as_of) for v in node.values]
    elif kind == "string":
        # Text comparisons ignore case: merchants type 'champions' as often as 'Champions'.
        values = column.astype("string").str.casefold()
        bounds = [str(node.values[0].value).casefold()]
    else:
        values = pd.to_numeric(column, errors="coerce").astype(float)
        bounds = [float(v.value) for v in node.values]  # type: ignore[arg-type]
    if node.op == "between":
        low, high = sorted(bounds)  # type: ignore[type-var]
        result = (values >= low) & (values <= high)
    else:
        bound = bounds[0]
        result = {
            "=": lambda: values == bound, "!=": lambda: values != bound, ">": lambda: values > bound,
            ">=": lambda: values >= bound, "<": lambda: values < bound, "<=": lambda: values <= bound,
        }[node.op]()
    return pd.Series(np.asarray(result.fillna(False), dtype=bool) & present.to_numpy(), index=frame.index)
