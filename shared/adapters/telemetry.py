"""Telemetry the app emits: custom events (as log records) and OpenTelemetry metrics.

In Azure the Python worker configures the Azure Monitor exporter itself (host.json
``telemetryMode: OpenTelemetry`` + ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY``); this module only
uses the OpenTelemetry and logging APIs, so tests can plug in in-memory exporters. A log record with
the attribute ``microsoft.custom_event.name`` becomes a row in ``customEvents``.

Nothing here accepts an email or phone: callers pass the keyed email hash.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import metrics

from shared.core import telemetry_names as names

CUSTOM_EVENT_ATTRIBUTE = "microsoft.custom_event.name"


class Telemetry:
    def __init__(self, logger: logging.Logger | None = None, meter: metrics.Meter | None = None):
        self.log = logger or logging.getLogger("customer_sync.telemetry")
        meter = meter or metrics.get_meter("commerce_customer_sync")
        self._processed = meter.create_counter(
            names.METRIC_EVENTS_PROCESSED, unit="1", description="Events processed, by outcome"
        )
        self._calls = meter.create_counter(
            names.METRIC_COMMERCE_CALLS, unit="1", description="Commerce API calls, by operation and status"
        )
        self._latency = meter.create_histogram(
            names.METRIC_COMMERCE_LATENCY, unit="ms", description="Commerce API call duration, by operation and status"
        )
        self._ingested = meter.create_counter(
            names.METRIC_EVENTS_INGESTED, unit="1", description="Events received by the ingest endpoint"
        )
        self._depth = meter.create_gauge(
            names.METRIC_QUEUE_DEPTH, unit="1", description="Approximate messages in a queue"
        )
        self._age = meter.create_gauge(
            names.METRIC_QUEUE_OLDEST_AGE, unit="s", description="Age of the oldest visible message"
        )
        self._deadletters = meter.create_gauge(
            names.METRIC_DEADLETTER_COUNT, unit="1", description="Dead-lettered events held for replay"
        )
        self._webhooks = meter.create_counter(
            names.METRIC_WEBHOOK_DELIVERIES, unit="1", description="Webhook deliveries, by source and outcome"
        )

    def quiet(self, logger_name: str) -> Telemetry:
        """The same metrics, with events logged to ``logger_name`` (the dry run's, which reports what a
        sync would do without it counting as one in the app's logs)."""
        return Telemetry(logger=logging.getLogger(logger_name))

    def custom_event(self, name: str, message: str, level: int = logging.INFO, **dims: Any) -> None:
        attrs = {k: v for k, v in dims.items() if v is not None}
        self.log.log(level, "%s %s", message, _fmt(attrs), extra={CUSTOM_EVENT_ATTRIBUTE: name, **attrs})

    def outcome(
        self,
        outcome: names.Outcome,
        *,
        event_id: str | None,
        email_hash: str | None,
        correlation_id: str | None,
        latency_ms: float,
        commerce_calls: int,
        attempt: int | None,
        reason: str | None = None,
        level: int = logging.INFO,
        source: str | None = None,
    ) -> None:
        """``source``: the event's ``source`` field (the sending system as it names itself; ``backfill``
        for tools.backfill), cut to 64 characters; sender-chosen text, so one that looks like it holds an
        address or a number is not sent."""
        source = (source or "unknown")[:64]
        if "@" in source or sum(c.isdigit() for c in source) >= 6:
            source = "masked"
        self.custom_event(
            names.EVENT_SYNC_OUTCOME,
            f"event {outcome.value}",
            level,
            outcome=outcome.value,
            event_id=event_id,
            email_hash=email_hash,
            correlation_id=correlation_id,
            latency_ms=round(latency_ms, 1),
            commerce_calls=commerce_calls,
            attempt=attempt,
            reason=reason,
            source=source,
        )
        self._processed.add(1, {"outcome": outcome.value, "source": source})

    def dead_lettered(
        self,
        *,
        event_id: str | None,
        email_hash: str | None,
        reason: str,
        error_resource_id: str | None,
        correlation_id: str | None,
        attempts: int | None,
    ) -> None:
        self.custom_event(
            names.EVENT_DEAD_LETTERED,
            "event dead-lettered",
            logging.ERROR,
            event_id=event_id,
            email_hash=email_hash,
            reason=reason,
            error_resource_id=error_resource_id,
            correlation_id=correlation_id,
            attempts=attempts,
        )

    def auth_failure(self, *, status: int | None, operation: str | None, correlation_id: str | None) -> None:
        self.custom_event(
            names.EVENT_COMMERCE_AUTH_FAILURE,
            "Commerce refused the credentials: check the app registration, its secret "
            "or certificate, and the relying party in Commerce headquarters",
            logging.ERROR,
            status=status,
            operation=operation,
            correlation_id=correlation_id,
        )

    def ingest_failure(self, *, status: int, reason: str, correlation_id: str) -> None:
        self.custom_event(
            names.EVENT_INGEST_FAILURE,
            "ingest could not accept events",
            logging.ERROR,
            status=status,
            reason=reason,
            correlation_id=correlation_id,
        )

    def webhook_rejected(self, *, source: str, reason: str, correlation_id: str) -> None:
        """A webhook delivery refused as not authentic (401): ``source`` is a configured source name or
        "unknown", ``reason`` one of ``shared.core.sources.signatures.REASONS``; never a header or a secret."""
        self.custom_event(
            names.EVENT_WEBHOOK_REJECTED,
            "webhook delivery refused",
            logging.WARNING,
            source=source,
            reason=reason,
            correlation_id=correlation_id,
        )
        self._webhooks.add(1, {"source": source, "outcome": "rejected"})

    def webhook_delivery(self, source: str, outcome: str) -> None:
        self._webhooks.add(1, {"source": source, "outcome": outcome})

    def commerce_call(self, operation: str, status: int | None, duration_s: float | None = None) -> None:
        status_class = f"{status // 100}xx" if status else "none"
        self._calls.add(1, {"operation": operation, "status_class": status_class})
        if duration_s is not None:
            latency_class = names.STATUS_CLASS_THROTTLED if status == 429 else status_class
            self._latency.record(duration_s * 1000, {"operation": operation, "status_class": latency_class})

    def ingested(self, status: str, count: int) -> None:
        if count:
            self._ingested.add(count, {"status": status})

    def queue_metrics(self, queue: str, depth: int, oldest_age_s: float) -> None:
        self._depth.set(depth, {"queue": queue})
        self._age.set(oldest_age_s, {"queue": queue})

    def deadletter_count(self, count: int) -> None:
        self._deadletters.set(count)


def _fmt(attrs: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in attrs.items())
