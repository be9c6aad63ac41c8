"""Many deliveries of one email's events in random order, with faults, crashes and a second worker
racing the first, over the processor's in-memory world; the end state is checked against the events
applied in order, once."""

from __future__ import annotations

import random
from datetime import timedelta

from shared.core.commerce_errors import CommerceServerError, CommerceThrottledError, CommerceTimeoutError
from shared.core.ledger_rules import ORDERED_GROUPS, OrderKey, State, carried_groups
from shared.core.telemetry_names import Outcome
from shared.usecases.processor import process_message
from tests.support.builders import event
from tests.support.processor_world import CALL_BUDGET, FULL, OLD_EMAIL, Fault, WorkerDied, World, at, envelope

FINAL = {Outcome.CREATED, Outcome.UPDATED, Outcome.UNCHANGED, Outcome.DUPLICATE, Outcome.STALE, Outcome.DEAD_LETTERED}
HOST_VISIBILITY_SECONDS = 30  # a crashed delivery's message becomes visible again after this


def partial_customer(rnd: random.Random) -> dict:
    """A random subset of the field groups, each carried whole (so its value is one event's)."""
    values = {
        "name": lambda: {
            "firstName": rnd.choice(["Ada", "Grace", "Ida"]),
            "middleName": rnd.choice(["King", None]),
            "lastName": rnd.choice(["Lovelace", "Hopper"]),
        },
        "phone": lambda: {"phone": rnd.choice(["+1 202 555 0142", "+1 202 555 0199", None])},
        "profile": lambda: {
            "language": rnd.choice(["en-GB", "da-DK"]),
            "currencyCode": rnd.choice(["GBP", "DKK"]),
            "customerGroup": rnd.choice(["40", "50"]),
        },
        "consent": lambda: {"isOptedInMarketing": rnd.choice([True, False])},
        "address": lambda: {
            "address": {
                **FULL["address"],
                "street": rnd.choice(["Pine St", "Main St"]),
                "city": rnd.choice(["Seattle", "Portland"]),
            }
        },
    }
    customer: dict = {}
    for group in ORDERED_GROUPS:
        if rnd.random() < 0.45:
            customer.update(values[group]())
    return customer


def group_value(customer: dict, group: str):
    """What Commerce holds for one field group, in the event's normalised terms."""
    contacts = customer.get("Contacts") or []
    if group == "name":
        return (
            customer["FirstName"] or None,
            customer["MiddleName"] or None,
            customer["LastName"] or None,
            customer["Name"],
        )
    if group == "phone":
        phones = [c["Value"] for c in contacts if c["AddressTypeValue"] == 1]
        return customer["Phone"] or None, phones[:1] if customer["Phone"] else None
    if group == "profile":
        return customer["Language"], customer["CurrencyCode"], customer["CustomerGroup"]
    if group == "consent":
        return {bool(c.get("IsOptedInMarketing")) for c in contacts}  # one value on every contact
    address = next(a for a in customer["Addresses"] if a["IsPrimary"])
    return address["Street"], address["City"]


def expected_value(ev, group: str):
    if group == "name":
        return (
            ev.first_name,
            ev.middle_name,
            ev.last_name,
            " ".join(p for p in (ev.first_name, ev.middle_name, ev.last_name) if p),
        )
    if group == "phone":
        return ev.phone, [ev.phone] if ev.phone else None
    if group == "profile":
        return ev.language, ev.currency_code, ev.customer_group
    if group == "consent":
        return {ev.is_opted_in_marketing}
    return ev.address.street, ev.address.city


