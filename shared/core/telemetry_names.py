"""Every telemetry name the app emits, in one place.

The alert rules in ``infra/`` query these exact names, and a test checks that an end-to-end run
really emits each one an alert depends on. Rename here, and the infra test tells you what else moves.
"""

from enum import Enum

# Custom events (Application Insights ``customEvents``, via the ``microsoft.custom_event.name`` attribute)
EVENT_SYNC_OUTCOME = "CustomerSyncOutcome"
EVENT_COMMERCE_AUTH_FAILURE = "CommerceAuthFailure"
EVENT_DEAD_LETTERED = "CustomerEventDeadLettered"
EVENT_INGEST_FAILURE = "IngestFailure"
# A webhook delivery refused before anything was stored (unknown source, no secret, unsigned, tampered,
# expired...): dimensions source, reason (shared.core.sources.signatures.REASONS).
EVENT_WEBHOOK_REJECTED = "WebhookRejected"
# One email's data erased (shared.usecases.erasure: tools.customer --forget, a sender's erasure request):
# dimensions email_hash, ledger, dead_letters, poison_messages, sender_records.
EVENT_CUSTOMER_ERASED = "CustomerErased"

# Custom metrics (OpenTelemetry metrics API -> ``customMetrics``)
METRIC_EVENTS_PROCESSED = "customer_sync.events_processed"  # counter, dimensions: outcome, source
METRIC_COMMERCE_CALLS = "customer_sync.commerce_calls"  # counter, dimensions: operation, status_class
# histogram (milliseconds), dimensions: operation, status_class (a 429 is "throttled", not "4xx")
METRIC_COMMERCE_LATENCY = "customer_sync.commerce_latency_ms"
METRIC_EVENTS_INGESTED = "customer_sync.events_ingested"  # counter, dimension: status
METRIC_QUEUE_DEPTH = "customer_sync.queue_depth"  # gauge, dimension: queue
METRIC_QUEUE_OLDEST_AGE = "customer_sync.queue_oldest_age_seconds"  # gauge, dimension: queue
METRIC_DEADLETTER_COUNT = "customer_sync.deadletters"  # gauge: dead letters held
# counter, dimensions: source, outcome (accepted, duplicate, ignored, unreadable, rejected, in_flight,
# failed, too_large)
METRIC_WEBHOOK_DELIVERIES = "customer_sync.webhook_deliveries"

# Function names (the ``operation_Name`` of rows in ``requests``)
FUNCTION_INGEST = "ingest_customer_events"
FUNCTION_PROCESS = "process_customer_event"
FUNCTION_POISON = "collect_poison_events"
FUNCTION_QUEUE_MONITOR = "report_queue_metrics"
FUNCTION_HEALTH = "health"
FUNCTION_WEBHOOK = "receive_webhook"
FUNCTION_BACKFILL = "process_backfill_event"
FUNCTION_BACKFILL_POISON = "collect_backfill_poison"

# Dimension values the workbook and alerts compare with
SOURCE_BACKFILL = "backfill"  # the ``source`` of every event tools.backfill queues
STATUS_CLASS_THROTTLED = "throttled"  # latency histogram: a 429 from Commerce


class Outcome(str, Enum):
    """What happened to one event. Exactly one per processed event, in ``CustomerSyncOutcome``."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DUPLICATE = "duplicate"
    STALE = "stale"
    DEFERRED = "deferred"
    RETRYING = "retrying"
    DEAD_LETTERED = "dead_lettered"
