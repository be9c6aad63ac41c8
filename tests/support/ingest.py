"""The ingest use case over a recording queue port: the sample settings, request events as a sender
writes them, and one call of ``handle_ingest`` at the tests' clock."""

from __future__ import annotations

import json

from azure.core.exceptions import ServiceRequestError

from shared.adapters.telemetry import Telemetry
from shared.core.settings import load_settings
from shared.usecases.ingest import IngestDeps, handle_ingest
from tests.support.builders import NOW
from tests.support.repo import SAMPLE

SETTINGS = load_settings(SAMPLE)


class RecordingQueue:
    def __init__(self, fail_after: int | None = None):
        self.messages: list[str] = []
        self.fail_after = fail_after

    def send(self, message: str) -> None:
        if self.fail_after is not None and len(self.messages) >= self.fail_after:
            raise ServiceRequestError("connection refused")
        self.messages.append(message)


def event(i: int = 1, **customer) -> dict:
    return {
        "specVersion": "1.0",
        "eventId": f"evt-{i}",
        "eventType": "customer.created",
        "occurredAt": "2026-11-26T11:59:00+01:00",
        "customer": {"email": f"Person.{i}@Example.com", "firstName": "Ada", **customer},
    }


def ingest(body, queue=None, content_type="application/json"):
    queue = queue if queue is not None else RecordingQueue()
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    deps = IngestDeps(settings=SETTINGS, queue=queue, telemetry=Telemetry(), clock=lambda: NOW)
    return handle_ingest(raw, content_type, "corr-1", deps), queue
