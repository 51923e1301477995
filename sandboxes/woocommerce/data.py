"""A generated WooCommerce store: customers (and guests), products with variations, a year of orders, refunds."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

FIRST = ["Ana", "Ben", "Chloé", "Dmitri", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kai", "Lena", "Mo", "Nora", "Omar", "Pia"]
LAST = ["Silva", "Doe", "Martin", "Nguyen", "Kowalski", "Rossi", "Schmidt", "Haddad", "Okafor", "Berg"]
PRODUCTS = ["Premium Quality Tee", "Ship Your Idea Hoodie", "Woo Album #2", "Woo Ninja Poster", "Travel Mug", "Canvas Tote",
            "Wool Beanie", "Trail Socks", "Rain Jacket", "Water Bottle", "Notebook", "Sticker Pack"]
CATEGORIES = ["Clothing", "Music", "Posters", "Accessories"]
# Weighted status mix of a real store: mostly completed, a tail of every other core status.
STATUSES = ["completed"] * 70 + ["processing"] * 8 + ["refunded"] * 3 + ["cancelled"] * 4 + ["failed"] * 3 + \
    ["pending"] * 4 + ["on-hold"] * 3


def gmt(value: datetime) -> str:
    """WooCommerce's `*_gmt` format: naive ISO seconds in UTC."""
    return value.astimezone(timezone.utc).replace(tzinfo=None, microsecond=0).isoformat()


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def _address(first: str, last: str, email: str | None = None) -> dict[str, str]:
    address = {"first_name": first, "last_name": last, "company": "", "address_1": "969 Market", "address_2": "",
               "city": "San Francisco", "state": "CA", "postcode": "94103", "country": "US"}
    if email is not None:
        address.update(email=email, phone="(555) 555-5555")
    return address


def customer(cid: int, first: str, last: str, email: str, created: datetime) -> dict[str, Any]:
    """A customer as `GET /customers/<id>` returns it."""
    return {
        "id": cid, "date_created": gmt(created), "date_created_gmt": gmt(created),
        "date_modified": gmt(created), "date_modified_gmt": gmt(created),
        "email": email, "first_name": first, "last_name": last, "role": "customer", "username": email.split("@")[0],
        "billing": _address(first, last, email), "shipping": _address(first, last), "is_paying_customer": False,
        "avatar_url": "https://secure.gravatar.com/avatar/0?s=96", "meta_data": [],
    }


def generate(seed: int = 7, now: datetime | None = None, customers: int = 40, guests: int = 15,
             orders: int = 260) -> dict[str, Any]:
    """A deterministic store for `seed`, with every date at least an hour before `now`."""
    rng = random.Random(seed)
    now = (now or datetime(2026, 11, 23, tzinfo=timezone.utc)).replace(microsecond=0)
    start = now - timedelta(days=365)
    out: dict[str, Any] = {"customers": [], "products": [], "variations": {}, "orders": [], "refunds": {}}
    next_post = iter(range(100, 1_000_000))  # products, variations, orders and refunds share WordPress post ids

    for i in range(products := len(PRODUCTS)):
        pid = next(next_post)
        created = start - timedelta(days=rng.randint(10, 400))
        price = Decimal(rng.choice([9, 12, 18, 21.99, 25, 35, 49, 79]))
        variable = i % 3 == 1
        variation_ids: list[int] = []
        product: dict[str, Any] = {
            "id": pid, "name": PRODUCTS[i], "slug": PRODUCTS[i].lower().replace(" ", "-"), "type": "variable" if variable else "simple",
            "status": "publish", "sku": "" if variable else f"SKU-{pid}", "price": _money(price),
            "regular_price": "" if variable else _money(price), "sale_price": "", "purchasable": True,
            "manage_stock": not variable, "stock_quantity": None if variable else rng.randint(0, 40),
            "stock_status": "instock", "date_created": gmt(created), "date_created_gmt": gmt(created),
            "date_modified": gmt(created), "date_modified_gmt": gmt(created), "parent_id": 0,
            "categories": [{"id": 9 + i % 4, "name": CATEGORIES[i % 4], "slug": CATEGORIES[i % 4].lower()}],
            "tags": [], "variations": variation_ids, "meta_data": [],
            "images": [{"id": pid + 500_000, "date_created": gmt(created), "date_created_gmt": gmt(created),
                        "date_modified": gmt(created), "date_modified_gmt": gmt(created), "name": PRODUCTS[i], "alt": "",
                        "src": f"https://shop.example/wp-content/uploads/{PRODUCTS[i].lower().replace(' ', '-')}.jpg"}],
        }
        if product["stock_quantity"] == 0:
            product["stock_status"] = "outofstock"
        if variable:
            for size in ("S", "M", "L"):
                vid = next(next_post)
                vprice = price + (Decimal(2) if size == "L" else Decimal(0))
                out["variations"].setdefault(pid, []).append({
                    "id": vid, "date_created": gmt(created), "date_created_gmt": gmt(created),
                    "date_modified": gmt(created), "date_modified_gmt": gmt(created), "sku": f"SKU-{pid}-{size}",
                    "price": _money(vprice), "regular_price": _money(vprice), "sale_price": "", "status": "publish",
                    "purchasable": True, "manage_stock": False, "stock_quantity": None, "stock_status": "instock",
                    "attributes": [{"id": 1, "name": "Size", "option": size}], "meta_data": [],
                })
                variation_ids.append(vid)
        out["products"].append(product)

    people: list[tuple[int, str, str, str]] = []  # (customer id or 0, first, last, email)
    for cid in range(1, customers + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first.lower().replace('é', 'e')}.{last.lower()}{cid}@example.com"
        created = start + timedelta(days=rng.randint(0, 300), seconds=rng.randint(0, 86_000))
        out["customers"].append(customer(cid, first, last, email, created))
        people.append((cid, first, last, email))
    born = random.Random(seed + 1)  # its own generator: the rest of the store stays as it was
    for record in out["customers"]:
        if born.random() < 0.35:  # a birthday plugin's user meta (the key is [woocommerce] birth_date_meta_key)
            day = datetime(born.randint(1950, 2006), 1, 1) + timedelta(days=born.randint(0, 364))
            record["meta_data"].append({"id": 9000 + record["id"], "key": "birth_date", "value": day.date().isoformat()})
    for g in range(guests):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        # Mixed case on purpose: guest identity is the normalized billing email.
        people.append((0, first, last, f"Guest.{last}{g}@Example.org"))

    # Repeat behaviour: a few loyal buyers place most orders (a skewed, BG/NBD-like purchase rate per person).
    weights = [rng.paretovariate(1.3) for _ in people]
    for _ in range(orders):
        cid, first, last, email = rng.choices(people, weights)[0]
        created = start + timedelta(seconds=rng.randint(0, int((now - start).total_seconds()) - 7200))
        if cid:
            registered = out["customers"][cid - 1]
            created = max(created, datetime.fromisoformat(registered["date_created_gmt"]).replace(tzinfo=timezone.utc))
        order = _order(rng, next(next_post), cid, first, last, email, created, out, now)
        out["orders"].append(order)
    for order in out["orders"]:
        if order["status"] in ("completed", "refunded") and (order["status"] == "refunded" or rng.random() < 0.08):
            _refund(rng, next(next_post), order, out, now)
    out["orders"].sort(key=lambda o: o["id"])
    return out


