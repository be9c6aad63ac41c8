"""Paths an operator relies on: the customerAccount hint, the choice among duplicates, replay
filters and its guard against losing a newer failure, dead-letter retention, queue readings, and
ids on every log line."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from shared.core.dead_letters import DeadLetter
from shared.usecases.processor import pick_customer
from shared.usecases.queue_monitor import report
from tests.support.stack import event
from tools import replay

pytestmark = pytest.mark.integration


def test_a_known_customer_account_skips_the_search(stack):
    [seeded] = stack.emulator.seed([{"Email": "known@example.com", "FirstName": "Old"}])
    stack.emulator.reset_calls()
    stack.post(event(1, email="KNOWN@example.com", firstName="New", customerAccount=seeded["AccountNumber"]))
    stack.wait()
    calls = stack.emulator.calls()
    assert (calls["search"], calls["get"], calls["update"], calls["create"]) == (0, 1, 1, 0)
    assert stack.emulator.customer(seeded["AccountNumber"])["FirstName"] == "New"


def test_a_customer_account_of_someone_else_is_ignored_and_the_email_decides(stack):
    [other] = stack.emulator.seed([{"Email": "other@example.com", "FirstName": "Other"}])
    stack.post(event(1, email="new@example.com", firstName="New", customerAccount=other["AccountNumber"]))
    stack.wait()
    assert stack.emulator.customer(other["AccountNumber"])["FirstName"] == "Other"
    assert [c["FirstName"] for c in stack.emulator.customers() if c["Email"] == "new@example.com"] == ["New"]


def test_among_duplicates_a_real_account_wins_over_an_older_async_one(stack):
    stack.emulator.seed(
        [
            {
                "AccountNumber": "9f1c2d4e-0000-4000-8000-000000000001",
                "RecordId": 10,
                "IsAsyncCustomer": True,
                "Email": "twice@example.com",
                "FirstName": "Old",
            },
            {"AccountNumber": "C-500", "RecordId": 500, "Email": "twice@example.com", "FirstName": "Old"},
        ]
    )
    stack.post(event(1, email="twice@example.com", firstName="New"))
    stack.wait()
    names = {c["AccountNumber"]: c["FirstName"] for c in stack.emulator.customers()}
    assert names == {"9f1c2d4e-0000-4000-8000-000000000001": "Old", "C-500": "New"}


def test_pick_customer_is_deterministic():
    matches = [
        {"AccountNumber": "B", "RecordId": 7},
        {"AccountNumber": "A", "RecordId": 7},
        {"AccountNumber": "Z", "RecordId": 1, "IsAsyncCustomer": True},
    ]
    assert pick_customer(matches)["AccountNumber"] == "A"
    assert pick_customer(list(reversed(matches)))["AccountNumber"] == "A"
    assert pick_customer([matches[2]])["AccountNumber"] == "Z"


def _letter(i: int, reason: str, when: datetime, email_hash: str = "a" * 64) -> DeadLetter:
    envelope = json.dumps({"v": 1, "event": {"eventId": f"evt-{i}"}})
    return DeadLetter(
        email_hash=email_hash,
        event_id=f"evt-{i}",
        reason=reason,
        message="m",
        error_resource_id=None,
        status=None,
        attempts=1,
        first_seen_at=when,
        dead_lettered_at=when,
        envelope=envelope,
    )


def _replay(*args: str) -> str:
    out = io.StringIO()
    assert replay.main(list(args), out=out) == 0
    return out.getvalue()


def test_replay_filters_select_exactly_what_they_say(stack):
    t0 = datetime(2026, 11, 20, tzinfo=UTC)
    store = stack.runtime.deadletters
    store.put(_letter(1, "commerce_rejected", t0))
    store.put(_letter(2, "retries_exhausted:commerce_throttled", t0 + timedelta(days=1)))
    store.put(_letter(3, "retries_exhausted:commerce_server", t0 + timedelta(days=2), email_hash="b" * 64))

    def listed(*filters):
        return sorted(json.loads(line)["eventId"] for line in _replay("list", "--json", *filters).splitlines())

    assert listed() == ["evt-1", "evt-2", "evt-3"]
    assert listed("--reason", "commerce_rejected") == ["evt-1"]
    assert listed("--reason", "retries_exhausted:*") == ["evt-2", "evt-3"]
    assert listed("--event-id", "evt-2") == ["evt-2"]
    assert listed("--email-hash", "b" * 64) == ["evt-3"]
    assert listed("--email-hash", "b" * 12) == ["evt-3"]  # the shortened hash logs and listings show
    assert listed("--since", "2026-11-21T00:00:00+00:00") == ["evt-2", "evt-3"]
    assert listed("--until", "2026-11-21T00:00:00Z") == ["evt-1"]


def test_replay_keeps_a_dead_letter_that_was_replaced_meanwhile(stack):
    store = stack.runtime.deadletters
    t0 = datetime(2026, 11, 20, tzinfo=UTC)
    store.put(_letter(1, "commerce_rejected", t0))
    [as_read] = list(store.query())
    store.put(_letter(1, "commerce_rejected", t0 + timedelta(hours=1)))  # the event failed again
    assert store.delete(as_read) is False
    [kept] = list(store.query())
    assert kept.dead_lettered_at == t0 + timedelta(hours=1)
    assert store.delete(kept) is True
    assert list(store.query()) == []


def test_replay_refuses_to_run_without_a_filter_and_rejects_a_bad_email(stack, capsys):
    assert replay.main(["replay"], out=io.StringIO()) == 2
    assert replay.main(["list", "--email", "not an email"], out=io.StringIO()) == 2
    assert replay.main(["list", "--email-hash", "abc"], out=io.StringIO()) == 2
    out = io.StringIO()
    assert replay.main(["replay", "--all", "--dry-run"], out=out) == 0
    assert '"would_replay": 0' in out.getvalue()
    assert "not an email" not in capsys.readouterr().err


def test_retention_purges_old_dead_letters_and_queue_readings_are_reported(stack_factory):
    stack = stack_factory(queues=False)
    now = datetime.now(UTC)
    store = stack.runtime.deadletters
    store.put(_letter(1, "commerce_rejected", now - timedelta(days=40)))
    store.put(_letter(2, "commerce_rejected", now - timedelta(days=10)))
    assert stack.post([event(1), event(2, email="grace@example.com")]).status_code == 202

    readings = report(stack.runtime.monitored_queues(), store, 30, stack.runtime.telemetry, now + timedelta(seconds=30))
    by_queue = {r.queue: r for r in readings}
    main = by_queue[stack.runtime.settings.events_queue]
    assert main.depth == 2 and 25 <= main.oldest_age_s <= 60
    assert by_queue[stack.runtime.settings.poison_queue].depth == 0
    assert [d.event_id for d in store.query()] == ["evt-2"]


def test_every_log_line_of_one_event_carries_its_ids(stack):
    stack.emulator.set_faults(script=[{"operation": "create", "fault": "unavailable"}])
    stack.post(event(1, email="ids@example.com"))
    stack.wait()
    product = [
        r
        for r in stack.telemetry.records
        if r.name.startswith(("customer_sync.processor", "shared.adapters.commerce", "customer_sync.telemetry"))
    ]
    assert any(r.name.startswith("shared.adapters.commerce") for r in product)
    for record in product:
        assert record.event_id == "evt-1", (record.name, record.getMessage())
        assert record.correlation_id
        assert "ids@example.com" not in record.getMessage()


def test_a_defect_in_validation_is_a_logged_500_not_the_senders_fault(stack, monkeypatch, caplog):
    import shared.core.fields

    def broken(value):
        raise KeyError("grace@example.com")

    # the language field's normaliser (shared.core.fields.language) calls this on every language
    monkeypatch.setattr(shared.core.fields, "normalise_language", broken)
    caplog.set_level(logging.ERROR, logger="customer_sync")
    response = stack.post(
        event(1, email="grace@example.com", language="en-US"), headers={"x-correlation-id": "defect-1"}
    )
    assert response.status_code == 500
    assert response.json()["correlationId"] == "defect-1"
    [line] = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert "KeyError" in line.getMessage() and "grace@" not in line.getMessage()
    assert line.correlation_id == "defect-1"
