"""The processor's world without I/O: MemoryLedger, a fake Commerce that keeps customers with the
emulator's own pure document rules, a recording requeue, and a clock and rng the test controls, wired
into ``ProcessorDeps`` as a worker wires the real ones."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from commerce_emulator.config import DEFAULT_CONFIG
from commerce_emulator.documents import apply_patch, build_customer
from shared.adapters.memory_ledger import MemoryLedger
from shared.adapters.telemetry import Telemetry
from shared.core.commerce_errors import RUNTIME_PREFIX, CommerceError, CommerceNotFoundError
from shared.core.envelope import Envelope
from shared.core.ledger_rules import LedgerEntry
from shared.core.settings import RetrySettings
from shared.core.telemetry_names import Outcome
from shared.usecases.processor import CallCounter, ProcessorDeps, ProcessResult, process_message
from tests.support import builders
from tests.support.builders import KEY, NOW, T0, event, mapping
from tests.support.commerce_documents import FakeIds

LEASE_SECONDS = 120
CALL_BUDGET = 25
OLD_EMAIL, NEW_EMAIL = "ada@example.com", "ada.lovelace@example.org"
# Every field, but no customerAccount hint (its lookup is a call of its own: tested separately)
FULL = {k: v for k, v in builders.FULL.items() if k != "customerAccount"}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class FakeClock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class WorkerDied(BaseException):
    """The worker process vanished mid-call: nothing after this runs (no release, no outcome)."""


@dataclass
class Fault:
    error: CommerceError
    commit: bool = False  # apply the write first, then fail (a timeout after the server committed)


class FakeCommerce:
    """Commerce's customers in memory, created and patched by the emulator's pure document functions,
    every call recorded. ``faults[op]`` is a queue of failures for the next calls of ``op``."""

    def __init__(self, calls: CallCounter):
        self.customers: dict[str, dict] = {}
        self.log: list[tuple[str, Any]] = []
        self.faults: dict[str, list[Fault]] = {"search": [], "get": [], "create": [], "update": []}
        self.before_call: Callable[[str], None] = lambda op: None
        self._ids = FakeIds()
        self._calls = calls

    @property
    def ops(self) -> list[str]:
        return [op for op, _ in self.log]

    def fail(self, op: str, error: CommerceError, *, commit: bool = False) -> None:
        self.faults[op].append(Fault(error, commit))

    def _call(self, op: str, arg: Any) -> Fault | None:
        self.log.append((op, copy.deepcopy(arg)))
        self._calls.add()
        self.before_call(op)
        fault = self.faults[op].pop(0) if self.faults[op] else None
        if fault is not None and not fault.commit:
            raise fault.error
        return fault

    def _not_found(self, op: str) -> CommerceNotFoundError:
        return CommerceNotFoundError(
            "no such customer", operation=op, status=404, error_resource_id=RUNTIME_PREFIX + "CustomerNotFound"
        )

    def search_customers_by_email(self, email: str) -> list[dict]:
        self._call("search", email)
        return [
            {
                "AccountNumber": c["AccountNumber"],
                "RecordId": c["RecordId"],
                "IsAsyncCustomer": c["IsAsyncCustomer"],
                "Email": c["Email"],
            }
            for c in self.customers.values()
            if c["Email"].lower() == email.lower()
        ]

    def get_customer(self, account_number: str) -> dict:
        self._call("get", account_number)
        if account_number not in self.customers:
            raise self._not_found("get")
        return copy.deepcopy(self.customers[account_number])

    def create_customer(self, body: dict) -> dict:
        fault = self._call("create", body)
        doc = build_customer(body, DEFAULT_CONFIG, self._ids)
        self.customers[doc["AccountNumber"]] = doc
        if fault is not None:
            raise fault.error
        return copy.deepcopy(doc)

    def update_customer(self, account_number: str, changes: dict) -> dict:
        fault = self._call("update", (account_number, changes))
        if account_number not in self.customers:
            raise self._not_found("update")
        doc, problems = apply_patch(
            self.customers[account_number], {**changes, "AccountNumber": account_number}, self._ids
        )
        assert problems == [], problems  # the processor sent a PATCH Commerce would refuse
        self.customers[account_number] = doc
        if fault is not None:
            raise fault.error
        return copy.deepcopy(doc)

    def by_email(self, email: str) -> list[dict]:
        return [c for c in self.customers.values() if c["Email"].lower() == email.lower()]


class RecordingLedger(MemoryLedger):
    def __init__(self) -> None:
        super().__init__()
        self.history: list[LedgerEntry] = []  # every entry written, in order
        self.fail_next_write: Exception | None = None

    def write(self, entry: LedgerEntry) -> LedgerEntry:
        if self.fail_next_write is not None:
            error, self.fail_next_write = self.fail_next_write, None
            raise error
        stored = super().write(entry)
        self.history.append(stored)
        return stored

    def put(self, entry: LedgerEntry) -> LedgerEntry:
        """Set up an entry as if another worker had written it."""
        current = self.entries.get(entry.email_hash)
        return self.write(replace(entry, etag=current.etag if current else None))


class RecordingTelemetry(Telemetry):
    def __init__(self) -> None:
        super().__init__()
        self.outcomes: list[tuple[Outcome, str | None]] = []
        self.event_outcomes: list[tuple[str | None, Outcome]] = []
        self.dead: list[str] = []

    def outcome(self, outcome, **kw) -> None:
        self.outcomes.append((outcome, kw.get("reason")))
        self.event_outcomes.append((kw.get("event_id"), outcome))
        super().outcome(outcome, **kw)

    def dead_lettered(self, **kw) -> None:
        self.dead.append(kw["reason"])
        super().dead_lettered(**kw)


class DeadLetters:
    def __init__(self) -> None:
        self.letters: list = []

    def put(self, letter) -> None:
        self.letters.append(letter)


@dataclass
class World:
    clock: FakeClock = field(default_factory=lambda: FakeClock(NOW))
    ledger: RecordingLedger = field(default_factory=RecordingLedger)
    requeued: list[tuple[str, int]] = field(default_factory=list)
    deadletters: DeadLetters = field(default_factory=DeadLetters)
    telemetry: RecordingTelemetry = field(default_factory=RecordingTelemetry)
    calls: CallCounter = field(default_factory=CallCounter)
    requeue_error: Exception | None = None

    def __post_init__(self) -> None:
        self.commerce = FakeCommerce(self.calls)
        owners = iter(range(1, 10_000))
        self.deps = ProcessorDeps(
            commerce=self.commerce,
            deadletters=self.deadletters,
            telemetry=self.telemetry,
            mapping=mapping(),
            max_dequeue_count=5,
            calls=self.calls,
            clock=self.clock,
            ledger=self.ledger,
            requeue=self._requeue,
            retry=RetrySettings(base_delay=5, max_delay=900, max_age=86400),
            lease_seconds=LEASE_SECONDS,
            call_budget=CALL_BUDGET,
            hash_key=KEY,
            rng=random.Random(7),
            new_owner=lambda: f"worker-{next(owners)}",
        )

    def _requeue(self, text: str, delay: int) -> None:
        if self.requeue_error is not None:
            raise self.requeue_error
        self.requeued.append((text, delay))

    def send(self, message: Envelope | str, dequeue_count: int = 1) -> ProcessResult:
        """One delivery; checks that it ended in exactly one outcome."""
        before = len(self.telemetry.outcomes)
        result = process_message(message if isinstance(message, str) else message.to_json(), dequeue_count, self.deps)
        assert [o for o, _ in self.telemetry.outcomes[before:]] == [result.outcome]
        return result

    def last_requeued(self) -> tuple[Envelope, int]:
        text, delay = self.requeued[-1]
        return Envelope.from_json(text), delay

    def entry(self, email_hash: str) -> LedgerEntry | None:
        return self.ledger.read(email_hash)


def envelope(ev, *, ingested_at: datetime = NOW - timedelta(minutes=1), force: bool = False) -> Envelope:
    return Envelope.wrap(ev, ingested_at=ingested_at, correlation_id="corr-1", force=force)


def created(world: World, event_id: str = "evt-1", minutes: float = 0, **customer) -> Any:
    """The customer created through the processor by a first event (FULL data unless given)."""
    ev = event(event_id, at(minutes), **(customer or FULL))
    result = world.send(envelope(ev))
    assert result.outcome is Outcome.CREATED
    world.commerce.log.clear()
    return ev
