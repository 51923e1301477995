"""Parse merchant segment rules (a ShopifyQL-like subset) without eval; jobs.analytics.rules evaluates them."""
from __future__ import annotations

import calendar
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

# Attribute name -> kind. The names are columns of the customer frame built by jobs.analytics.analyze;
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
        return self.chain("OR", self.parse_and)

    def parse_and(self) -> Node:
        return self.chain("AND", self.parse_not)

    def chain(self, op: str, operand: Callable[[], Node]) -> Node:
        """operand (op operand)*, grouped from the left."""
        node = operand()
        while self.peek().kind == op:
            self.take()
            node = BoolOp(op, node, operand())
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
            year, month, day = (int(part) for part in token.text.split("-"))
            # Within the years the analytics' timestamps span (pandas: 1677-09-21 to 2262-04-11), and a real day.
            if not (1678 <= year <= 2261 and 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
                raise RuleError(f"invalid date {token.text!r}", self.text, token.pos)
            return Literal("date", token.text, token.pos)  # an ISO day; evaluation turns it into a timestamp
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