def simulate(seed: int, events_count: int = 10, partial: bool = False, presence=None) -> None:
    """Events for one email delivered in random order, some twice at once (a delivery started from inside
    another's Commerce call plays a second worker), with throttling, 5xx, writes that time out before or
    after committing, and workers that die mid-write. The end state must be as if the events had been
    applied in order, once. ``partial``: each event carries a random subset of the field groups (some
    at the same instant as another): every group must end at the latest event that carried it."""
    rnd = random.Random(seed)
    world = World()
    world.deps.rng = random.Random(seed)
    world.deps.lease_seconds = 2 * CALL_BUDGET  # the shortest lease settings allow: renewals matter
    if presence is not None:  # how the first ledger operation is chosen (read, or insert with the lease)
        world.deps.presence = presence
    minutes = rnd.sample(range(1, 100), events_count)
    if partial:
        minutes = [rnd.choice(minutes[:i]) if i and rnd.random() < 0.2 else m for i, m in enumerate(minutes)]
        events = [event(f"evt-{i:02d}", at(m), **partial_customer(rnd)) for i, m in enumerate(minutes)]
    else:
        events = [
            event(
                f"evt-{i:02d}",
                at(m),
                **{
                    **FULL,
                    "firstName": rnd.choice(["Ada", "Grace", "Ida"]),
                    "middleName": rnd.choice(["King", None]),
                    "phone": rnd.choice(["+1 202 555 0142", "+1 202 555 0199", None]),
                    "customerGroup": rnd.choice(["40", "50"]),
                },
            )
            for i, m in enumerate(minutes)
        ]
    latest = max(events, key=OrderKey.of)
    email_hash = latest.email_hash
    queue = [(world.clock(), envelope(e).to_json(), 1) for e in events]
    rnd.shuffle(queue)
    nested = [False]

    def collect_requeued() -> None:
        while world.requeued:
            text, delay = world.requeued.pop(0)
            queue.append((world.clock() + timedelta(seconds=delay), text, 1))

    def deliver(item) -> None:
        _, text, dequeue_count = item
        try:
            process_message(text, dequeue_count, world.deps)
        except WorkerDied:
            queue.append((world.clock() + timedelta(seconds=HOST_VISIBILITY_SECONDS), text, dequeue_count + 1))
        collect_requeued()

    def visible():
        return [q for q in queue if q[0] <= world.clock()]

    writing = [False]
    violations: list[str] = []

    def during_call(op: str) -> None:
        write = op in ("create", "update")
        if write:  # only the lease holder writes, and only one write at a time (recorded, not raised:
            # the processor would classify an AssertionError as a failure of its own and retry it)
            entry = world.ledger.read(email_hash)
            if entry is None or entry.lease is None or not entry.lease.live(world.clock()):
                violations.append(f"{op} without a live lease")
            if writing[0]:
                violations.append("two writes for one email at once")
            writing[0] = True
        try:
            world.clock.advance(rnd.choice([0, 1, 5, CALL_BUDGET, CALL_BUDGET]))  # no call outlasts its budget
            if not nested[0] and visible() and rnd.random() < 0.5:
                item = rnd.choice(visible())
                queue.remove(item)
                nested[0] = True
                try:
                    deliver(item)
                finally:
                    nested[0] = False
        finally:
            writing[0] = False if write else writing[0]
        roll = rnd.random()
        if roll < 0.12:
            raise CommerceThrottledError("slow down", operation=op, status=429, retry_after=rnd.choice([None, 1, 3]))
        if roll < 0.2:
            raise CommerceServerError("busy", operation=op, status=503)
        if write and roll < 0.3:
            world.commerce.faults[op].insert(
                0, Fault(CommerceTimeoutError("read timeout", operation=op), commit=rnd.random() < 0.5)
            )
        elif write and roll < 0.4:
            world.commerce.faults[op].insert(0, Fault(WorkerDied(), commit=rnd.random() < 0.5))

    world.commerce.before_call = during_call
    for _ in range(5000):
        if not queue:
            break
        if not visible():
            world.clock.now = min(q[0] for q in queue)
            continue
        item = rnd.choice(visible())
        queue.remove(item)
        deliver(item)
        world.clock.advance(rnd.choice([0, 1, 2]))

    assert violations == []
    assert queue == [], "not drained"
    assert world.deadletters.letters == []
    assert not any(r == "unexpected_error" for _, r in world.telemetry.outcomes)
    [customer] = world.commerce.by_email(OLD_EMAIL)
    if partial:
        entry = world.ledger.read(email_hash)
        for group in ORDERED_GROUPS:
            carriers = [e for e in events if group in carried_groups(e)]
            if carriers:
                winner = max(carriers, key=OrderKey.of)
                assert group_value(customer, group) == expected_value(winner, group), (group, winner.event_id)
                assert entry.group_keys[group] == OrderKey.of(winner), group
        assert entry.uncertain_groups == frozenset()
    else:
        assert (
            customer["FirstName"],
            customer["MiddleName"] or None,
            customer["Phone"] or None,
            customer["CustomerGroup"],
        ) == (latest.first_name, latest.middle_name, latest.phone, latest.customer_group)
        assert customer["Name"] == " ".join(p for p in (latest.first_name, latest.middle_name, latest.last_name) if p)
    entry = world.ledger.read(email_hash)
    assert entry.last == OrderKey.of(latest) and entry.state is State.APPLIED and entry.lease is None
    finals = [event_id for event_id, outcome in world.telemetry.event_outcomes if outcome in FINAL]
    assert sorted(finals) == sorted(e.event_id for e in events)  # each event finished exactly once
