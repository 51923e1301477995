"""Sandbox REST handlers for orders, refunds, customers and products, with WordPress pagination and filters."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandboxes.woocommerce.store import API, MAX_ITEMS, SandboxStore, _error

def _page(request: Request, items: list[dict[str, Any]], url_path: str) -> Response:
    """Slice a collection with WP pagination headers (X-WP-Total, X-WP-TotalPages, Link prev/next)."""
    q = request.query_params
    try:
        per_page = int(q.get("per_page", "10"))
        page = int(q.get("page", "1"))
    except ValueError:
        return _error("rest_invalid_param", "Invalid parameter(s): per_page, page", 400)
    if not 1 <= per_page <= MAX_ITEMS:
        return _error("rest_invalid_param", "Invalid parameter(s): per_page (must be between 1 and 100)", 400)
    if page < 1:
        return _error("rest_invalid_param", "Invalid parameter(s): page", 400)
    total = len(items)
    pages = (total + per_page - 1) // per_page
    if page > max(pages, 1):
        return _error("rest_post_invalid_page_number", "The page number requested is larger than the number of pages available.", 400)
    links = []
    base = {k: v for k, v in q.items() if not k.startswith("oauth_") and k not in ("consumer_key", "consumer_secret")}
    if page > 1:
        links.append(f'<{url_path}?{urlencode({**base, "page": page - 1})}>; rel="prev"')
    if page < pages:
        links.append(f'<{url_path}?{urlencode({**base, "page": page + 1})}>; rel="next"')
    headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
    if links:
        headers["Link"] = ", ".join(links)
    return JSONResponse(items[(page - 1) * per_page: page * per_page], headers=headers)


def _date_filter(request: Request, items: list[dict[str, Any]]) -> list[dict[str, Any]] | JSONResponse:
    """after/before (created) and modified_after/modified_before; `dates_are_gmt` picks the *_gmt column."""
    q = request.query_params
    gmt_cols = q.get("dates_are_gmt") in ("true", "1")
    for param, column, newer in (("after", "date_created", True), ("before", "date_created", False),
                                 ("modified_after", "date_modified", True), ("modified_before", "date_modified", False)):
        if param not in q:
            continue
        try:
            bound = datetime.fromisoformat(q[param].replace("Z", "+00:00")).replace(tzinfo=None)
        except ValueError:
            return _error("rest_invalid_param", f"Invalid parameter(s): {param}", 400)
        col = column + ("_gmt" if gmt_cols else "")  # the sandbox's site timezone is UTC
        items = [i for i in items if (datetime.fromisoformat(i[col]) > bound if newer else datetime.fromisoformat(i[col]) < bound)]
    return items


def _order_by(request: Request, items: list[dict[str, Any]], default: str, default_dir: str) -> list[dict[str, Any]]:
    q = request.query_params
    orderby, direction = q.get("orderby", default), q.get("order", default_dir)
    keys: dict[str, Callable[[dict[str, Any]], Any]] = {
        "id": lambda i: i["id"], "include": lambda i: i["id"], "date": lambda i: (i.get("date_created_gmt", ""), i["id"]),
        "registered_date": lambda i: (i.get("date_created_gmt", ""), i["id"]),
        "modified": lambda i: (i.get("date_modified_gmt", ""), i["id"]), "title": lambda i: (i.get("name", ""), i["id"]),
        "name": lambda i: (i.get("last_name", ""), i.get("first_name", ""), i["id"]),
    }
    return sorted(items, key=keys.get(orderby, keys["id"]), reverse=direction == "desc")


async def _body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


async def _batch_body(request: Request) -> dict[str, Any] | Response:
    """A batch request's body, or WooCommerce's answer to one that is not JSON or holds too many items."""
    data = await _body(request)
    if not isinstance(data, dict):
        return _error("rest_invalid_json", "Invalid JSON body passed.", 400)
    if sum(len(data.get(k) or []) for k in ("create", "update", "delete")) > MAX_ITEMS:
        return _error("woocommerce_rest_request_entity_too_large",
                      f"Unable to accept more than {MAX_ITEMS} items for this request.", 413)
    return data


# ----- orders -----
def list_orders(request: Request, s: SandboxStore) -> Response:
    status = request.query_params.get("status", "any")
    items = list(s.orders.values())
    if status == "trash":
        items = list(s.trashed.values())
    elif status == "any":
        items = [o for o in items if o["status"] != "checkout-draft"]  # not shown in the "all" list
    else:
        wanted = set(status.split(","))
        items = [o for o in items if o["status"] in wanted]
    if "customer" in request.query_params:
        items = [o for o in items if str(o["customer_id"]) == request.query_params["customer"]]
    filtered = _date_filter(request, items)
    if isinstance(filtered, Response):
        return filtered
    ordered = _order_by(request, filtered, "date", "desc")
    return _page(request, [s.render("order", o) for o in ordered], f"{s.base_url}{API}/orders")

def get_order(request: Request, s: SandboxStore) -> Response:
    order = s.orders.get(int(request.path_params["id"])) or s.trashed.get(int(request.path_params["id"]))
    if order is None:
        return _error("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)
    return JSONResponse(s.render("order", order))

async def update_order(request: Request, s: SandboxStore) -> Response:
    oid = int(request.path_params["id"])
    if oid not in s.orders:
        return _error("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)
    data = await _body(request) or {}
    fields = {k: v for k, v in data.items() if k in ("status", "customer_note", "customer_id", "billing")}
    return JSONResponse(s.render("order", s.update_order(oid, **fields)))

def delete_order(request: Request, s: SandboxStore) -> Response:
    oid = int(request.path_params["id"])
    with s.lock:
        order = s.orders.pop(oid, None)
        if order is None:
            return _error("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)
        if request.query_params.get("force") not in ("true", "1"):
            order["status"] = "trash"
            s.touch(order)
            s.trashed[oid] = order
    s.emit("order", "deleted", oid)
    return JSONResponse(s.render("order", order))

def list_refunds(request: Request, s: SandboxStore) -> Response:
    oid = int(request.path_params["id"])
    if oid not in s.orders and oid not in s.trashed:
        return _error("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)
    return _page(request, list(reversed(s.refunds.get(oid, []))), f"{s.base_url}{API}/orders/{oid}/refunds")

# ----- customers -----
def list_customers(request: Request, s: SandboxStore) -> Response:
    q = request.query_params
    items = list(s.customers.values())
    role = q.get("role", "customer")
    if role != "all":
        items = [c for c in items if c.get("role") == role]
    if "email" in q:
        items = [c for c in items if c["email"] == q["email"]]
    ordered = _order_by(request, items, "name", "asc")
    return _page(request, [s.render("customer", c) for c in ordered], f"{s.base_url}{API}/customers")

def get_customer(request: Request, s: SandboxStore) -> Response:
    customer = s.customers.get(int(request.path_params["id"]))
    if customer is None:
        return _error("woocommerce_rest_invalid_id", "Invalid resource ID.", 404)
    return JSONResponse(s.render("customer", customer))

async def put_customer(request: Request, s: SandboxStore) -> Response:
    cid = int(request.path_params["id"])
    if cid not in s.customers:
        return _error("woocommerce_rest_invalid_id", "Invalid resource ID.", 404)
    return JSONResponse(s.render("customer", s.update_customer(cid, await _body(request) or {})))

async def create_customer(request: Request, s: SandboxStore) -> Response:
    data = await _body(request) or {}
    if not data.get("email"):
        return _error("rest_missing_callback_param", "Missing parameter(s): email", 400)
    customer = s.create_customer(data["email"], data.get("first_name", ""), data.get("last_name", ""))
    return JSONResponse(s.render("customer", customer), status_code=201)

def delete_customer(request: Request, s: SandboxStore) -> Response:
    if request.query_params.get("force") not in ("true", "1"):
        return _error("woocommerce_rest_trash_not_supported", "Customers do not support trashing.", 501)
    cid = int(request.path_params["id"])
    customer = s.customers.pop(cid, None)
    if customer is None:
        return _error("woocommerce_rest_invalid_id", "Invalid resource ID.", 404)
    s.emit("customer", "deleted", cid)
    return JSONResponse(s.render("customer", customer))

async def batch_customers(request: Request, s: SandboxStore) -> Response:
    data = await _batch_body(request)
    if isinstance(data, Response):
        return data
    out: dict[str, list[Any]] = {}
    s.batch_log.append(("customers", [i.get("id") if isinstance(i, dict) else None for i in data.get("update") or []]))
    for item in data.get("update") or []:
        cid = item.get("id") if isinstance(item, dict) else None
        if not isinstance(cid, int) or cid not in s.customers:
            out.setdefault("update", []).append({"id": cid if isinstance(cid, int) else 0, "error": {
                "code": "woocommerce_rest_invalid_id", "message": "Invalid resource ID.", "data": {"status": 400}}})
            continue
        changes = {k: v for k, v in item.items() if k != "id"}
        out.setdefault("update", []).append(s.render("customer", s.update_customer(cid, changes)))
    for item in data.get("create") or []:
        out.setdefault("create", []).append(s.render("customer", s.create_customer(item.get("email", ""))))
    return JSONResponse(out)

# ----- products -----
def list_products(request: Request, s: SandboxStore) -> Response:
    status = request.query_params.get("status", "any")
    items = [p for p in s.products.values() if p["status"] == status or (status == "any" and p["status"] != "trash")]
    filtered = _date_filter(request, items)
    if isinstance(filtered, Response):
        return filtered
    ordered = _order_by(request, filtered, "date", "desc")
    return _page(request, [s.render("product", p) for p in ordered], f"{s.base_url}{API}/products")

def get_product(request: Request, s: SandboxStore) -> Response:
    product = s.products.get(int(request.path_params["id"]))
    if product is None:
        return _error("woocommerce_rest_product_invalid_id", "Invalid ID.", 404)
    return JSONResponse(s.render("product", product))

def list_variations(request: Request, s: SandboxStore) -> Response:
    pid = int(request.path_params["id"])
    if pid not in s.products:
        return _error("woocommerce_rest_product_invalid_id", "Invalid ID.", 404)
    ordered = _order_by(request, list(s.variations.get(pid, {}).values()), "date", "desc")
    return _page(request, ordered, f"{s.base_url}{API}/products/{pid}/variations")

async def batch_products(request: Request, s: SandboxStore) -> Response:
    data = await _batch_body(request)
    if isinstance(data, Response):
        return data
    out: dict[str, list[Any]] = {"update": []}
    s.batch_log.append(("products", [i.get("id") if isinstance(i, dict) else None for i in data.get("update") or []]))
    for item in data.get("update") or []:
        product = s.products.get(int(item.get("id") or 0)) if isinstance(item, dict) else None
        if product is None:
            out["update"].append({"id": item.get("id", 0) if isinstance(item, dict) else 0, "error": {
                "code": "woocommerce_rest_product_invalid_id", "message": "Invalid ID.", "data": {"status": 400}}})
            continue
        with s.lock:
            s._update_meta(product, item.get("meta_data") or [])
            s.touch(product)
        s.emit("product", "updated", product["id"])
        out["update"].append(s.render("product", product))
    return JSONResponse(out)
