"""Many events for ONE email, delivered at once to 8 separate worker processes: Commerce ends with
one customer holding the latest event's data. Assertions read the emulator's own state."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.workers import PLACES, by_email, customer_event, differences, running_pipeline, which_event

pytestmark = pytest.mark.integration

WORKERS = 8
EVENTS = 50
DRAIN_TIMEOUT = 90


def same_email_events(email: str, count: int, seed: int, first_serial: int = 0):
    """``count`` full events for ``email`` with distinct data and distinct occurredAt, shuffled,
    the latest one first in the batch (so "the last one written wins" gives the wrong answer)."""
    rnd = random.Random(seed)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    minutes = rnd.sample(range(1, 150), count)
    run = uuid.uuid4().hex[:8]  # event ids are logged: they carry no part of the email
    events = [
        customer_event(
            f"evt-{run}-{first_serial + i:03d}", email, base + timedelta(minutes=m), first_serial + i, PLACES[0], rnd
        )
        for i, m in enumerate(minutes)
    ]
    latest = max(events, key=lambda e: e.order_key)
    rnd.shuffle(events)
    events.remove(latest)
    return [latest, *events], latest


def workers_that_processed(pipeline, event_ids: set[str]) -> set[int]:
    """The worker processes that logged an outcome for one of the events (and, for information,
    prints the outcomes by kind and by worker)."""
    outcomes = [(index, outcome) for index, outcome, event_id, _ in pipeline.outcomes() if event_id in event_ids]
    print(
        f"\noutcomes: {dict(Counter(o for _, o in outcomes))} over workers "
        f"{dict(sorted(Counter(i for i, _ in outcomes).items()))}"
    )
    return {index for index, _ in outcomes}


def assert_latest_won(emulator, email, events, latest):
    customers = by_email(emulator.customers()).get(email, [])
    count = len(customers)
    assert count == 1, f"{count} customers for one email"
    [customer] = customers
    if differences(customer, latest.expected):
        holder = which_event(customer, events)
        pytest.fail(
            f"the customer does not hold the latest event ({latest.event_id}): it differs in "
            f"{differences(customer, latest.expected)}; it holds "
            f"{holder.event_id + ' (older)' if holder else 'a mix of events'}"
        )
    return customer


def test_concurrent_events_for_a_new_email_create_one_customer_with_the_latest_data(azurite, emulator, tmp_path):
    email = f"ledger.new.{uuid.uuid4().hex[:8]}@example.com"
    events, latest = same_email_events(email, EVENTS, seed=11)
    with running_pipeline(azurite, emulator, tmp_path, workers=WORKERS, start_workers=False) as pipeline:
        # Queued before any worker runs: the workers meet all 50 at once, not one by one as the
        # ingest writes them (the first would be created long before the second arrives).
        reply = pipeline.post([e.raw for e in events])
        assert reply.status == 202, reply.body
        assert set(reply.accepted) == {e.event_id for e in events}
        pipeline.start_workers()
        print(f"\ndrained {pipeline.wait_until_drained(DRAIN_TIMEOUT):.1f} s after the workers started")

        # The test means something only if the events really were spread over several processes.
        assert len(workers_that_processed(pipeline, {e.event_id for e in events})) >= 2
        assert pipeline.deadletters() == [] and pipeline.stranded() == 0
        assert_latest_won(emulator, email, events, latest)
        assert emulator.calls()["create"] == 1  # no faults here: every create made a customer


@pytest.mark.parametrize("existing", ["created through the pipeline", "seeded in Commerce"])
def test_concurrent_updates_of_an_existing_customer_leave_the_latest_data(azurite, emulator, tmp_path, existing):
    email = f"ledger.old.{uuid.uuid4().hex[:8]}@example.com"
    rnd = random.Random(12)
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    first = customer_event(f"evt-{uuid.uuid4().hex[:8]}-first", email, old, 9_000, PLACES[0], rnd)
    events, latest = same_email_events(email, EVENTS, seed=13, first_serial=100)
    with running_pipeline(azurite, emulator, tmp_path, workers=WORKERS) as pipeline:
        if existing == "seeded in Commerce":
            emulator.seed([{"AccountNumber": "C-LEDGER-1", "Email": email, "FirstName": "Old", "LastName": "Name"}])
        else:
            assert pipeline.post([first.raw]).status == 202
            pipeline.wait_until_drained(DRAIN_TIMEOUT)
        [before] = by_email(emulator.customers())[email]
        if existing != "seeded in Commerce":
            assert not differences(before, first.expected)

        posting = time.monotonic()
        reply = pipeline.post([e.raw for e in events])
        assert reply.status == 202, reply.body
        pipeline.wait_until_drained(DRAIN_TIMEOUT)
        print(f"\n{EVENTS} updates posted and drained in {time.monotonic() - posting:.1f} s")

        assert len(workers_that_processed(pipeline, {e.event_id for e in events})) >= 2
        assert pipeline.deadletters() == [] and pipeline.stranded() == 0
        customer = assert_latest_won(emulator, email, events, latest)
        assert customer["AccountNumber"] == before["AccountNumber"]
        assert emulator.calls()["create"] == (0 if existing == "seeded in Commerce" else 1)
