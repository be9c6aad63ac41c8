"""The dry run's ports: the processor's own decisions, with every write kept in the process."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.adapters.memory_ledger import MemoryLedger
from shared.adapters.telemetry import Telemetry
from shared.core.envelope import Envelope
from shared.core.ledger_rules import LedgerConflict, LedgerEntry
from shared.core.settings import load_settings
from shared.core.validation import validate_event
from shared.usecases.dryrun import DryRun, OverlayLedger, _fields
from shared.usecases.processor import CallCounter, ProcessorDeps

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SETTINGS = load_settings(json.loads(open("local.settings.sample.json").read())["Values"])


class Commerce:
    def __init__(self, customers):
        self.customers = customers
        self.writes = 0

    def search_customers_by_email(self, email):
        return [c for c in self.customers if c["Email"] == email]

    def get_customer(self, account):
        return next(c for c in self.customers if c["AccountNumber"] == account)

    def create_customer(self, body):
        self.writes += 1
        raise AssertionError("a dry run never creates")

    update_customer = create_customer


def envelope(i: int, email: str, **customer) -> Envelope:
    raw = {"eventId": f"evt-{i}", "occurredAt": "2026-11-26T11:00:00+00:00", "customer": {"email": email, **customer}}
    result = validate_event(raw, now=NOW, settings=SETTINGS.mapping, hash_key=SETTINGS.email_hash_key)
    return Envelope.wrap(result.event, ingested_at=NOW, correlation_id="c")


def dry(commerce, ledger) -> DryRun:
    return DryRun(
        ProcessorDeps(
            commerce=commerce,
            deadletters=None,
            telemetry=Telemetry(),
            mapping=SETTINGS.mapping,
            max_dequeue_count=5,
            calls=CallCounter(),
            clock=lambda: NOW,
            ledger=ledger,
            requeue=lambda m, d: pytest.fail("requeued"),
            retry=SETTINGS.retry,
            lease_seconds=60,
            call_budget=10,
            hash_key=SETTINGS.email_hash_key,
        )
    )


def test_create_then_the_same_email_again_sees_the_simulated_state():
    commerce, ledger = Commerce([]), MemoryLedger()
    run = dry(commerce, ledger)
    first = run.decide(envelope(1, "a@example.com", firstName="Ada"))
    assert first.decision == "create" and ("FirstName", None, "Ada") in first.changes
    again = run.decide(envelope(1, "a@example.com", firstName="Ada"))
    assert again.decision == "unchanged" and again.outcome == "duplicate"
    changed = run.decide(envelope(2, "a@example.com", firstName="Augusta"))
    assert changed.decision == "update" and ("FirstName", "Ada", "Augusta") in changed.changes
    assert commerce.writes == 0 and ledger.writes == 0 and ledger.entries == {}


def test_several_customers_with_the_email_are_ambiguous_and_name_the_one_written():
    commerce = Commerce(
        [
            {"AccountNumber": "C-9", "RecordId": 9, "Email": "t@example.com", "FirstName": "A"},
            {"AccountNumber": "C-2", "RecordId": 2, "Email": "t@example.com", "FirstName": "B"},
        ]
    )
    decision = dry(commerce, MemoryLedger()).decide(envelope(1, "t@example.com", firstName="C"))
    assert decision.decision == "ambiguous" and decision.account == "C-2" and decision.matches == 2
    assert ("FirstName", "B", "C") in decision.changes


def test_the_overlay_keeps_the_tables_conditional_write_rules():
    real = MemoryLedger()
    stored = real.write(LedgerEntry("h" * 64))
    overlay = OverlayLedger(real)
    with pytest.raises(LedgerConflict):
        overlay.write(LedgerEntry("h" * 64))  # an insert over an existing entry
    mine = overlay.write(stored)
    assert overlay.read("h" * 64).etag == mine.etag != stored.etag and real.read("h" * 64) == stored
    with pytest.raises(LedgerConflict):
        overlay.write(stored)  # the ETag read before this process's own write


def test_field_differences_flatten_lists_by_record_id():
    before = {"FirstName": "A", "Addresses": [{"RecordId": 5, "City": "Oslo", "ZipCode": ""}]}
    after = {"FirstName": "A", "Addresses": [{"RecordId": 5, "City": "Bergen", "ZipCode": None}]}
    assert _fields(before, after) == (("Addresses[5].City", "Oslo", "Bergen"),)


def test_a_read_that_fails_is_an_error_not_a_reject():
    from shared.core.commerce_errors import CommerceTimeoutError

    class Slow(Commerce):
        def search_customers_by_email(self, email):
            raise CommerceTimeoutError("search timed out", operation="search")

    decision = dry(Slow([]), MemoryLedger()).decide(envelope(1, "s@example.com", firstName="S"))
    assert decision.decision == "error" and "commerce_timeout" in decision.detail
