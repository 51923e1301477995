"""The adapter registry: every platform this product serves, handed to the core by whoever starts a process."""
from __future__ import annotations

from collections.abc import Mapping

from adapters.shopify.adapter import ADAPTER as SHOPIFY
from adapters.woocommerce.adapter import ADAPTER as WOOCOMMERCE
from connector.adapter import Adapter
from connector.model import Platform

REGISTRY: Mapping[Platform, Adapter] = {Platform.SHOPIFY: SHOPIFY, Platform.WOOCOMMERCE: WOOCOMMERCE}
