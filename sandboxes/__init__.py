"""Development-only code, never in the wheel: local fakes of whole stores (Shopify, WooCommerce) and the demo."""
