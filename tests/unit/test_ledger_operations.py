"""How many ledger operations each kind of event costs, and that the cheaper paths keep the ledger's
guarantees: a likely-new email takes its lease by the insert itself (no read first), and an event with
nothing to write to Commerce is recorded by one ETag-conditional replace, with no lease."""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace
from datetime import timedelta

import pytest

from shared.core.ledger_rules import Lease, LedgerConflict, OrderKey, State
from shared.core.telemetry_names import Outcome
from shared.usecases.processor import EntryPresence, process_message
from tests.support.builders import NOW, event
from tests.support.processor_world import FULL, OLD_EMAIL, RecordingLedger, World, at, created, envelope
from tests.support.simulation import simulate


class OpsLedger(RecordingLedger):
    """Records every operation: ("read" | "insert" | "replace", ok), and runs ``before_write`` first."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, bool]] = []
        self.before_write = lambda entry: None

    def read(self, email_hash):
        self.ops.append(("read", True))
        return super().read(email_hash)

    def write(self, entry):
        op = "insert" if entry.etag is None else "replace"
        self.before_write(entry)
        try:
            stored = super().write(entry)
        except LedgerConflict:
            self.ops.append((op, False))
            raise
        self.ops.append((op, True))
        return stored


class Always(EntryPresence):
    """Insert first every time (True) or never (False)."""

    def __init__(self, insert_first: bool):
        super().__init__()
        self._always = insert_first

    def insert_first(self, email_hash, event):
        return self._always


@pytest.fixture
def world() -> World:
    w = World()
    w.ledger = w.deps.ledger = OpsLedger()
    return w


def ops_of(world: World, ev) -> list[tuple[str, bool]]:
    world.ledger.ops.clear()
    result = world.send(envelope(ev))
    return result, list(world.ledger.ops)


# --- a new email: the insert takes the lease -------------------------------------------------------------


def test_a_new_email_costs_an_insert_with_the_lease_and_the_record(world):
    world.deps.presence = Always(True)
    result, ops = ops_of(world, event("evt-1", at(0), **FULL))
    assert result.outcome is Outcome.CREATED and world.commerce.ops == ["search", "create"]
    assert ops == [("insert", True), ("replace", True)]
    first = world.ledger.history[0]
    assert first.lease is not None and first.lease.pending == OrderKey(at(0), "evt-1") and first.last is None
    entry = world.entry(first.email_hash)
    assert entry.state is State.APPLIED and entry.lease is None and entry.account_number


def test_read_first_a_new_email_costs_three(world):
    world.deps.presence = Always(False)
    _, ops = ops_of(world, event("evt-1", at(0), **FULL))
    assert ops == [("read", True), ("insert", True), ("replace", True)]


def test_a_wrong_guess_costs_one_failed_insert_then_goes_on_as_a_read(world):
    ev1 = created(world)
    world.deps.presence = Always(True)
    result, ops = ops_of(world, event("evt-2", at(1), **{**FULL, "phone": "+1 202 555 0199"}))
    assert result.outcome is Outcome.UPDATED and world.commerce.ops == ["update"]
    assert ops == [("insert", False), ("read", True), ("replace", True), ("replace", True)]
    world.commerce.log.clear()
    result, ops = ops_of(world, event("evt-2", at(1), **{**FULL, "phone": "+1 202 555 0199"}))
    assert result.outcome is Outcome.DUPLICATE and ops == [("insert", False), ("read", True)]
    result, ops = ops_of(world, event("evt-0", at(-1), **FULL))
    assert result.outcome is Outcome.STALE and world.commerce.ops == []
    assert len(world.commerce.by_email(OLD_EMAIL)) == 1 and world.entry(ev1.email_hash).lease is None


def test_two_deliveries_of_a_new_email_guessed_new_make_one_customer(world):
    world.deps.presence = Always(True)
    ev = event("evt-1", at(0), **FULL)
    inner: list = []

    def second_delivery(op: str) -> None:
        if op == "search" and not inner:  # the second worker runs while the first one searches
            inner.append(process_message(envelope(ev).to_json(), 1, world.deps))

    world.commerce.before_call = second_delivery
    assert process_message(envelope(ev).to_json(), 1, world.deps).outcome is Outcome.CREATED
    assert inner[0].outcome is Outcome.DEFERRED  # its insert failed, the read found a live lease
    assert world.commerce.ops == ["search", "create"] and len(world.commerce.by_email(OLD_EMAIL)) == 1


def test_a_guessed_new_email_change_takes_both_leases_as_before(world):
    old = created(world, email=OLD_EMAIL, **FULL)
    world.deps.presence = Always(True)
    move = event("evt-2", at(1), email="ada.lovelace@example.org", previousEmail=OLD_EMAIL, **FULL)
    result, ops = ops_of(world, move)
    assert result.outcome is Outcome.UPDATED
    assert ops[0] == ("insert", True)  # the new address's entry, leased by its insert
    new = world.entry(move.email_hash)
    assert new.state is State.APPLIED and new.lease is None and new.moved_from is None
    assert world.entry(old.email_hash).state is State.MOVED
    assert len(world.commerce.customers) == 1


# --- an event with nothing to write: one conditional replace, no lease -----------------------------------


def test_unchanged_data_costs_a_read_and_one_replace_and_never_leases(world):
    created(world)
    writes = len(world.ledger.history)
    ev2 = event("evt-2", at(1), **FULL)
    result, ops = ops_of(world, ev2)
    assert result.outcome is Outcome.UNCHANGED and world.commerce.ops == []
    assert ops == [("read", True), ("replace", True)]
    [recorded] = world.ledger.history[writes:]
    assert recorded.lease is None and recorded.last == OrderKey.of(ev2) and "evt-2" in recorded.recent_event_ids
    assert recorded.state is State.APPLIED and recorded.hashes
    assert all(recorded.group_keys[g] == OrderKey.of(ev2) for g in ("name", "phone", "address"))


def test_changed_groups_holding_nothing_commerce_stores_are_also_recorded_without_a_lease(world):
    created(world)
    # a PATCH of nothing: the same phone written differently normalises to the same value
    result, ops = ops_of(world, event("evt-2", at(1), **{**FULL, "phone": "+1 (202) 555-0142"}))
    assert result.outcome is Outcome.UNCHANGED and world.commerce.ops == []
    assert [op for op, _ in ops] == ["read", "replace"]


def test_unchanged_data_is_deferred_while_another_worker_holds_the_lease(world):
    ev1 = created(world)
    busy = Lease("someone-else", NOW + timedelta(seconds=60), OrderKey(at(3), "evt-3"), frozenset({"name"}))
    world.ledger.put(replace(world.entry(ev1.email_hash), lease=busy))
    result, ops = ops_of(world, event("evt-2", at(1), **FULL))
    assert result.outcome is Outcome.DEFERRED and ops == [("read", True)]
    assert world.entry(ev1.email_hash).lease == busy


def test_a_lease_taken_between_the_read_and_the_record_wins_and_the_event_is_deferred(world):
    ev1 = created(world)
    other = Lease("someone-else", NOW + timedelta(seconds=60), OrderKey(at(3), "evt-3"))

    def race(entry):  # another worker takes the lease just before our conditional replace
        world.ledger.before_write = lambda e: None
        world.ledger.put(replace(world.entry(ev1.email_hash), lease=other))

    world.ledger.before_write = race
    result, ops = ops_of(world, event("evt-2", at(1), **FULL))
    assert result.outcome is Outcome.DEFERRED and world.commerce.ops == []
    assert ("replace", False) in ops  # our record lost to the lease
    entry = world.entry(ev1.email_hash)
    assert entry.lease == other and entry.last == OrderKey.of(ev1)  # nothing written over the holder


def test_a_newer_event_recorded_between_the_read_and_the_record_makes_the_event_judged_again(world):
    ev1 = created(world)
    newer = event("evt-3", at(3), **FULL)

    def race(entry):
        world.ledger.before_write = lambda e: None
        assert process_message(envelope(newer).to_json(), 1, world.deps).outcome is Outcome.UNCHANGED

    world.ledger.before_write = race
    result = process_message(envelope(event("evt-2", at(1), **FULL)).to_json(), 1, world.deps)
    assert result.outcome is Outcome.STALE  # re-read: every group it carries has a newer key now
    assert world.entry(ev1.email_hash).last == OrderKey.of(newer)


def test_an_expired_lease_with_a_pending_event_is_never_recorded_over_without_a_read(world):
    ev1 = created(world)
    dead = Lease("dead-worker", NOW - timedelta(seconds=1), OrderKey(at(1), "evt-1b"), frozenset({"phone"}))
    world.ledger.put(replace(world.entry(ev1.email_hash), lease=dead))
    result, ops = ops_of(world, event("evt-2", at(2), **FULL))
    # the dead worker's phone write may have landed: the lease is taken and the customer read first
    assert result.outcome is Outcome.UNCHANGED and world.commerce.ops == ["get"]
    assert [op for op, _ in ops] == ["read", "replace", "replace"]


def test_an_expired_lease_with_nothing_pending_does_not_stop_the_record(world):
    ev1 = created(world)
    world.ledger.put(replace(world.entry(ev1.email_hash), lease=Lease("gone", NOW - timedelta(seconds=1), None)))
    result, ops = ops_of(world, event("evt-2", at(1), **FULL))
    assert result.outcome is Outcome.UNCHANGED and [op for op, _ in ops] == ["read", "replace"]
    assert world.entry(ev1.email_hash).lease is None


def test_an_uncertain_entry_is_not_recorded_blind(world):
    ev1 = created(world)
    world.ledger.put(replace(world.entry(ev1.email_hash), state=State.UNCERTAIN, hashes={}))
    result = world.send(envelope(event("evt-2", at(1), **FULL)))
    assert result.outcome is Outcome.UNCHANGED and world.commerce.ops == ["get"]  # read, then nothing to do


def test_an_older_events_unchanged_fresh_groups_are_recorded_for_those_groups_only(world):
    created(world, minutes=0, **FULL)
    world.send(envelope(event("evt-9", at(9), address=FULL["address"])))  # a newer address-only event
    result, ops = ops_of(world, event("evt-5", at(5), **FULL))  # older: its name, phone... are fresh
    assert result.outcome is Outcome.UNCHANGED and [op for op, _ in ops] == ["read", "replace"]
    entry = world.entry(event("x", at(0), **FULL).email_hash)
    assert entry.group_keys["address"] == OrderKey(at(9), "evt-9") and entry.group_keys["name"] == OrderKey(
        at(5), "evt-5"
    )
    assert entry.last == OrderKey(at(9), "evt-9")


def test_a_forced_replay_still_takes_the_lease_and_reads(world):
    ev1 = created(world)
    world.ledger.ops.clear()
    forced = world.send(envelope(ev1, force=True))
    assert forced.outcome is Outcome.UNCHANGED and world.commerce.ops == ["get"]
    assert [op for op, _ in world.ledger.ops] == ["read", "replace", "replace"]


# --- the guess itself --------------------------------------------------------------------------------------


def test_the_guess_starts_open_and_follows_what_unseen_emails_turned_out_to_be():
    presence, ev = EntryPresence(), event("evt-1", at(0), **FULL)
    assert presence.insert_first("a" * 64, ev)  # no information: insert first
    presence.observed("a" * 64, existed=True)
    assert not presence.insert_first("b" * 64, ev)  # unseen emails turned out to exist: read first
    backfill = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(20)]
    for h in backfill:
        presence.observed(h, existed=False)  # a backfill of new customers
    assert presence.insert_first("c" * 64, ev)
    assert not presence.insert_first(backfill[3], ev)  # seen here: its entry exists


def test_the_sender_saying_created_is_a_reason_to_insert_first():
    presence = EntryPresence()
    known = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(20)]
    for h in known:
        presence.observed(h, existed=True)
    assert not presence.insert_first("d" * 64, event("evt-1", at(0), **FULL))
    created_event = event("evt-1", at(0), **FULL).model_copy(update={"event_type": "customer.created"})
    assert presence.insert_first("d" * 64, created_event)
    assert not presence.insert_first(known[1], created_event)


def test_the_guess_remembers_a_bounded_number_of_emails():
    presence = EntryPresence(remembered=100)
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(1_000)]
    for h in hashes:
        presence.observed(h, existed=True)
    assert len(presence._seen) == 100 and hashes[-1][:32] in presence._seen and hashes[0][:32] not in presence._seen


# --- the randomized deliveries of test_processor, with every first operation an insert -------------------


@pytest.mark.parametrize("seed", range(40))
def test_random_deliveries_end_in_the_latest_data_when_every_first_operation_is_an_insert(seed):
    simulate(seed, presence=Always(True))


@pytest.mark.parametrize("seed", range(40))
def test_random_partial_events_end_at_the_latest_group_when_every_first_operation_is_an_insert(seed):
    simulate(seed, events_count=12, partial=True, presence=Always(True))


def test_guesses_at_random_change_nothing_in_the_end_state():
    rnd = random.Random(5)

    class Coin(EntryPresence):
        def insert_first(self, email_hash, event):
            return rnd.random() < 0.5

    for seed in range(20):
        simulate(1000 + seed, events_count=12, partial=True, presence=Coin())
