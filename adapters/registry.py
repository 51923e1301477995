"""The adapter registry: every platform this product serves, handed to the core by whoever starts a process."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from adapters.shopify.adapter import ADAPTER as SHOPIFY
from adapters.woocommerce.adapter import ADAPTER as WOOCOMMERCE, WooCommerceAdapter
from connector.adapter import Adapter
from connector.model import Platform

REGISTRY: Mapping[Platform, Adapter] = {Platform.SHOPIFY: SHOPIFY, Platform.WOOCOMMERCE: WOOCOMMERCE}


if TYPE_CHECKING:
    from connector.config import Settings


def adapters_for(settings: "Settings") -> Mapping[Platform, Adapter]:
    """The registry with the settings the adapters read while mapping webhooks (WooCommerce's birth-date meta key)."""
    woocommerce = WooCommerceAdapter(birth_date_meta_key=settings.woocommerce.birth_date_meta_key)
    return {**REGISTRY, Platform.WOOCOMMERCE: woocommerce}
