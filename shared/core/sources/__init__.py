"""Webhook sources: marketing systems that post their own signed payloads to
``POST /api/webhooks/<source>`` (docs/sources.md).

- ``signatures``: the signature checks, over the raw bytes, constant-time, several secrets at once.
- ``shopify``, ``klaviyo``, ``hubspot``, ``standard``: one adapter per built-in source (verify,
  delivery key, translation to canonical events); ``declarative``: the same from a mapping file.
- ``config``: the settings (secrets, per-source options, mapping files); ``registry``: which adapter
  serves which source name.
- ``stores``: the delivery table (redeliveries) and the sender-id map (email changes).
- ``webhook``: the handler that puts them together with ``shared.usecases.ingest``'s validation and queueing.
"""
