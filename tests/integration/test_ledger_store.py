"""LedgerStore on real Azurite: round trips, ETag-conditional writes, and the processor on top of it."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from azure.data.tables import TableServiceClient

from shared.adapters.ledger_table import LedgerStore
from shared.core.commerce_errors import CommerceTimeoutError
from shared.core.ledger_rules import Lease, LedgerConflict, LedgerEntry, OrderKey, State
from shared.core.telemetry_names import Outcome
from tests.support.builders import NOW, event, full_entry
from tests.support.processor_world import FULL, NEW_EMAIL, OLD_EMAIL, World, at, envelope

pytestmark = pytest.mark.integration


@pytest.fixture
def store(azurite):
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    name = f"ledger{uuid.uuid4().hex[:16]}"
    table = service.create_table(name)
    yield LedgerStore(table)
    service.delete_table(name)


def test_a_missing_entry_reads_as_none(store):
    assert store.read("0" * 64) is None
    assert store.entries() == []


def test_insert_then_read_round_trips_every_field(store):
    entry = full_entry()
    written = store.write(entry)
    assert written.etag and written == entry
    read = store.read(entry.email_hash)
    assert read == entry and read.etag == written.etag
    assert read.last.occurred_at == entry.last.occurred_at  # microseconds and UTC survive
    assert read.lease.until.tzinfo is not None and read.recent_event_ids[1] == "évt/1 ?#"


def test_a_second_insert_conflicts(store):
    store.write(LedgerEntry("1" * 64))
    with pytest.raises(LedgerConflict):
        store.write(LedgerEntry("1" * 64, account_number="x"))
    assert store.read("1" * 64).account_number is None


def test_replace_needs_the_etag_that_was_read(store):
    first = store.write(LedgerEntry("2" * 64))
    second = store.write(replace(first, account_number="004000", state=State.APPLIED))
    assert second.etag != first.etag
    with pytest.raises(LedgerConflict):  # a writer that read before the second write lost
        store.write(replace(first, lease=Lease("late", NOW, None)))
    current = store.read("2" * 64)
    assert current.account_number == "004000" and current.lease is None
    # the current ETag wins, and a lease can be cleared again
    leased = store.write(replace(current, lease=Lease("w", NOW + timedelta(seconds=5), OrderKey(NOW, "e"))))
    cleared = store.write(replace(leased, lease=None))
    assert store.read("2" * 64) == cleared and cleared.lease is None


def test_a_write_to_a_deleted_entry_conflicts(store):
    written = store.write(LedgerEntry("3" * 64))
    store.table.delete_entity("3" * 64, "ledger")
    with pytest.raises(LedgerConflict):
        store.write(replace(written, account_number="x"))


def test_only_one_of_two_racing_writers_wins(store):
    base = store.write(LedgerEntry("4" * 64))
    results: list[str] = []
    barrier = threading.Barrier(8)

    def writer(n: int) -> None:
        barrier.wait()
        try:
            store.write(replace(base, lease=Lease(f"w{n}", NOW, None)))
            results.append(f"w{n}")
        except LedgerConflict:
            results.append("conflict")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r != "conflict"]
    assert len(winners) == 1 and len(results) == 8
    assert store.read("4" * 64).lease.owner == winners[0]


def test_entries_lists_every_entry(store):
    for c in "567":
        store.write(LedgerEntry(c * 64))
    assert sorted(e.email_hash for e in store.entries()) == ["5" * 64, "6" * 64, "7" * 64]


def test_the_processor_on_the_table(store):
    world = World()
    world.deps.ledger = store
    ev1 = event("evt-1", at(0), **FULL)
    assert world.send(envelope(ev1)).outcome is Outcome.CREATED
    assert world.send(envelope(ev1)).outcome is Outcome.DUPLICATE
    assert world.send(envelope(event("evt-0", at(-1), **FULL))).outcome is Outcome.STALE
    world.commerce.fail("update", CommerceTimeoutError("read timeout", operation="update"))
    ev2 = event("evt-2", at(1), **{**FULL, "phone": "+1 202 555 0199"})
    assert world.send(envelope(ev2)).outcome is Outcome.RETRYING
    assert store.read(ev1.email_hash).state is State.UNCERTAIN
    again, _ = world.last_requeued()
    world.commerce.log.clear()
    assert world.send(again).outcome is Outcome.UPDATED and world.commerce.ops == ["get", "update"]
    move = event("evt-3", at(2), email=NEW_EMAIL, previousEmail=OLD_EMAIL, **FULL)
    assert world.send(envelope(move)).outcome is Outcome.UPDATED
    old, new = store.read(ev1.email_hash), store.read(move.email_hash)
    assert old.state is State.MOVED and old.moved_to == move.email_hash
    assert new.state is State.APPLIED and new.account_number and new.lease is None
    assert len(store.entries()) == 2 and len(world.commerce.customers) == 1


def test_a_missing_ledger_table_is_a_retried_storage_failure_not_an_empty_ledger(azurite):
    from azure.data.tables import TableClient

    from shared.core.failures import Disposition, classify_failure

    store = LedgerStore(TableClient.from_connection_string(azurite.connection_string, f"nosuch{uuid.uuid4().hex[:8]}"))
    with pytest.raises(Exception) as raised:
        store.read("a" * 64)
    failure = classify_failure(raised.value)
    assert (failure.disposition, failure.reason) == (Disposition.RETRY, "storage_not_provisioned")
    with pytest.raises(Exception) as raised:
        store.write(LedgerEntry("a" * 64))
    assert classify_failure(raised.value).reason == "storage_not_provisioned"


def test_the_direct_requests_and_the_sdk_read_and_write_the_same_entities(store):
    """Workers of the previous release write through the SDK: both see one entity, one ETag."""
    from shared.adapters.storage import HttpTableEntities, SdkTableEntities

    assert isinstance(store.entities, HttpTableEntities)
    sdk = LedgerStore(store.table, SdkTableEntities(store.table))
    entry = full_entry()
    by_sdk = sdk.write(entry)
    read = store.read(entry.email_hash)
    assert read == entry and read.etag == by_sdk.etag
    by_http = store.write(replace(read, account_number="004242"))
    again = sdk.read(entry.email_hash)
    assert again == by_http and again.etag == by_http.etag
    with pytest.raises(LedgerConflict):
        sdk.write(replace(by_sdk, account_number="late"))  # the SDK's stale ETag loses to ours
    with pytest.raises(LedgerConflict):
        store.write(LedgerEntry(entry.email_hash))  # an insert over an existing entity


def test_text_the_sdk_can_write_the_direct_requests_write_too(store):
    """A sender's event id with non-ASCII text and a lone surrogate (JSON allows it, UTF-8 does not):
    sent as ``\\u`` escapes, as the SDK sends it, it round-trips and reads the same through both."""
    from shared.adapters.storage import SdkTableEntities

    odd = "évt-\ud800-🙂"
    entry = replace(full_entry(), last=OrderKey(NOW, odd))
    written = store.write(entry)
    assert store.read(entry.email_hash).last.event_id == odd
    assert LedgerStore(store.table, SdkTableEntities(store.table)).read(entry.email_hash) == written
