"""A local WooCommerce store for tests: REST API v3, wc-auth key install, OAuth 1.0a/Basic checks, webhooks."""
