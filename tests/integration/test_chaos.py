"""Chaos: 2,000 events for 300 emails, 20% of them sent twice, 8 worker processes, and a Commerce
that throttles, fails, hangs and commits-then-fails at fixed seeded rates. Afterwards the result is
reconciled from sources independent of the processor's own tally: the ingest responses, the Azurite
queues, the dead-letter and ledger tables, and the emulator's customers.

Everything random is seeded (the events, their order, the redeliveries and the emulator's faults);
which worker meets which fault still depends on timing, so counts vary a little between runs while
the assertions must hold every time.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from shared.deadletters import DeadLetter
from tests.integration.workers import (
    PLACES,
    IngestReply,
    SentEvent,
    by_email,
    customer_event,
    differences,
    outcome_summary,
    process_cpu_seconds,
    running_pipeline,
    which_event,
    with_offset,
)

pytestmark = pytest.mark.integration

SEED = 20261126
EVENTS, EMAILS, REDELIVERED_SHARE, BATCH, WORKERS = 2_000, 300, 0.20, 100, 8
TIE_SHARE = 0.05  # events sharing their instant with another event of the same email (eventId decides)
FAULTS = {"seed": SEED, "rates": {"throttle": 0.10, "unavailable": 0.05, "hang": 0.02, "commit_then_fail": 0.01},
          "throttle_retry_after_ratio": 0.5, "retry_after_seconds": 1, "hang_seconds": 1.5}
DRAIN_TIMEOUT = 210  # RETRY_MAX_AGE_SECONDS is 180: by then every event is applied or dead-lettered
BUDGET_SECONDS = 240


def chaos_events(seed: int) -> tuple[list[SentEvent], list[list[dict]], set[str]]:
    """The events, the request batches to send them in (each redelivery in a later batch than its
    first delivery: a batch refuses a repeated eventId), and the ids sent twice."""
    rnd = random.Random(seed)
    emails = [f"chaos.{i:04d}@example.com" for i in range(EMAILS)]
    places = {email: rnd.choice(PLACES) for email in emails}
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)
    events: list[SentEvent] = []
    instants: dict[str, list[datetime]] = defaultdict(list)
    for i in range(EVENTS):
        email = emails[i] if i < EMAILS else rnd.choice(emails)  # every email has at least one event
        if instants[email] and rnd.random() < TIE_SHARE:
            instant = rnd.choice(instants[email])
        else:
            instant = base + timedelta(seconds=rnd.randrange(20 * 3600))
        instants[email].append(instant)
        events.append(customer_event(f"chaos-{i:05d}", email, with_offset(instant, rnd), i, places[email], rnd))
    order = events[:]
    rnd.shuffle(order)
    batches = [[e.raw for e in order[start:start + BATCH]] for start in range(0, EVENTS, BATCH)]
    twice = rnd.sample(range(EVENTS), int(EVENTS * REDELIVERED_SHARE))
    extra: list[dict] = []
    for position in twice:
        first_batch = position // BATCH
        if first_batch + 1 < len(batches):
            batches[rnd.randrange(first_batch + 1, len(batches))].append(order[position].raw)
        else:
            extra.append(order[position].raw)
    batches.append(extra)
    for batch in batches:
        rnd.shuffle(batch)
    return events, [b for b in batches if b], {order[p].event_id for p in twice}


@dataclass
class Observed:
    """What the independent sources say once the queues are drained."""

    replies: list[IngestReply]
    depths: dict[str, tuple[int, int]]
    stranded: int
    letters: list[DeadLetter]
    ledger: dict[str, dict]
    customers: list[dict]
    email_hashes: dict[str, str]


@dataclass
class Reconciliation:
    problems: dict[str, list[str]]
    accounted: Counter
    dead: dict[str, str]  # event id -> reason


def reconcile(events: list[SentEvent], seen: Observed) -> Reconciliation:
    """Each check names its problem kind, with examples; no kind means the run was right."""
    problems: dict[str, list[str]] = defaultdict(list)
    by_id = {e.event_id: e for e in events}
    of_email: dict[str, list[SentEvent]] = defaultdict(list)
    for e in events:
        of_email[e.email].append(e)

    statuses = Counter(r.status for r in seen.replies)
    if set(statuses) != {202}:
        problems["ingest refused a request"].append(str(statuses))
    accepted = {event_id for reply in seen.replies for event_id in reply.accepted}
    if accepted != set(by_id):
        problems["ingest did not accept every event"].append(f"{len(set(by_id) - accepted)} missing")
    if any(depth != (0, 0) for depth in seen.depths.values()) or seen.stranded:
        problems["queues not empty"].append(f"{seen.depths}, poison-poison {seen.stranded}")

    dead: dict[str, str] = {}
    for letter in seen.letters:
        if not letter.reason:
            problems["dead letter without a reason"].append(letter.event_id)
        if letter.event_id not in accepted:
            problems["dead letter of an unknown event"].append(letter.event_id)
        dead[letter.event_id] = letter.reason

    grouped = by_email(seen.customers)
    for email in set(grouped) - set(of_email):
        problems["customer of an email never sent"].append(email)
    holders: dict[str, SentEvent | None] = {}
    for email, sent in of_email.items():
        found = grouped.get(email, [])
        live = [e for e in sent if e.event_id not in dead]
        if len(found) > 1:
            problems["duplicate customers"].append(f"{email}: {len(found)}")
        if not live:
            continue  # every event of this email was dead-lettered: nothing is owed to Commerce
        if not found:
            problems["missing customer"].append(email)
            continue
        latest = max(live, key=lambda e: e.order_key)
        customer = found[0]
        holder = holders[email] = which_event(customer, sent)
        if len(found) == 1 and differences(customer, latest.expected):
            kind = ("an older event" if holder and holder.order_key < latest.order_key
                    else "a dead-lettered newer event" if holder else "a mix of events")
            problems[f"customer not at its latest event (holds {kind})"].append(
                f"{email}: wants {latest.event_id}, holds {holder.event_id if holder else '?'}")
        entry = seen.ledger.get(seen.email_hashes[email])
        if entry is None:
            problems["no ledger entry"].append(email)
            continue
        if entry.get("LastEventId") != latest.event_id:
            problems["ledger LastEventId is not the latest event"].append(
                f"{email}: {entry.get('LastEventId')} != {latest.event_id}")
        if len(found) == 1 and entry.get("AccountNumber") != customer["AccountNumber"]:
            problems["ledger AccountNumber is not the customer's"].append(email)

    # Every accepted event: dead-lettered with a reason, or its customer holds it or a newer one.
    accounted: Counter = Counter()
    for event_id in accepted & set(by_id):
        event = by_id[event_id]
        holder = holders.get(event.email)
        if event_id in dead:
            accounted["dead-lettered"] += 1
        elif holder is not None and holder.order_key >= event.order_key:
            accounted["applied" if holder is event else "superseded"] += 1
        else:
            problems["event not accounted for"].append(event_id)
    return Reconciliation(dict(problems), accounted, dead)


def test_chaos_every_event_is_applied_once_in_order_or_dead_lettered(azurite, emulator, tmp_path, capsys):
    events, batches, redelivered = chaos_events(SEED)
    started = time.monotonic()
    with running_pipeline(azurite, emulator, tmp_path, workers=WORKERS) as pipeline:
        emulator.set_faults(**FAULTS)
        ready = time.monotonic()
        cpu_before = {"azurite": process_cpu_seconds(azurite.process.pid),
                      "emulator": process_cpu_seconds(emulator.process.pid), **pipeline.cpu_seconds()}
        replies = pipeline.post_all(batches)
        posted = time.monotonic()
        drained_after = pipeline.wait_until_drained(DRAIN_TIMEOUT)
        done = time.monotonic()
        cpu_after = {"azurite": process_cpu_seconds(azurite.process.pid),
                     "emulator": process_cpu_seconds(emulator.process.pid), **pipeline.cpu_seconds()}
        calls = emulator.calls()
        emulator.clear_faults()
        seen = Observed(replies=replies, depths=pipeline.queue_depths(), stranded=pipeline.stranded(),
                        letters=pipeline.deadletters(), ledger=pipeline.ledger(),
                        customers=emulator.customers(),
                        email_hashes={e.email: pipeline.email_hash(e.email) for e in events})
        result = reconcile(events, seen)
        summary = outcome_summary(pipeline.outcomes())

        with capsys.disabled():  # the counts belong in the CI log, passed or not
            print(f"\nchaos seed {SEED}: {len(events)} events for {len(seen.email_hashes)} emails, {len(redelivered)} "
                  f"sent twice, {sum(len(b) for b in batches)} deliveries in {len(batches)} requests, {WORKERS} workers")
            print(f"customers in Commerce: {len(seen.customers)}; events accounted: {dict(result.accounted)}")
            print(f"outcomes (worker output, for information): deliveries {dict(summary['deliveries'])}; "
                  f"events by first final outcome {dict(summary['final'])}")
            print(f"dead letters by reason: {dict(Counter(result.dead.values()))}")
            print(f"emulator calls: {calls} (faulted = faults injected)")
            print(f"wall time: start {ready - started:.1f} s, post {posted - ready:.1f} s, "
                  f"drain {drained_after:.1f} s after posting, total {done - started:.1f} s")
            print("CPU seconds while posting and draining: " + ", ".join(
                f"{name} {cpu_after[name] - cpu_before[name]:.1f}" for name in cpu_after)
                  + f" (of {2 * (done - ready):.0f} available on 2 cores)")
            for kind, items in result.problems.items():
                print(f"PROBLEM {kind}: {len(items)}, e.g. {items[:5]}")

        assert not result.problems, {kind: len(items) for kind, items in result.problems.items()}
        # The run was chaotic: faults really were injected, and each kind of delivery really happened.
        assert calls["faulted"] >= 0.05 * calls["total"], calls
        assert done - started < BUDGET_SECONDS
