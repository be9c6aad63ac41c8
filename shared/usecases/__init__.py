"""What the triggers do: accept events (ingest, webhooks), apply them to Commerce (processor, backfill),
watch the queues (queue_monitor), and the operators' dry run and erasure. Each takes its adapters as
arguments (``shared.runtime`` builds them) and imports only the core."""
