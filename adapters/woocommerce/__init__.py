"""WooCommerce adapter: REST API v3, wc-auth key install, signed webhooks, customer meta write-back."""
