"""The sandbox's merchant-facing Admin API: customer segments, Flow triggers (checked against the app's trigger
extensions) and app billing (subscriptions a merchant approves or declines on a confirmation page)."""
from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sandboxes.shopify.payloads import gid, iso, parse_gid
from sandboxes.shopify.store import Store, UserError, user_error

EXTENSIONS = Path(__file__).resolve().parents[2] / "extensions"
# The segment editor's grammar is large; the sandbox accepts what we send (tag conditions joined by AND / OR)
# and refuses anything else, as Shopify refuses a query it cannot parse.
TAG_CONDITION = r"customer_tags\s+(?:NOT\s+)?CONTAINS\s+'([^'\\]{1,255})'"
SEGMENT_QUERY = re.compile(rf"^\s*{TAG_CONDITION}(?:\s+(?:AND|OR)\s+{TAG_CONDITION})*\s*$")
MAX_SEGMENT_NAME = 255
# Flow custom field types we use, and what a payload value of each must be (shopify.dev/docs/apps/build/flow/triggers/reference).
REFERENCE_KEYS = {"customer_reference": "customer_id", "order_reference": "order_id", "product_reference": "product_id"}


def trigger_definitions(folder: Path = EXTENSIONS) -> dict[str, dict[str, Any]]:
    """Every flow_trigger extension in the app: handle -> {name, fields: [{type, key}]}."""
    found = {}
    for path in sorted(folder.glob("*/shopify.extension.toml")):
        config = tomllib.loads(path.read_text(encoding="utf-8"))
        for extension in config.get("extensions", []):
            if extension.get("type") == "flow_trigger":
                found[extension["handle"]] = {"name": extension["name"],
                                              "fields": list(config.get("settings", {}).get("fields", []))}
    return found


def payload_problems(definition: Mapping[str, Any], payload: Any) -> list[str]:
    """Why Flow would refuse this payload for the trigger (empty when it matches the definition)."""
    if not isinstance(payload, Mapping):
        return ["payload must be a JSON object"]
    problems, expected = [], set()
    for spec in definition["fields"]:
        key = REFERENCE_KEYS.get(spec["type"]) or spec["key"]
        expected.add(key)
        if key not in payload:
            problems.append(f"missing field {key}")
            continue
        value, kind = payload[key], spec["type"]
        ok = {
            "customer_reference": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
            "single_line_text_field": lambda v: isinstance(v, str) and "\n" not in v and len(v) <= 255,
            "number_decimal": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "boolean": lambda v: isinstance(v, bool),
            "email": lambda v: isinstance(v, str) and "@" in v,
        }.get(kind, lambda v: False)(value)
        if not ok:
            problems.append(f"field {key} is not a valid {kind}: {value!r}")
    problems.extend(f"unknown field {key}" for key in payload if key not in expected)
    return problems


