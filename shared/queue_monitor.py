"""Queue depth and oldest-message age as metrics (Storage's own queue metric is account-wide and
hourly, so it cannot watch one queue), plus dead-letter retention."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from azure.storage.queue import QueueClient

from shared.deadletters import DeadLetterStore
from shared.telemetry import Telemetry

log = logging.getLogger("customer_sync.queue_monitor")


@dataclass(frozen=True)
class QueueReading:
    queue: str
    depth: int
    oldest_age_s: float


def read_queue(queue: QueueClient, now: datetime) -> QueueReading:
    depth = queue.get_queue_properties().approximate_message_count or 0
    oldest = 0.0
    # peek sees only visible messages: a backlog waiting on retries shows in depth, not in age.
    for message in queue.peek_messages(max_messages=1):
        if message.inserted_on:
            oldest = max(0.0, (now - message.inserted_on).total_seconds())
    return QueueReading(queue.queue_name, depth, oldest)


def report(queues: list[QueueClient], deadletters: DeadLetterStore, retention_days: int,
           telemetry: Telemetry, now: datetime) -> list[QueueReading]:
    readings = [read_queue(q, now) for q in queues]
    for r in readings:
        telemetry.queue_metrics(r.queue, r.depth, r.oldest_age_s)
        log.info("queue %s depth %d oldest %.0fs", r.queue, r.depth, r.oldest_age_s)
    purged = deadletters.purge_older_than(retention_days, now)
    held = deadletters.count()
    telemetry.deadletter_count(held)
    log.info("dead letters held %d, purged %d older than %d days", held, purged, retention_days)
    return readings
