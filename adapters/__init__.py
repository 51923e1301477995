"""Platform adapters: one package per platform; adapters.registry lists them (kept out of here so that importing
a pure module such as adapters.shopify.mapping loads no HTTP or web library)."""
