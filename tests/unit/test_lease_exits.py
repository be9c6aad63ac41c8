"""Every way out of applying an event writes its lease off the entry, except a worker going away: a
release then could hide a write it had sent, so its lease is left to expire and be folded in as
uncertain by the next worker."""

from __future__ import annotations

import pytest

from shared.core.ledger_rules import State
from shared.core.telemetry_names import Outcome
from tests.support.builders import event
from tests.support.processor_world import FULL, WorkerDied, World, at, created, envelope


def test_a_defect_before_any_commerce_call_releases_the_lease(monkeypatch):
    world = World()

    def broken(*_: object) -> None:
        raise RuntimeError("a defect between the lease and the first call")

    monkeypatch.setattr("shared.usecases.processor.lease._narrowed", broken)
    ev = event("evt-1", at(0), **FULL)
    result = world.send(envelope(ev))
    assert result.outcome is Outcome.RETRYING and result.failure.reason == "unexpected_error"
    assert world.commerce.ops == []
    entry = world.entry(ev.email_hash)
    assert entry.lease is None and entry.state is not State.UNCERTAIN


def test_a_worker_going_away_mid_write_leaves_its_lease_to_expire():
    world = World()
    ev = created(world)
    world.commerce.fail("update", WorkerDied(), commit=True)  # type: ignore[arg-type]
    with pytest.raises(WorkerDied):
        world.send(envelope(event("evt-2", at(1), **{**FULL, "firstName": "Grace"})))
    entry = world.entry(ev.email_hash)
    assert entry.lease is not None and entry.lease.owner == "worker-2"
