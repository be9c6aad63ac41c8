"""What a sync would do, without writing anything: the processor itself, on ports that only read.

``DryRun.decide`` hands each event to ``shared.usecases.processor.process_message`` — the very code a real run
executes, judgement, lease, search, diff and all — with three ports swapped:

- the **ledger** is an overlay: reads come from the real table, writes stay in this process (so a
  file's second record for an email sees what its first would have left, as in a real run);
- **Commerce** answers searches and GETs for real; a create or PATCH is recorded, never sent, and
  answered with the document Commerce would hold afterwards;
- dead letters and re-queued messages are recorded, never stored.

A dry run therefore cannot disagree with a real run about what the processor decides; it can only
differ where the real run would meet something the dry run cannot see (Commerce refusing a create or
PATCH, a lease taken meanwhile, a record changed in Commerce between the two runs).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from shared.core.commerce_errors import CommerceNotFoundError
from shared.core.dead_letters import DeadLetter
from shared.core.envelope import Envelope
from shared.core.ledger_rules import LedgerConflict, LedgerEntry, LedgerPort
from shared.core.telemetry_names import Outcome
from shared.usecases.processor import CallCounter, CommercePort, ProcessorDeps, process_message

log = logging.getLogger("customer_sync.dryrun")

# Decisions reported per record
CREATE, UPDATE, UNCHANGED, REJECT, AMBIGUOUS, DEFERRED, ERROR = (
    "create",
    "update",
    "unchanged",
    "reject",
    "ambiguous",
    "deferred",
    "error",
)
OVERLAY_LIMIT = 100_000  # emails whose simulated state is kept (a later record of the same email)


_V = TypeVar("_V")


class _Lru(OrderedDict[str, _V], Generic[_V]):
    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def put(self, key: str, value: _V) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


class OverlayLedger:
    """The real ledger for reads; writes kept here, with the table's conditional-write rules."""

    def __init__(self, real: LedgerPort, limit: int = OVERLAY_LIMIT):
        self.real = real
        self._mine: _Lru[LedgerEntry] = _Lru(limit)
        self._lock = threading.Lock()
        self._etag = 0

    def read(self, email_hash: str) -> LedgerEntry | None:
        with self._lock:
            if email_hash in self._mine:
                return self._mine[email_hash]
        return self.real.read(email_hash)

    def write(self, entry: LedgerEntry) -> LedgerEntry:
        current = self.read(entry.email_hash)
        with self._lock:
            if (current is None) != (entry.etag is None) or (current is not None and current.etag != entry.etag):
                raise LedgerConflict("etag")
            self._etag += 1
            stored = replace(entry, etag=f"dryrun-{self._etag}")
            self._mine.put(entry.email_hash, stored)
            return stored


@dataclass
class Seen:
    """What the processor asked of Commerce for one event, and what it would have written."""

    matches: int | None = None  # exact matches of the last search
    read: dict[str, Any] | None = None  # the customer document it read before writing (or we read for the diff)
    created: dict[str, Any] | None = None
    patch: dict[str, Any] | None = None
    account: str | None = None