@dataclass
class MerchantApps:
    """Segments, Flow runs and app subscriptions of one sandbox shop (guarded by the store's lock)."""

    store: Store
    definitions: dict[str, dict[str, Any]] = field(default_factory=trigger_definitions)
    segments: dict[int, dict[str, Any]] = field(default_factory=dict)
    flow_runs: list[dict[str, Any]] = field(default_factory=list)  # accepted flowTriggerReceive calls
    flow_refused: list[dict[str, Any]] = field(default_factory=list)
    app_subscriptions: dict[int, dict[str, Any]] = field(default_factory=dict)

    # ------------------------------------------------------------------ segments
    def segment_view(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return {"__typename": "Segment", "id": gid("Segment", record["id"]), "name": record["name"], "query": record["query"],
                "creationDate": iso(record["created"]), "lastEditDate": iso(record["edited"])}

    def _check_segment(self, name: str | None, query: str | None, ignore: int | None = None) -> list[UserError]:
        errors = []
        if name is not None:
            if not name.strip() or len(name) > MAX_SEGMENT_NAME:
                errors.append(user_error("Name is invalid", ["name"]))
            elif any(s["name"].lower() == name.lower() for k, s in self.segments.items() if k != ignore):
                errors.append(user_error("Name has already been taken", ["name"]))
        if query is not None and not SEGMENT_QUERY.match(query):
            errors.append(user_error(f"Query is invalid: {query[:80]}", ["query"]))
        return errors

    def segment_create(self, name: str, query: str) -> tuple[dict[str, Any] | None, list[UserError]]:
        errors = self._check_segment(name, query)
        if errors:
            return None, errors
        now = datetime.now(timezone.utc)
        record = {"id": self.store.ids(), "name": name, "query": query, "created": now, "edited": now}
        self.segments[record["id"]] = record
        return self.segment_view(record), []

    def _segment(self, segment_gid: str) -> dict[str, Any] | None:
        parsed = parse_gid(segment_gid)
        return self.segments.get(parsed[1]) if parsed and parsed[0] == "Segment" else None

    def segment_update(self, id: str, name: str | None = None, query: str | None = None) -> tuple[dict[str, Any] | None, list[UserError]]:
        record = self._segment(id)
        if record is None:
            return None, [user_error("Segment does not exist", ["id"])]
        errors = self._check_segment(name, query, ignore=record["id"])
        if errors:
            return None, errors
        record.update({k: v for k, v in (("name", name), ("query", query)) if v is not None})
        record["edited"] = datetime.now(timezone.utc)
        return self.segment_view(record), []

    def segment_delete(self, id: str) -> tuple[str | None, list[UserError]]:
        record = self._segment(id)
        if record is None:
            return None, [user_error("Segment does not exist", ["id"])]
        del self.segments[record["id"]]
        return id, []

    def members(self, name: str) -> set[int]:
        """Customers a segment holds now: its tag conditions evaluated on the customers' tags."""
        record = next(s for s in self.segments.values() if s["name"] == name)
        parts = re.split(r"\s+(AND|OR)\s+", record["query"].strip())
        out: set[int] = set()
        for cid, customer in self.store.customers.items():
            tags = {t.lower() for t in customer["tags"]}
            result, joiner = None, "AND"
            for part in parts:
                if part in ("AND", "OR"):
                    joiner = part
                    continue
                negate = " NOT " in part
                tag = re.findall(r"'([^']*)'", part)[0].lower()
                value = (tag in tags) != negate
                result = value if result is None else (result and value if joiner == "AND" else result or value)
            if result:
                out.add(cid)
        return out

    # ------------------------------------------------------------------ Flow
    def flow_trigger_receive(self, handle: str | None, payload: Any) -> list[UserError]:
        definition = self.definitions.get(handle or "")
        if definition is None:
            self.flow_refused.append({"handle": handle, "payload": payload, "problems": ["unknown handle"]})
            return [user_error(f"Invalid handle '{handle}'", ["handle"])]
        problems = payload_problems(definition, payload)
        # A size cap on trigger payloads, from memory (not verified in platforms/shopify.md); ours are < 1 KB.
        if len(json.dumps(payload).encode()) > 50_000:
            problems.append("payload is larger than 50 KB")
        if problems:
            self.flow_refused.append({"handle": handle, "payload": payload, "problems": problems})
            return [user_error("; ".join(problems), ["payload"])]
        self.flow_runs.append({"handle": handle, "payload": dict(payload), "at": datetime.now(timezone.utc)})
        return []

    # ------------------------------------------------------------------ billing
    def subscription_view(self, record: Mapping[str, Any]) -> dict[str, Any]:
        pricing = {"__typename": "AppRecurringPricing", "planHandle": record.get("plan_handle"), "interval": record["interval"],
                   "price": {"amount": str(record["price"]), "currencyCode": record["currency"]}, "discount": None}
        return {"__typename": "AppSubscription", "id": gid("AppSubscription", record["id"]), "name": record["name"],
                "status": record["status"], "test": record["test"], "trialDays": record["trial_days"],
                "createdAt": iso(record["created"]), "currentPeriodEnd": None, "returnUrl": record["return_url"],
                "lineItems": [{"id": gid("AppSubscriptionLineItem", record["id"]), "plan": {"pricingDetails": pricing}}]}

    def app_subscription_create(self, base: str, name: str, lineItems: list[dict[str, Any]], returnUrl: str,
                                trialDays: int | None = None, test: bool | None = None,
                                **_ignored: Any) -> dict[str, Any]:
        def refused(message: str, path: list[str]) -> dict[str, Any]:
            return {"appSubscription": None, "confirmationUrl": None, "userErrors": [user_error(message, path)]}

        if not re.match(r"^https?://[^/\s]+", returnUrl or ""):
            return refused("Return URL must be an absolute URL", ["returnUrl"])
        if len(lineItems) != 1 or not (lineItems[0].get("plan") or {}).get("appRecurringPricingDetails"):
            return refused("A subscription needs one recurring line item", ["lineItems"])
        details = lineItems[0]["plan"]["appRecurringPricingDetails"]
        try:
            price = Decimal(str(details["price"]["amount"]))
        except (InvalidOperation, KeyError):
            return refused("Price is invalid", ["lineItems", "0", "plan", "price"])
        if price <= 0 or (trialDays or 0) < 0:
            return refused("Price must be greater than 0 and trial days not negative", ["lineItems"])
        record = {"id": self.store.ids(), "name": name, "price": price, "currency": details["price"]["currencyCode"],
                  "interval": details.get("interval") or "EVERY_30_DAYS", "trial_days": trialDays or 0,
                  "test": bool(test), "return_url": returnUrl, "status": "PENDING",
                  "created": datetime.now(timezone.utc), "plan_handle": None}
        self.app_subscriptions[record["id"]] = record
        return {"appSubscription": self.subscription_view(record), "userErrors": [],
                "confirmationUrl": f"{base}/sandbox/charges/{record['id']}/confirm"}

    def decide(self, ident: int, approve: bool) -> str | None:
        """The merchant approves or declines on the confirmation page; returns where Shopify sends them back."""
        record = self.app_subscriptions.get(ident)
        if record is None or record["status"] != "PENDING":
            return None
        record["status"] = "ACTIVE" if approve else "DECLINED"
        if approve:  # one active subscription per app: approving a new one replaces the old
            for other in self.app_subscriptions.values():
                if other is not record and other["status"] == "ACTIVE":
                    other["status"] = "CANCELLED"
        sep = "&" if "?" in record["return_url"] else "?"
        return f"{record['return_url']}{sep}charge_id={record['id']}"

    def managed_subscribe(self, plan_handle: str, name: str, price: Decimal, currency: str = "USD") -> int:
        """Shopify App Pricing: the merchant picked a plan on Shopify's own page; no charge call from the app."""
        record = {"id": self.store.ids(), "name": name, "price": price, "currency": currency, "interval": "EVERY_30_DAYS",
                  "trial_days": 0, "test": False, "return_url": "https://admin.shopify.com", "status": "PENDING",
                  "created": datetime.now(timezone.utc), "plan_handle": plan_handle}
        self.app_subscriptions[record["id"]] = record
        self.decide(record["id"], True)
        return int(record["id"])

    def installation(self) -> dict[str, Any]:
        active = [self.subscription_view(s) for s in self.app_subscriptions.values() if s["status"] == "ACTIVE"]
        return {"__typename": "AppInstallation", "id": gid("AppInstallation", 1), "activeSubscriptions": active}

    # ------------------------------------------------------------------ resolvers
    def query_root(self) -> dict[str, Any]:
        from sandboxes.shopify import graphql as gql

        def segments(_info: Any, **args: Any) -> dict[str, Any]:
            rows = [dict(s, updated_at=s["edited"]) for s in self.segments.values()]
            return gql.connection(rows, self.segment_view, sortKey="ID", **{k: v for k, v in args.items() if k in ("first", "after")})

        return {"segments": segments,
                "segment": lambda _i, id: (lambda r: self.segment_view(r) if r else None)(self._segment(id)),
                "currentAppInstallation": lambda _i: self.installation()}

    def mutation_root(self, base: str) -> dict[str, Any]:
        def payload(result: Any, errors: list[UserError], key: str) -> dict[str, Any]:
            return {key: result, "userErrors": errors}

        return {
            "segmentCreate": lambda _i, name, query: payload(*self.segment_create(name, query), "segment"),
            "segmentUpdate": lambda _i, id, name=None, query=None: payload(*self.segment_update(id, name, query), "segment"),
            "segmentDelete": lambda _i, id: payload(*self.segment_delete(id), "deletedSegmentId"),
            "flowTriggerReceive": lambda _i, handle=None, payload=None, body=None: {
                "userErrors": self.flow_trigger_receive(handle, payload if body is None else json.loads(body))},
            "appSubscriptionCreate": lambda _i, **args: self.app_subscription_create(base, **args),
        }

    def routes(self) -> list[Any]:
        """The confirmation page: `?decision=decline` declines, anything else approves; back to the app's return URL."""
        from starlette.requests import Request
        from starlette.responses import PlainTextResponse, RedirectResponse, Response
        from starlette.routing import Route

        async def confirm(request: Request) -> Response:
            with self.store.lock:
                target = self.decide(request.path_params["ident"], request.query_params.get("decision") != "decline")
            if target is None:
                return PlainTextResponse("This charge is not pending", status_code=404)
            return RedirectResponse(target, status_code=302)

        return [Route("/sandbox/charges/{ident:int}/confirm", confirm, methods=["GET"])]
