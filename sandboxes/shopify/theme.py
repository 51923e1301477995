"""A storefront for the theme app extension: its blocks rendered with python-liquid against a sandbox store.

Shopify's Liquid adds objects, filters and one tag to standard Liquid. This module adds only what our blocks use,
each doing what Shopify documents (shopify.dev/docs/api/liquid): the `schema` tag (a raw block the storefront never
prints), `money`, `image_url`, `asset_url`, `handleize`, `json` and `t` (storefront locale files), and the
`customer` / `product` / `collection` / `metafields` objects built from the sandbox's records, so a
`list.product_reference` metafield's `.value` is a list of product objects exactly as a theme sees it.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from liquid import CachingFileSystemLoader, Environment, is_undefined
from liquid import ast
from liquid.exceptions import LiquidSyntaxError
from liquid.tag import Tag
from liquid.token import TOKEN_EOF, TOKEN_TAG

from sandboxes.shopify.payloads import gid
from sandboxes.shopify.store import Store

EXTENSION = Path(__file__).resolve().parents[2] / "extensions" / "retention-theme"
SCHEMA_RE = re.compile(r"{%-?\s*schema\s*-?%}(.*?){%-?\s*endschema\s*-?%}", re.S)


# ---------------------------------------------------------------------------------------------- the schema tag
class SchemaNode(ast.Node):
    """`{% schema %}…{% endschema %}`: JSON for the theme editor, never part of the page."""

    __slots__ = ("text",)

    def __init__(self, token: Any, text: str) -> None:
        super().__init__(token)
        self.text = text

    def __str__(self) -> str:
        return f"{{% schema %}}{self.text}{{% endschema %}}"

    def render_to_output(self, context: Any, buffer: Any) -> int:
        return 0


class SchemaTag(Tag):
    name = "schema"
    end = "endschema"
    node_class = SchemaNode

    def parse(self, stream: Any) -> SchemaNode:
        token = stream.eat(TOKEN_TAG)
        text: list[str] = []
        while not (stream.current.kind == TOKEN_TAG and stream.current.value == "endschema"):
            if stream.current.kind == TOKEN_EOF:
                raise LiquidSyntaxError("schema tag was never closed", token=token)
            text.append(stream.current.value)
            next(stream)
        return SchemaNode(token, "".join(text))


# ---------------------------------------------------------------------------------------------- filters
def handleize(value: Any) -> str:
    """Shopify's handle: lower case, runs of anything but letters and digits become one hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", str(value or "").lower()).strip("-")


def to_json(value: Any) -> str:
    return json.dumps(None if is_undefined(value) else value, default=str, separators=(",", ":"))


def image_url(image: Any, width: int | None = None, height: int | None = None) -> str:
    """The CDN URL of an image object at a width (Shopify appends `width=`)."""
    src = image.get("src") if isinstance(image, Mapping) else str(image or "")
    return f"{src}{'&' if '?' in src else '?'}width={width}" if width else src


def asset_url(name: Any) -> str:
    return f"/cdn/shop/extensions/retention-theme/assets/{name}"


@dataclass(frozen=True)
class Shop:
    """The `shop` object's parts the filters need."""

    name: str
    money_format: str = "${{amount}}"  # Settings › General › Store currency › formatting


def _amount(cents: Any) -> str:
    value = (Decimal(str(cents or 0)) / 100).quantize(Decimal("0.01"))
    return f"{value:,.2f}"


