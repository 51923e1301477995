"""A local Shopify store for tests and the demo: Admin GraphQL against the real schema, OAuth, bulk, webhooks."""
