"""A generated store for the sandbox: a catalogue, customers and a year of orders with repeat behaviour."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

# Ids above 2**53 on purpose: anything that parses them through a float gets them wrong.
ID_BASE = 9_100_000_000_000_000

CATALOGUE: dict[str, tuple[tuple[str, ...], tuple[int, int]]] = {
    "Coffee": (("Espresso Roast", "House Blend", "Single Origin Ethiopia", "Decaf Colombia", "Cold Brew Pack"), (12, 28)),
    "Tea": (("Earl Grey", "Sencha", "Chai Masala", "Rooibos", "Jasmine Pearls"), (8, 22)),
    "Equipment": (("Pour-over Kettle", "Burr Grinder", "French Press", "AeroPress", "Scale"), (25, 180)),
    "Accessories": (("Ceramic Mug", "Travel Cup", "Paper Filters", "Cleaning Tablets", "Milk Jug"), (6, 35)),
    "Gift Cards": (("Gift Card",), (25, 100)),
}
FIRST = ("Ada", "Ben", "Cleo", "Dan", "Eve", "Finn", "Gia", "Hugo", "Ines", "Jon", "Kai", "Lea", "Max", "Nia", "Omar", "Pia")
LAST = ("Smith", "Garcia", "Müller", "Rossi", "Dubois", "Kowalski", "Tanaka", "Silva", "Novak", "Jensen", "Okafor", "Lee")


@dataclass
class StoreData:
    """Plain records (snake_case, Decimal money, aware datetimes) the sandbox store serves."""

    customers: list[dict[str, Any]] = field(default_factory=list)
    birth_dates: dict[int, str] = field(default_factory=dict)  # customer id -> facts.birth_date (YYYY-MM-DD)
    products: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = ID_BASE


class Ids:
    """Sequential 64-bit ids shared by every resource of one store."""

    def __init__(self, start: int = ID_BASE) -> None:
        self.value = start

    def __call__(self) -> int:
        self.value += 1
        return self.value


def _money(value: float) -> Decimal:
    return Decimal(str(round(value, 2))).quantize(Decimal("0.01"))


def make_products(rng: random.Random, ids: Ids, n: int, start: datetime) -> list[dict[str, Any]]:
    """n products cycling through the catalogue, 1–3 variants each."""
    products = []
    kinds = list(CATALOGUE)
    for i in range(n):
        kind = kinds[i % len(kinds)] if i < len(kinds) * 2 else rng.choice(kinds[:-1])
        names, (low, high) = CATALOGUE[kind]
        title = names[(i // len(kinds)) % len(names)] + (f" #{i // (len(kinds) * len(names)) + 1}" if i >= len(kinds) * 5 else "")
        base = rng.uniform(low, high)
        pid = ids()
        variants = [
            {
                "id": ids(),
                "title": size,
                "price": _money(base * factor),
                "sku": f"SKU-{pid % 100000}-{j}",
                "inventory_quantity": rng.randint(0, 200),
            }
            for j, (size, factor) in enumerate([("Regular", 1.0), ("Large", 1.6), ("Bulk", 3.2)][: rng.randint(1, 3)])
        ]
        created = (start - timedelta(days=rng.randint(30, 400), seconds=rng.randint(0, 86399))).replace(microsecond=0)
        products.append(
            {
                "id": pid,
                "title": title,
                "product_type": kind,
                "vendor": rng.choice(("Acme Roasters", "Leaf & Co", "BrewWorks")),
                "tags": sorted(rng.sample(["new", "bestseller", "organic", "fair-trade", "limited"], rng.randint(0, 2))),
                "status": "ACTIVE",
                "is_gift_card": kind == "Gift Cards",
                "created_at": created,
                "updated_at": created,
                "variants": variants,
                "image": f"https://cdn.shopify.com/s/files/1/0000/0001/files/product-{pid}.jpg",
            }
        )
    return products


def seed_store(n_customers: int, n_products: int, days: int = 365, seed: int = 0, now: datetime | None = None) -> StoreData:
    """A deterministic store: customers with a buying rate and a churn time, orders as a Poisson process."""
    rng = random.Random(seed)
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    start = now - timedelta(days=days)
    ids = Ids()
    data = StoreData()
    data.products = make_products(rng, ids, max(n_products, 1), start)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for product in data.products:
        by_type.setdefault(product["product_type"], []).append(product)
    for n in range(n_customers):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        created = (start + timedelta(days=rng.uniform(0, days * 0.9))).replace(microsecond=0)
        cid = ids()
        data.customers.append(
            {
                "id": cid,
                "first_name": first,
                "last_name": last,
                "email": f"{first.lower()}.{last.lower()}.{n}@example.com".replace("ü", "u"),
                "accepts_marketing": rng.random() < 0.6,
                "tags": ["newsletter"] if rng.random() < 0.3 else [],
                "created_at": created,
                "updated_at": created,
            }
        )
        favourite = rng.sample([k for k in by_type if k != "Gift Cards"] or list(by_type), k=min(2, len(by_type)))
        rate = rng.gammavariate(1.2, 1 / 40)  # orders per day: most buy every month or two, a few much more often
        churn = created + timedelta(days=rng.expovariate(1 / 200))
        moment = created + timedelta(hours=rng.uniform(0, 48))
        while moment < min(now, churn):
            data.orders.append(_order(rng, ids, cid, data.customers[-1]["email"], moment, by_type, favourite))
            moment += timedelta(days=rng.expovariate(max(rate, 1 / 365)))
    for _ in range(max(n_customers // 20, 1)):  # guest checkouts: no customer record, only an email
        moment = start + timedelta(days=rng.uniform(0, days))
        email = f"guest{rng.randint(1, 10**6)}@example.org"
        data.orders.append(_order(rng, ids, None, email, moment, by_type, list(by_type)[:1]))
    data.orders.sort(key=lambda o: (o["created_at"], o["id"]))
    # About a third of the customers told the shop their birthday (their own generator: the rest stays as it was).
    born = random.Random(seed + 1)
    for c in data.customers:
        if born.random() < 0.35:
            day = date(born.randint(1950, 2006), 1, 1) + timedelta(days=born.randint(0, 364))
            data.birth_dates[c["id"]] = day.isoformat()
    data.next_id = ids.value
    return data


def _order(
    rng: random.Random, ids: Ids, customer_id: int | None, email: str, moment: datetime,
    by_type: dict[str, list[dict[str, Any]]], favourite: list[str],
) -> dict[str, Any]:
    lines = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        kind = rng.choice(favourite) if rng.random() < 0.75 else rng.choice(list(by_type))
        product = rng.choice(by_type[kind])
        variant = rng.choice(product["variants"])
        lines.append(
            {
                "id": ids(),
                "product_id": product["id"],
                "variant_id": variant["id"],
                "title": product["title"],
                "sku": variant["sku"],
                "quantity": rng.choice((1, 1, 1, 2, 3)),
                "price": variant["price"],
                "discount": Decimal("0.00"),
                "is_gift_card": product["is_gift_card"],
            }
        )
    code = "WELCOME10" if rng.random() < 0.1 else None
    subtotal = sum((line["price"] * line["quantity"] for line in lines), Decimal("0.00"))
    discount = _money(float(subtotal) * 0.1) if code else Decimal("0.00")
    total = subtotal - discount
    roll = rng.random()
    cancelled = moment + timedelta(hours=2) if roll < 0.02 else None
    refunded = _money(float(total) * rng.choice((0.3, 1.0))) if 0.02 <= roll < 0.06 else Decimal("0.00")
    moment = moment.replace(microsecond=0)  # Shopify timestamps have second resolution
    return {
        "id": ids(),
        "customer_id": customer_id,
        "email": email,
        "created_at": moment,
        "processed_at": moment,
        "updated_at": moment + timedelta(minutes=5),
        "cancelled_at": cancelled,
        "test": rng.random() < 0.01,
        "financial_status": "REFUNDED" if refunded == total and refunded else ("PARTIALLY_REFUNDED" if refunded else "PAID"),
        "discount_codes": [code] if code else [],
        "subtotal": subtotal,
        "discounts": discount,
        "total": total,
        "refunded": refunded,
        "lines": lines,
    }