class ReadOnlyCommerce:
    """Searches and GETs go to Commerce; creates and PATCHes are recorded and simulated."""

    def __init__(self, real: CommercePort, limit: int = OVERLAY_LIMIT):
        self.real = real
        self._local = threading.local()
        self._docs: _Lru[dict[str, Any]] = _Lru(limit)  # documents as the dry run's own writes would leave them
        self._lock = threading.Lock()
        self._next = 0

    @property
    def seen(self) -> Seen:
        seen: Seen = self._local.seen  # set by start() on this thread
        return seen

    def start(self) -> None:
        self._local.seen = Seen()

    def search_customers_by_email(self, email: str) -> list[dict[str, Any]]:
        matches = self.real.search_customers_by_email(email)
        with self._lock:
            simulated = [
                d
                for d in self._docs.values()
                if (d.get("Email") or "").lower() == email.lower()
                and not any(m.get("AccountNumber") == d.get("AccountNumber") for m in matches)
            ]
        found = list(matches) + simulated
        self.seen.matches = len(found)
        return found

    def get_customer(self, account_number: str) -> dict[str, Any]:
        with self._lock:
            doc = self._docs.get(account_number)
        if doc is None:
            doc = self.real.get_customer(account_number)
        self.seen.read = doc
        return doc

    def create_customer(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._next += 1
            account = f"DRYRUN-{self._next:06d}"
        doc = {**body, "AccountNumber": account, "RecordId": 0}
        self.seen.created, self.seen.account = body, account
        with self._lock:
            self._docs.put(account, doc)
        return doc

    def update_customer(self, account_number: str, changes: dict[str, Any]) -> dict[str, Any]:
        before = self.seen.read if self.seen.read and self.seen.read.get("AccountNumber") == account_number else None
        if before is None:
            try:  # a PATCH built from the ledger alone: read the customer, only to show the difference
                with self._lock:
                    before = self._docs.get(account_number)
                before = before or self.real.get_customer(account_number)
            except CommerceNotFoundError:
                raise
        self.seen.read, self.seen.patch, self.seen.account = before, changes, account_number
        doc = {**before, **changes}
        with self._lock:
            self._docs.put(account_number, doc)
        return doc


class _Recorder:
    def __init__(self) -> None:
        self.items: list[DeadLetter | tuple[str, int]] = []

    def put(self, letter: DeadLetter) -> None:
        self.items.append(letter)

    def send(self, text: str, delay: int) -> None:
        self.items.append((text, delay))


@dataclass(frozen=True)
class Decision:
    decision: str
    outcome: str | None = None  # the processor's own outcome
    account: str | None = None
    changes: tuple[tuple[str, Any, Any], ...] = ()  # (field, Commerce now, after the sync)
    detail: str = ""
    matches: int | None = None


@dataclass
class DryRun:
    processor: ProcessorDeps  # a real run's dependencies (runtime.processor_deps)
    ledger: OverlayLedger = field(init=False)
    commerce: ReadOnlyCommerce = field(init=False)

    def __post_init__(self) -> None:
        self.ledger = OverlayLedger(self.processor.ledger)
        self.commerce = ReadOnlyCommerce(self.processor.commerce)
        self._local = threading.local()

    def _deps(self) -> tuple[ProcessorDeps, _Recorder]:
        recorder = _Recorder()
        quiet = self.processor.telemetry.quiet("customer_sync.dryrun.telemetry")
        return replace(
            self.processor,
            ledger=self.ledger,
            commerce=self.commerce,
            deadletters=recorder,
            requeue=recorder.send,
            telemetry=quiet,
            calls=CallCounter(),
        ), recorder

    def decide(self, envelope: Envelope) -> Decision:
        """What the processor does with this event, with nothing written anywhere."""
        self.commerce.start()
        deps, recorder = self._deps()
        result = process_message(envelope.to_json(), 1, deps)
        seen = self.commerce.seen
        outcome = result.outcome
        if outcome is Outcome.CREATED:
            return Decision(CREATE, outcome.value, seen.account, _fields({}, seen.created or {}), matches=seen.matches)
        if outcome is Outcome.UPDATED:
            changes = _fields(seen.read or {}, seen.patch or {})
            if seen.matches and seen.matches > 1:
                return Decision(
                    AMBIGUOUS,
                    outcome.value,
                    seen.account,
                    changes,
                    f"{seen.matches} Commerce customers share this email; the sync would "
                    f"update {seen.account} (lowest RecordId, non-async first)",
                    seen.matches,
                )
            return Decision(UPDATE, outcome.value, seen.account, changes, matches=seen.matches)
        if outcome is Outcome.UNCHANGED:
            if seen.matches and seen.matches > 1:
                return Decision(
                    AMBIGUOUS,
                    outcome.value,
                    result.account_number,
                    (),
                    f"{seen.matches} Commerce customers share this email; {result.account_number} "
                    "already holds this data",
                    seen.matches,
                )
            return Decision(
                UNCHANGED, outcome.value, result.account_number, (), "Commerce holds this data", seen.matches
            )
        if outcome is Outcome.DUPLICATE:
            return Decision(UNCHANGED, outcome.value, None, (), "duplicate: this event was applied already")
        if outcome is Outcome.STALE:
            return Decision(
                UNCHANGED, outcome.value, None, (), "stale: newer events wrote every field group it carries"
            )
        if outcome is Outcome.DEFERRED:
            return Decision(DEFERRED, outcome.value, None, (), "a worker holds this email's lease now")
        reason = result.failure.reason if result.failure else "failed"
        if outcome is Outcome.RETRYING:  # a read failed (timeout, throttling...): nothing is known yet
            return Decision(ERROR, outcome.value, None, (), f"could not be decided: {reason} (run again)")
        return Decision(REJECT, outcome.value, None, (), f"the sync would fail: {reason}")


def _flat(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key.startswith("@odata") or key in ("ExtensionProperties",):
                continue
            _flat(item, f"{prefix}.{key}" if prefix else key, out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, item in enumerate(value):
            tag = item.get("RecordId") or i
            _flat(item, f"{prefix}[{tag}]", out)
    else:
        out[prefix] = value


def _fields(before: Mapping[str, Any], written: Mapping[str, Any]) -> tuple[tuple[str, Any, Any], ...]:
    """Field by field, what the write changes: (field, value in Commerce now, value after the write)."""
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    _flat(before, "", old)
    _flat(written, "", new)
    return tuple(
        (name, old.get(name), value)
        for name, value in new.items()
        if old.get(name) != value and not (old.get(name) in (None, "") and value in (None, ""))
    )
