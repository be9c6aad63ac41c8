"""I/O at the edges: the Commerce client and its tokens, Azure Storage queues and tables (the sync
ledger, dead letters, webhook senders' records) and telemetry. Each is injected into the use cases by
``shared.runtime``; none holds a business rule."""
