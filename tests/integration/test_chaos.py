"""Chaos: 2,000 events for 300 emails, each carrying a random subset of the field groups (not
snapshots), 20% of them sent twice, some sharing their instant with another event of the same email,
all in shuffled order; 8 worker processes, some of them killed (SIGKILL) while a Commerce call is in
flight and started again; and a Commerce that throttles, fails, hangs and commits-then-fails at
fixed seeded rates. Afterwards the result is reconciled from sources independent of the processor's
own tally: the ingest responses, the Azurite queues, the dead-letter and ledger tables, and the
emulator's customers.

The property: for every customer and every field group, Commerce holds the value of the latest event
(``occurredAt`` in UTC, then ``eventId``) that carried that group; one customer per email; nothing
dead-lettered (every failure here is transient, and the retry settings give it time to heal).

Everything random is seeded (the events, their order, the redeliveries and the emulator's faults);
which worker meets which fault, and which call a kill interrupts, still depends on timing, so counts
vary a little between runs while the assertions must hold every time.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from shared.core.dead_letters import DeadLetter
from tests.support.workers import (
    GROUP_NAMES,
    PLACES,
    WORKER_HOST_JSON,
    GroupEvent,
    IngestReply,
    Pipeline,
    by_email,
    group_event,
    group_values,
    outcome_summary,
    process_cpu_seconds,
    running_pipeline,
    socket_owner,
    with_offset,
)

pytestmark = pytest.mark.integration

SEED = 20261126
EVENTS, EMAILS, REDELIVERED_SHARE, BATCH, WORKERS = 2_000, 300, 0.20, 100, 8
GROUP_SHARE = 0.5  # each field group is carried by an event with this probability (some carry none)
TIE_SHARE = 0.10  # events sharing their instant with another event of the same email (eventId decides)
# commit_then_fail is drawn last of the rate faults, so 7% configured is about 6% of the writes.
FAULTS = {
    "seed": SEED,
    "rates": {"throttle": 0.10, "unavailable": 0.05, "hang": 0.02, "commit_then_fail": 0.07},
    "throttle_retry_after_ratio": 0.5,
    "retry_after_seconds": 1,
    "hang_seconds": 1.5,
    "latency_ms": 30,
    "latency_jitter_ms": 40,
}
MIN_COMMIT_THEN_FAIL_SHARE = 0.04  # of the creates and updates
KILLS, KILL_EVERY_SECONDS = 3, 3.0  # while posting: the killed workers' messages come back meanwhile
# No event may age out: the maximum age is far beyond the run, so a dead letter means a defect.
SETTINGS = {"RETRY_MAX_AGE_SECONDS": "3600"}
# The in-flight visibility of a received message is functionTimeout + 1 minute: a killed worker's
# messages are back after 65 s.
HOST_JSON = {**WORKER_HOST_JSON, "functionTimeout": "00:00:05"}
DRAIN_TIMEOUT = 150
BUDGET_SECONDS = 180  # the whole test, processes started and stopped included
TRANSIENT_DEAD_LETTER = ("retries_exhausted:", "max_dequeue_exceeded")


def chaos_events(seed: int) -> tuple[list[GroupEvent], list[list[dict]], set[str]]:
    """The events, the request batches to send them in (each redelivery in a later batch than its
    first delivery: a batch refuses a repeated eventId), and the ids sent twice."""
    rnd = random.Random(seed)
    emails = [f"chaos.{i:04d}@example.com" for i in range(EMAILS)]
    places = {email: rnd.choice(PLACES) for email in emails}
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    events: list[GroupEvent] = []
    instants: dict[str, list[datetime]] = defaultdict(list)
    for i in range(EVENTS):
        email = emails[i] if i < EMAILS else rnd.choice(emails)  # every email has at least one event
        if instants[email] and rnd.random() < TIE_SHARE:
            instant = rnd.choice(instants[email])
        else:
            instant = base + timedelta(seconds=rnd.randrange(20 * 3600))
        instants[email].append(instant)
        groups = [g for g in GROUP_NAMES if rnd.random() < GROUP_SHARE]
        events.append(group_event(f"chaos-{i:05d}", email, with_offset(instant, rnd), i, places[email], groups, rnd))
    order = events[:]
    rnd.shuffle(order)
    batches = [[e.raw for e in order[start : start + BATCH]] for start in range(0, EVENTS, BATCH)]
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


# --- killing workers mid-call ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    worker: int
    pid: int
    operation: str
    seconds_in_flight: float  # how long the emulator had been answering the call when the worker died
    in_flight_after: bool  # the emulator was still answering it once the worker was dead


@dataclass
class Killer:
    """Kills ``KILLS`` workers, one every ``KILL_EVERY_SECONDS``, each while the emulator is answering one
    of its Commerce calls (a create or update when one is in flight), and starts another in its place."""

    pipeline: Pipeline
    emulator: object
    kills: list[Kill] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chaos-killer", daemon=True)
        self._thread.start()

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join(timeout=60)

    def _run(self) -> None:
        port = int(self.emulator.url.rsplit(":", 1)[1])
        try:
            while len([k for k in self.kills if k.in_flight_after]) < KILLS and len(self.kills) < 2 * KILLS:
                time.sleep(KILL_EVERY_SECONDS)
                kill = self._kill_one(port)
                if kill is None:
                    self.errors.append("no Commerce call in flight to kill a worker in")
                    return
                self.kills.append(kill)
        except Exception as error:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(error))

    def _kill_one(self, port: int) -> Kill | None:
        deadline = time.monotonic() + 10
        writes_until = time.monotonic() + 3  # a write first; any call if none comes
        while time.monotonic() < deadline:
            # Calls just begun: with 30 ms or more of latency left, the kill lands before the answer.
            calls = [c for c in self.emulator.in_flight() if c["seconds"] < 0.01]
            writes = [c for c in calls if c["operation"] in ("create", "update")]
            for call in writes or (calls if time.monotonic() > writes_until else []):
                workers = {w.process.pid: i for i, w in enumerate(self.pipeline.workers)}
                pid = socket_owner(call["client_port"], port, list(workers))
                if pid is None:
                    continue
                index = workers[pid]
                self.pipeline.kill_worker(index)
                after = any(c["client_port"] == call["client_port"] for c in self.emulator.in_flight())
                self.pipeline.restart_worker(index)
                return Kill(index, pid, call["operation"], call["seconds"], after)
            time.sleep(0.005)
        return None


# --- reconciliation ----------------------------------------------------------------------------------


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


def _group_keys(entity: dict) -> dict[str, str]:
    import json

    return {g: event_id for g, (_, event_id) in json.loads(entity.get("GroupKeys") or "{}").items()}


def reconcile(events: list[GroupEvent], seen: Observed) -> Reconciliation:
    """Each check names its problem kind, with examples; no kind means the run was right."""
    problems: dict[str, list[str]] = defaultdict(list)
    by_id = {e.event_id: e for e in events}
    of_email: dict[str, list[GroupEvent]] = defaultdict(list)
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
        dead[letter.event_id] = letter.reason
        transient = letter.reason.startswith(TRANSIENT_DEAD_LETTER)
        problems["dead-lettered for a transient reason" if transient else "dead-lettered"].append(
            f"{letter.event_id}: {letter.reason}"
        )

    grouped = by_email(seen.customers)
    for email in set(grouped) - set(of_email):
        problems["customer of an email never sent"].append(email)
    winners: dict[str, dict[str, GroupEvent]] = {}
    for email, sent in of_email.items():
        found = grouped.get(email, [])
        if len(found) > 1:
            problems["duplicate customers"].append(f"{email}: {len(found)}")
        if not found:
            problems["missing customer"].append(email)
            continue
        customer = found[0]
        holds = group_values(customer)
        winners[email] = {}
        for group in GROUP_NAMES:
            carriers = [e for e in sent if group in e.groups]
            if not carriers:
                continue  # no event said anything about it: whatever the create left
            winner = winners[email][group] = max(carriers, key=lambda e: e.order_key)
            if holds[group] != winner.groups[group]:
                holders = [e for e in carriers if e.groups[group] == holds[group]]
                kind = (
                    "an older event's value"
                    if holders and all(h.order_key < winner.order_key for h in holders)
                    else "a value no event sent"
                    if not holders
                    else "an ambiguous value"
                )
                problems[f"{group} not at the latest event that carried it (holds {kind})"].append(
                    f"{email}: wants {winner.event_id} {winner.groups[group]}, holds {holds[group]}"
                )
        latest = max(sent, key=lambda e: e.order_key)
        entry = seen.ledger.get(seen.email_hashes[email])
        if entry is None:
            problems["no ledger entry"].append(email)
            continue
        if entry.get("LastEventId") != latest.event_id:
            problems["ledger LastEventId is not the latest event"].append(
                f"{email}: {entry.get('LastEventId')} != {latest.event_id}"
            )
        if entry.get("State") != "applied" or entry.get("LeaseOwner") or entry.get("UncertainGroups"):
            problems["ledger entry not settled (state, lease, uncertain groups)"].append(
                f"{email}: {entry.get('State')} lease={entry.get('LeaseOwner')!r} "
                f"uncertain={entry.get('UncertainGroups')!r}"
            )
        keys = _group_keys(entry)
        wrong = {g: (keys.get(g), w.event_id) for g, w in winners[email].items() if keys.get(g) != w.event_id}
        if wrong:
            problems["ledger GroupKeys do not name the latest event of each group"].append(f"{email}: {wrong}")
        if len(found) == 1 and entry.get("AccountNumber") != customer["AccountNumber"]:
            problems["ledger AccountNumber is not the customer's"].append(email)

    # Every accepted event: the latest of at least one group it carried (while older than its email's
    # latest event: what snapshot ordering would have lost), or superseded in all of them.
    accounted: Counter = Counter()
    for event_id in accepted & set(by_id):
        event = by_id[event_id]
        won = [g for g, w in winners.get(event.email, {}).items() if w is event]
        latest = max(of_email[event.email], key=lambda e: e.order_key)
        if event_id in dead:
            accounted["dead-lettered"] += 1
        elif not event.groups:
            accounted["carried no group"] += 1
        elif won and event is latest:
            accounted["latest of its email"] += 1
        elif won:
            accounted["older, yet the latest of a group it carried"] += 1
        else:
            accounted["superseded in every group it carried"] += 1
    return Reconciliation(dict(problems), accounted, dead)


def describe(events: list[GroupEvent], redelivered: set[str]) -> str:
    sizes = Counter(len(e.groups) for e in events)
    at_instant: dict[tuple[str, datetime], list[GroupEvent]] = defaultdict(list)
    for e in events:
        at_instant[(e.email, e.occurred_utc)].append(e)
    tied = [group for group in at_instant.values() if len(group) > 1]
    disjoint = sum(1 for group in tied if not set.intersection(*(set(e.groups) for e in group)))
    return (
        f"groups per event {dict(sorted(sizes.items()))} (5 = a full snapshot); {len(tied)} instants shared "
        f"by 2+ events of one email ({disjoint} of them with no group in common); {len(redelivered)} sent twice"
    )


def test_chaos_every_field_group_ends_at_the_latest_event_that_carried_it(azurite, emulator, tmp_path, capsys):
    events, batches, redelivered = chaos_events(SEED)
    started = time.monotonic()
    with running_pipeline(
        azurite, emulator, tmp_path, workers=WORKERS, settings=SETTINGS, host_json=HOST_JSON
    ) as pipeline:
        emulator.reset_calls()
        emulator.set_faults(**FAULTS)
        ready = time.monotonic()
        cpu_before = {
            "azurite": process_cpu_seconds(azurite.process.pid),
            "emulator": process_cpu_seconds(emulator.process.pid),
        }
        killer = Killer(pipeline, emulator)
        killer.start()
        replies = pipeline.post_all(batches)
        posted = time.monotonic()
        killer.join()
        drained_after = pipeline.wait_until_drained(DRAIN_TIMEOUT)
        done = time.monotonic()
        cpu_after = {
            "azurite": process_cpu_seconds(azurite.process.pid),
            "emulator": process_cpu_seconds(emulator.process.pid),
        }
        calls, injected = emulator.calls(), emulator.injected()
        emulator.clear_faults()
        seen = Observed(
            replies=replies,
            depths=pipeline.queue_depths(),
            stranded=pipeline.stranded(),
            letters=pipeline.deadletters(),
            ledger=pipeline.ledger(),
            customers=emulator.customers(),
            email_hashes={e.email: pipeline.email_hash(e.email) for e in events},
        )
        result = reconcile(events, seen)
        summary = outcome_summary(pipeline.outcomes())
        writes = calls["create"] + calls["update"]
        commit_then_fail = sum(
            n for name, n in injected.items() if name in ("create:commit_then_fail", "update:commit_then_fail")
        )

        with capsys.disabled():  # the counts belong in the CI log, passed or not
            print(
                f"\nchaos seed {SEED}: {len(events)} events for {len(seen.email_hashes)} emails, "
                f"{sum(len(b) for b in batches)} deliveries in {len(batches)} requests, {WORKERS} workers"
            )
            print(describe(events, redelivered))
            print(f"customers in Commerce: {len(seen.customers)}; events accounted: {dict(result.accounted)}")
            print(
                f"outcomes (worker output, for information): deliveries {dict(summary['deliveries'])}; "
                f"events by first final outcome {dict(summary['final'])}"
            )
            print(
                "workers killed mid-call:",
                [(k.operation, k.seconds_in_flight, k.in_flight_after) for k in killer.kills],
                "(operation, seconds in flight, still in flight after the kill)",
                killer.errors or "",
            )
            print(
                f"emulator calls: {calls}; faults injected: {injected}; commit-then-fail "
                f"{commit_then_fail}/{writes} writes = {commit_then_fail / max(writes, 1):.1%}"
            )
            print(f"dead letters by reason: {dict(Counter(result.dead.values()))}")
            print(
                f"wall time: start {ready - started:.1f} s, post {posted - ready:.1f} s, "
                f"drain {drained_after:.1f} s after posting and killing, total {done - started:.1f} s"
            )
            print(
                "CPU seconds of azurite and the emulator while posting and draining: "
                + ", ".join(f"{name} {cpu_after[name] - cpu_before[name]:.1f}" for name in cpu_after)
                + f" (of {2 * (done - ready):.0f} available on 2 cores)"
            )
            for kind, items in result.problems.items():
                print(f"PROBLEM {kind}: {len(items)}, e.g. {items[:5]}")

        assert not result.problems, {kind: len(items) for kind, items in result.problems.items()}
        # The run was chaotic: workers really died mid-call, faults really were injected.
        assert not killer.errors, killer.errors
        assert len([k for k in killer.kills if k.in_flight_after]) >= KILLS, killer.kills
        assert calls["faulted"] >= 0.05 * calls["total"], calls
        assert commit_then_fail >= MIN_COMMIT_THEN_FAIL_SHARE * writes, (commit_then_fail, writes)
        assert {"update:throttle", "update:unavailable", "update:hang"} <= set(injected), injected
        # ... and the stronger property was really put to the test: older events with fresh groups.
        assert result.accounted["older, yet the latest of a group it carried"] >= 100, result.accounted
        assert result.accounted["superseded in every group it carried"], result.accounted
    assert time.monotonic() - started < BUDGET_SECONDS
