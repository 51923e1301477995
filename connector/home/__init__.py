"""The merchant's app home: server-rendered pages from stored aggregates, for Shopify (embedded) and WooCommerce."""
