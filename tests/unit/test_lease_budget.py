"""A Commerce write starts only with twice one call's budget (slot wait + call) left on every lease it
relies on, measured after any renewal: renewing is a storage write, and the time it takes comes out of
the lease it renews (and out of the other lease of an email change)."""

from __future__ import annotations

from shared.core.ledger_rules import State
from shared.core.telemetry_names import Outcome
from tests.support.builders import event
from tests.support.processor_world import (
    CALL_BUDGET,
    FULL,
    NEW_EMAIL,
    OLD_EMAIL,
    RecordingLedger,
    World,
    at,
    created,
    envelope,
)


class SlowRenewals(RecordingLedger):
    """A renewal (a write of a lease already held, by the same owner) of these emails takes ``seconds``."""

    def __init__(self, clock) -> None:
        super().__init__()
        self.clock = clock
        self.slow: dict[str, float] = {}

    def write(self, entry):
        current = self.entries.get(entry.email_hash)
        renewal = (
            entry.lease is not None
            and current is not None
            and current.lease is not None
            and current.lease.owner == entry.lease.owner
            and entry.lease.until > current.lease.until
        )
        stored = super().write(entry)
        if renewal:
            self.clock.advance(self.slow.get(entry.email_hash, 0))
        return stored


def world_with_slow_renewals() -> World:
    world = World()
    world.ledger = world.deps.ledger = SlowRenewals(world.clock)
    world.deps.lease_seconds = 2 * CALL_BUDGET  # the shortest lease settings allow
    return world


def test_a_renewal_that_eats_into_the_budget_defers_the_write_instead_of_starting_it():
    world = world_with_slow_renewals()
    ev = event("evt-1", at(0), **FULL)
    writes_started_with: list[float] = []

    def during(op: str) -> None:
        if op == "search":
            world.clock.advance(1)  # less than the budget left: the lease is renewed before the create
        else:
            entry = world.entry(ev.email_hash)
            writes_started_with.append((entry.lease.until - world.clock()).total_seconds())

    world.commerce.before_call = during
    world.ledger.slow[ev.email_hash] = 5  # and the renewal takes 5 s of it
    result = world.send(envelope(ev))
    assert result.outcome is Outcome.DEFERRED and world.commerce.ops == ["search"]
    entry = world.entry(ev.email_hash)
    assert entry.lease is None and entry.state is State.NEW and entry.last is None  # nothing written
    again, delay = world.last_requeued()
    assert again.attempt == 1 and 1 <= delay <= 5
    # Sent again, with a renewal that takes no time, it is created with the whole budget left.
    world.ledger.slow.clear()
    world.commerce.log.clear()
    assert world.send(again).outcome is Outcome.CREATED and world.commerce.ops == ["search", "create"]
    assert writes_started_with == [2 * CALL_BUDGET]


def test_renewing_the_previous_address_lease_is_counted_against_the_new_address_lease_too():
    world = world_with_slow_renewals()
    ev1 = created(world)
    change = event("evt-2", at(1), email=NEW_EMAIL, previousEmail=OLD_EMAIL, **FULL)
    world.commerce.before_call = lambda op: world.clock.advance(1) if op == "get" else None
    world.ledger.slow[ev1.email_hash] = 5  # the old address's lease, renewed second, takes 5 s
    result = world.send(envelope(change))
    assert result.outcome is Outcome.DEFERRED and world.commerce.ops == ["search", "get"]
    assert world.entry(change.email_hash).lease is None and world.entry(ev1.email_hash).lease is None
    [customer] = world.commerce.customers.values()
    assert customer["Email"] == OLD_EMAIL  # not written
    world.ledger.slow.clear()
    again, _ = world.last_requeued()
    assert world.send(again).outcome is Outcome.UPDATED
    assert world.entry(ev1.email_hash).state is State.MOVED


def test_a_quick_renewal_with_a_longer_lease_still_writes():
    world = world_with_slow_renewals()
    world.deps.lease_seconds = 2 * CALL_BUDGET + 10
    ev = event("evt-1", at(0), **FULL)
    world.commerce.before_call = lambda op: world.clock.advance(11) if op == "search" else None
    world.ledger.slow[ev.email_hash] = 5
    assert world.send(envelope(ev)).outcome is Outcome.CREATED
    assert world.ledger.writes == 3  # lease, renewal, record
