"""The adapter registry: the one place connector code finds a platform's adapter."""
from __future__ import annotations

import importlib
from functools import cache

from connector.adapter import Adapter
from connector.model import Platform

MODULES = {
    Platform.SHOPIFY: "adapters.shopify.adapter",
    Platform.WOOCOMMERCE: "adapters.woocommerce.adapter",
}


@cache
def get_adapter(platform: Platform | str) -> Adapter:
    """The adapter instance for a platform (each module exposes `ADAPTER`)."""
    return importlib.import_module(MODULES[Platform(platform)]).ADAPTER


def available() -> list[Platform]:
    """Platforms whose adapter module is present."""
    found = []
    for platform, module in MODULES.items():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        found.append(platform)
    return found
