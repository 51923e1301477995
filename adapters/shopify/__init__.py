"""Shopify adapter: webhooks, mapping, OAuth install, GraphQL client, bulk pulls, write-back."""
