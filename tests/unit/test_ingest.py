"""Ingest decisions over a recording queue port (the Azurite-backed path is in tests/integration)."""

import json

import pytest
from azure.core.exceptions import ServiceRequestError

from shared.adapters.telemetry import Telemetry
from shared.core.envelope import Envelope
from shared.usecases.ingest import IngestDeps, handle_ingest
from tests.support.builders import NOW
from tests.support.ingest import SETTINGS, RecordingQueue, event, ingest


def test_one_valid_event_is_queued_as_an_envelope():
    result, queue = ingest(event())
    assert result.status == 202
    assert result.body["accepted"] == ["evt-1"]
    assert len(queue.messages) == 1
    envelope = Envelope.from_json(queue.messages[0])
    assert envelope.event.event_id == "evt-1"
    assert envelope.event.email == "Person.1@example.com"
    assert envelope.correlation_id == "corr-1"
    assert envelope.ingested_at == NOW


def test_a_mixed_batch_queues_the_valid_events_and_reports_each():
    body = {"events": [event(1), event(2, email="not-an-email"), event(3)]}
    result, queue = ingest(body)
    assert result.status == 207
    statuses = [(r["index"], r["eventId"], r["status"]) for r in result.body["results"]]
    assert statuses == [(0, "evt-1", "accepted"), (1, "evt-2", "rejected"), (2, "evt-3", "accepted")]
    assert result.body["results"][1]["errors"][0]["pointer"] == "/customer/email"
    assert len(queue.messages) == 2


def test_all_invalid_is_a_422_problem_listing_every_field():
    bad = event(1, email="nope", phone="12")
    result, queue = ingest([bad])
    assert result.status == 422
    assert result.content_type == "application/problem+json"
    pointers = {e["pointer"] for e in result.body["errors"]}
    assert {"/customer/email", "/customer/phone"} <= pointers
    assert queue.messages == []
    assert "nope" not in result.json()


@pytest.mark.parametrize(
    "body, content_type, status",
    [
        (b"{not json", "application/json", 400),
        (b'"a string"', "application/json", 400),
        (b"{}", "text/plain", 415),
        (b"[" + b'{"a":1},' * 200_000 + b"{}]", "application/json", 413),
    ],
)
def test_unusable_requests_are_refused_whole(body, content_type, status):
    result, queue = ingest(body, content_type=content_type)
    assert result.status == status
    assert result.content_type == "application/problem+json"
    assert result.body["correlationId"] == "corr-1"
    assert queue.messages == []


def test_queue_failure_is_a_503_naming_what_was_queued():
    result, queue = ingest([event(1), event(2), event(3)], queue=RecordingQueue(fail_after=1))
    assert result.status == 503
    assert result.headers["Retry-After"].isdigit()
    assert result.body["queuedEventIds"] == ["evt-1"]
    assert len(queue.messages) == 1


def _ingest_with(ledger, body):
    queue = RecordingQueue()
    deps = IngestDeps(settings=SETTINGS, queue=queue, telemetry=Telemetry(), clock=lambda: NOW, ledger=ledger)
    return handle_ingest(json.dumps(body).encode(), "application/json", "corr-1", deps), queue


def test_an_email_change_is_marked_on_the_new_address_before_it_is_queued():
    from shared.adapters.memory_ledger import MemoryLedger
    from shared.core.ledger_rules import OrderKey

    ledger = MemoryLedger()
    result, queue = _ingest_with(ledger, [event(1, previousEmail="old.address@example.com"), event(2)])
    assert result.status == 202 and len(queue.messages) == 2
    change = Envelope.from_json(queue.messages[0]).event
    [marked] = ledger.entries.values()  # only the change marks anything
    assert marked.email_hash == change.email_hash and marked.moved_from == change.previous_email_hash
    assert marked.moved_from_at == OrderKey.of(change) and marked.lease is None and marked.last is None


def test_a_ledger_that_cannot_be_marked_does_not_stop_the_event():
    class Broken:
        def read(self, email_hash):
            raise ServiceRequestError("table storage unavailable")

    result, queue = _ingest_with(Broken(), event(1, previousEmail="old.address@example.com"))
    assert result.status == 202 and len(queue.messages) == 1