# ---------------------------------------------------------------------------------------------- objects
class Metafields(Mapping[str, Any]):
    """`owner.metafields[namespace][key]`: namespaces resolve like Shopify's (`$app:x` → this app's)."""

    def __init__(self, theme: "Storefront", owner_gid: str) -> None:
        self.theme, self.owner = theme, owner_gid

    def __getitem__(self, namespace: str) -> "Namespace":
        return Namespace(self.theme, self.owner, namespace)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class Namespace(Mapping[str, Any]):
    def __init__(self, theme: "Storefront", owner_gid: str, namespace: str) -> None:
        self.theme, self.owner, self.namespace = theme, owner_gid, namespace

    def __getitem__(self, key: str) -> Any:
        found = self.theme.store.liquid(self.owner, self.namespace, key)
        if found is None:
            raise KeyError(key)
        value = found["value"]
        if found["type"].endswith("product_reference"):  # the store hands back records: Liquid sees products
            value = [self.theme.product(p) for p in value] if isinstance(value, list) else self.theme.product(value)
        return {**found, "value": value}

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class Storefront:
    """Renders the extension's blocks as a shop's storefront would, for one store and locale."""

    def __init__(self, store: Store, extension: Path = EXTENSION, locale: str = "en", shop: Shop | None = None) -> None:
        self.store, self.extension, self.locale = store, extension, locale
        self.shop = shop or Shop(name=store.shop.split(".")[0].replace("-", " ").title())
        self.strings = self._locale(locale)
        self.env = Environment(loader=CachingFileSystemLoader(extension / "snippets", ext=".liquid"))
        self.env.add_tag(SchemaTag)
        self.env.add_filter("money", self.money)
        self.env.add_filter("image_url", image_url)
        self.env.add_filter("asset_url", asset_url)
        self.env.add_filter("handleize", handleize)
        self.env.add_filter("json", to_json)
        self.env.add_filter("t", self.translate)

    def _locale(self, locale: str) -> dict[str, Any]:
        folder = self.extension / "locales"
        path = folder / f"{locale}.json"
        default = next(folder.glob("*.default.json"))
        data: dict[str, Any] = json.loads((path if path.exists() else default).read_text(encoding="utf-8"))
        return data

    def money(self, cents: Any) -> str:
        return self.shop.money_format.replace("{{amount}}", _amount(cents))

    def translate(self, key: Any, **variables: Any) -> str:
        """`'a.b' | t: name: value`: the storefront string, `{{ name }}` interpolated; a missing key shows itself."""
        node: Any = self.strings
        for part in str(key).split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if not isinstance(node, str):
            return f"translation missing: {self.locale}.{key}"
        return re.sub(r"{{\s*(\w+)\s*}}", lambda m: str(variables.get(m.group(1), "")), node)

    # -------------------------------------------------------------------------- objects from the store
    def product(self, record: Mapping[str, Any]) -> dict[str, Any]:
        handle = handleize(record["title"])
        prices = [Decimal(str(v["price"])) for v in record["variants"]]
        return {
            "id": record["id"], "title": record["title"], "handle": handle, "url": f"/products/{handle}",
            "type": record["product_type"], "vendor": record["vendor"], "tags": list(record["tags"]),
            "price": int(min(prices) * 100) if prices else 0,
            "available": any(v["inventory_quantity"] > 0 for v in record["variants"]),
            "featured_image": record.get("image"), "metafields": Metafields(self, gid("Product", record["id"])),
        }

    def customer(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": record["id"], "first_name": record["first_name"], "last_name": record["last_name"],
            "name": f"{record['first_name']} {record['last_name']}", "email": record["email"],
            "tags": list(record["tags"]), "metafields": Metafields(self, gid("Customer", record["id"])),
        }

    def collection(self, title: str, product_ids: list[int]) -> dict[str, Any]:
        with self.store.lock:
            products = [self.product(self.store.products[p]) for p in product_ids]
        return {"title": title, "handle": handleize(title), "products": products, "products_count": len(products)}

    # -------------------------------------------------------------------------- blocks
    def block_source(self, name: str) -> str:
        return (self.extension / "blocks" / f"{name}.liquid").read_text(encoding="utf-8")

    def schema(self, name: str) -> dict[str, Any]:
        match = SCHEMA_RE.search(self.block_source(name))
        if match is None:
            raise ValueError(f"block {name} has no schema")
        data: dict[str, Any] = json.loads(match.group(1))
        return data

    def render(self, name: str, *, customer_id: int | None = None, product_id: int | None = None,
               settings: Mapping[str, Any] | None = None) -> str:
        """One block as the storefront renders it: schema defaults, then the merchant's settings."""
        values = {s["id"]: s.get("default") for s in self.schema(name)["settings"] if "id" in s}
        unknown = set(settings or {}) - set(values)
        if unknown:
            raise KeyError(f"block {name} has no settings {sorted(unknown)}")
        values.update(settings or {})
        with self.store.lock:
            customer = self.customer(self.store.customers[customer_id]) if customer_id is not None else None
            product = self.product(self.store.products[product_id]) if product_id is not None else None
        # Global objects (customer, product, shop) are visible in rendered snippets too; `block` is not.
        template = self.env.from_string(self.block_source(name), name=name,
                                        globals={"customer": customer, "product": product, "shop": {"name": self.shop.name}})
        return template.render(block={"id": f"retention-{name}", "settings": values, "shopify_attributes": ""})

    def page(self, body: str, title: str = "Storefront") -> str:
        """A minimal storefront page around rendered blocks, with the extension's stylesheet."""
        css = (self.extension / "assets" / "retention.css").read_text(encoding="utf-8")
        return (f"<!doctype html><html lang=\"{self.locale}\"><head><meta charset=\"utf-8\"><title>{title}</title>"
                f"<style>body{{font-family:system-ui,sans-serif;margin:0;padding:1rem;color:#1f2933}}{css}</style>"
                f"</head><body><main>{body}</main></body></html>")
