"""The backfill queue: an initial load drained by the same processor as live events, apart from them.

``tools.backfill`` validates a file locally and queues its events on ``<EVENTS_QUEUE_NAME>-backfill``,
**packed**: one queue message holds many event envelopes (``{"v": 1, "batch": [...]}``, within the
queue's size limit), because one SDK send costs milliseconds of CPU and a million sends from one
laptop would take hours. The ``process_backfill_event`` trigger unpacks a message and hands each
envelope to ``shared.usecases.processor.process_message`` unchanged: the same ledger judgement, lease, Commerce
calls, retries and dead letters as a live event. Retries and deferrals of a backfilled event are sent
back to the backfill queue (one envelope per message), never to the live queue.

Backfill runs with its own, lower concurrency: at most ``BACKFILL_MAX_CONCURRENCY`` messages per worker
process at once (``BackfillGate``). The host's ``batchSize`` applies to every queue trigger, so the bound
is the app's own: an invocation waits for a slot, and one that waits too long sends its message back
with a delay instead of holding the host's message and thread. An invocation also stops taking events
after ``BUDGET_SECONDS`` and sends the rest back as a new message, well inside ``functionTimeout``.
A message processed twice (a worker died mid-pack) is harmless: the ledger skips what it applied.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.core.envelope import MAX_MESSAGE_BYTES
from shared.usecases.processor import ProcessorDeps, collect_poison, process_message

log = logging.getLogger("customer_sync.backfill")

BUDGET_SECONDS = 120.0  # stop taking events of one message after this; functionTimeout is 5 min
SLOT_WAIT_SECONDS = 30.0  # longest wait for a backfill slot before the message is sent back
SEND_BACK_DELAY_SECONDS = 5
PACK_PREFIX = '{"v":1,"batch":['
PACK_SUFFIX = "]}"


def pack(envelopes: list[str]) -> str:
    """One queue message holding these envelopes (JSON texts of ``shared.core.envelope.Envelope``)."""
    return PACK_PREFIX + ",".join(envelopes) + PACK_SUFFIX


def unpack(body: str | bytes) -> list[str] | None:
    """The envelopes of a packed message, or None when ``body`` is a single envelope (a retry) or
    unreadable: ``process_message`` then reads (or dead-letters) it as it is."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("batch"), list):
        return None
    return [json.dumps(item, ensure_ascii=False, separators=(",", ":")) for item in data["batch"]]


class Packer:
    """Groups envelopes into messages that stay under the queue's size limit once base64-encoded."""

    def __init__(self, max_bytes: int = MAX_MESSAGE_BYTES, max_events: int = 200):
        self.max_bytes = max_bytes
        self.max_events = max_events
        self._items: list[str] = []
        self._rows: list[int] = []
        self._size = len(PACK_PREFIX) + len(PACK_SUFFIX)

    def add(self, row: int, envelope: str) -> tuple[str, list[int]] | None:
        """Add one envelope; returns a full message (text, its rows) when this one did not fit."""
        size = len(envelope.encode("utf-8")) + 1
        full = None
        if self._items and (self._size + size > self.max_bytes or len(self._items) >= self.max_events):
            full = self.flush()
        self._items.append(envelope)
        self._rows.append(row)
        self._size += size
        return full

    @property
    def first_row(self) -> int | None:
        """The first record waiting in the message being filled (not sent yet)."""
        return self._rows[0] if self._rows else None

    def flush(self) -> tuple[str, list[int]] | None:
        if not self._items:
            return None
        message, rows = pack(self._items), self._rows
        self._items, self._rows = [], []
        self._size = len(PACK_PREFIX) + len(PACK_SUFFIX)
        return message, rows


class BackfillGate:
    """At most ``limit`` backfill messages processed at once in this worker process."""

    def __init__(self, limit: int):
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    def acquire(self, timeout: float) -> bool:
        return self._slots.acquire(timeout=timeout)

    def release(self) -> None:
        self._slots.release()


@dataclass
class BackfillDeps:
    processor: ProcessorDeps  # requeue: the backfill queue
    gate: BackfillGate
    send: Callable[[str, int], None]  # (message text, seconds invisible) on the backfill queue
    budget_seconds: float = BUDGET_SECONDS
    slot_wait_seconds: float = SLOT_WAIT_SECONDS
    monotonic: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class BackfillResult:
    processed: int
    sent_back: int


def process_backfill_message(body: str | bytes, dequeue_count: int, deps: BackfillDeps) -> BackfillResult:
    """Process one backfill message: a pack of envelopes, or a single one (a retry or deferral)."""
    envelopes = unpack(body)
    items = envelopes if envelopes is not None else [body]
    started = deps.monotonic()
    if not deps.gate.acquire(deps.slot_wait_seconds):
        # Every slot of this process is busy: let another instance, or a later poll, take it.
        deps.send(body if isinstance(body, str) else body.decode("utf-8"), SEND_BACK_DELAY_SECONDS)
        log.info("backfill slots busy (%d): message sent back", deps.gate.limit)
        return BackfillResult(0, len(items))
    try:
        for done, item in enumerate(items):
            # Only a pack has a rest to send back: a single envelope is the whole of its message.
            if done and envelopes is not None and deps.monotonic() - started > deps.budget_seconds:
                rest = envelopes[done:]
                deps.send(pack(rest), 0)
                log.info("backfill message: %d event(s) processed, %d sent back (time budget)", done, len(rest))
                return BackfillResult(done, len(rest))
            # Each event is one processor invocation: its own outcome, retries and dead letters.
            process_message(item, dequeue_count if envelopes is None else 1, deps.processor)
        return BackfillResult(len(items), 0)
    finally:
        deps.gate.release()


def collect_backfill_poison(body: str | bytes, dequeue_count: int, deps: ProcessorDeps) -> int:
    """A backfill message the host gave up on: each of its events kept as its own dead letter."""
    envelopes = unpack(body)
    for item in envelopes if envelopes is not None else [body]:
        collect_poison(item, dequeue_count, deps)
    return len(envelopes) if envelopes is not None else 1