def _order(rng: random.Random, oid: int, cid: int, first: str, last: str, email: str, created: datetime,
           data: dict[str, Any], now: datetime) -> dict[str, Any]:
    status = rng.choice(STATUSES)
    lines, subtotal = [], Decimal(0)
    for n, product in enumerate(rng.sample(data["products"], rng.choice([1, 1, 1, 2, 2, 3]))):
        quantity = rng.choice([1, 1, 1, 2])
        variation = rng.choice(data["variations"][product["id"]]) if product["type"] == "variable" else None
        unit = Decimal((variation or product)["price"])
        total = unit * quantity
        subtotal += total
        lines.append({"id": oid * 10 + n, "name": product["name"], "product_id": product["id"],
                      "variation_id": variation["id"] if variation else 0, "quantity": quantity, "tax_class": "",
                      "subtotal": _money(total), "subtotal_tax": "0.00", "total": _money(total), "total_tax": "0.00",
                      "taxes": [], "meta_data": [], "sku": (variation or product)["sku"], "price": float(unit)})
    shipping = Decimal(rng.choice([0, 5, 10]))
    modified = min(created + timedelta(minutes=rng.randint(1, 600)), now - timedelta(hours=1))
    paid = status in ("processing", "completed", "refunded")
    return {
        "id": oid, "parent_id": 0, "number": str(oid), "order_key": f"wc_order_{oid:x}", "created_via": "checkout",
        "version": "9.9.5", "status": status, "currency": "USD",
        "date_created": gmt(created), "date_created_gmt": gmt(created),
        "date_modified": gmt(modified), "date_modified_gmt": gmt(modified),
        "discount_total": "0.00", "discount_tax": "0.00", "shipping_total": _money(shipping), "shipping_tax": "0.00",
        "cart_tax": "0.00", "total": _money(subtotal + shipping), "total_tax": "0.00", "prices_include_tax": False,
        "customer_id": cid, "customer_ip_address": "", "customer_user_agent": "", "customer_note": "",
        "billing": _address(first, last, email), "shipping": _address(first, last),
        "payment_method": "bacs", "payment_method_title": "Direct Bank Transfer", "transaction_id": "",
        "date_paid": gmt(created) if paid else None, "date_paid_gmt": gmt(created) if paid else None,
        "date_completed": gmt(modified) if status == "completed" else None,
        "date_completed_gmt": gmt(modified) if status == "completed" else None,
        "cart_hash": "", "meta_data": [], "line_items": lines, "tax_lines": [], "shipping_lines": [], "fee_lines": [],
        "coupon_lines": [], "refunds": [],
    }


def new_order(rng: random.Random, oid: int, customer: dict[str, Any], data: dict[str, Any],
              now: datetime) -> dict[str, Any]:
    """An order placed `now` by a registered customer, completed and paid (the demo's live traffic)."""
    order = _order(rng, oid, customer["id"], customer["first_name"], customer["last_name"], customer["email"],
                   now, data, now + timedelta(hours=2))
    stamp = gmt(now)
    order.update(status="completed", date_modified=stamp, date_modified_gmt=stamp, date_paid=stamp,
                 date_paid_gmt=stamp, date_completed=stamp, date_completed_gmt=stamp)
    return order


def _refund(rng: random.Random, rid: int, order: dict[str, Any], data: dict[str, Any], now: datetime) -> None:
    total = Decimal(order["total"])
    amount = total if order["status"] == "refunded" else (total * Decimal(rng.choice([0.2, 0.5]))).quantize(Decimal("0.01"))
    when = datetime.fromisoformat(order["date_modified_gmt"]).replace(tzinfo=timezone.utc)
    data["refunds"].setdefault(order["id"], []).append({
        "id": rid, "date_created": gmt(when), "date_created_gmt": gmt(when), "amount": _money(amount), "reason": "",
        "refunded_by": 1, "refunded_payment": False, "meta_data": [], "line_items": [],
    })
    order["refunds"].append({"id": rid, "reason": "", "total": "-" + _money(amount)})
