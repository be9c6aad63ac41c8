"""Delivery: how one queue message ends. Acknowledged with its outcome, sent again with a delay
(deferred or retrying), or kept as a dead letter; the poison queue and stranded messages are kept as
dead letters too.

A transient failure sends the event again with a delay (Retry-After, else exponential backoff with
jitter) and completes the current message, so throttling never spends the host's dequeue attempts;
after ``RETRY_MAX_AGE_SECONDS`` the event is dead-lettered with its last error. Permanent failures are
dead-lettered at once, with their reason. Every delivery ends in exactly one ``CustomerSyncOutcome``
telemetry event.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from shared.core import privacy
from shared.core.contract import NormalisedEvent
from shared.core.dead_letters import UNKNOWN_PARTITION, DeadLetter
from shared.core.envelope import Envelope, peek_identity
from shared.core.failures import Disposition, Failure, MessageFormatError, classify_failure, safe_traceback
from shared.core.ledger_rules import LedgerPort
from shared.core.logcontext import log_context
from shared.core.retry_policy import defer_delay, expired, retry_delay
from shared.core.settings import MappingSettings, RetrySettings
from shared.core.telemetry_names import Outcome
from shared.usecases.processor.lease import EntryPresence, apply_event
from shared.usecases.processor.lookup import CommercePort

if TYPE_CHECKING:  # adapters are injected; only their types are named here
    from shared.adapters.telemetry import Telemetry


log = logging.getLogger("customer_sync.processor")


class DeadLetterPort(Protocol):
    def put(self, letter: DeadLetter) -> None: ...


class CallCounter:
    """Commerce calls made by the current invocation (one thread runs one invocation at a time)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def reset(self) -> None:
        self._local.count = 0

    def add(self, *_: object) -> None:
        self._local.count = getattr(self._local, "count", 0) + 1

    @property
    def count(self) -> int:
        count: int = getattr(self._local, "count", 0)
        return count


class RetryLater(Exception):
    """Raised to the trigger so the host releases the message for another attempt. Only when the
    event could not be sent again by the processor itself (storage unavailable)."""

    def __init__(self, failure: Failure):
        self.failure = failure
        super().__init__(f"{failure.reason}: {failure.message}")


@dataclass
class ProcessorDeps:
    commerce: CommercePort
    deadletters: DeadLetterPort
    telemetry: Telemetry
    mapping: MappingSettings
    max_dequeue_count: int
    calls: CallCounter
    clock: Callable[[], datetime]
    ledger: LedgerPort
    requeue: Callable[[str, int], None]  # (message text, seconds invisible)
    retry: RetrySettings
    lease_seconds: float
    call_budget: float  # longest one Commerce call can take once sent (a slot wait can add as much)
    hash_key: bytes
    rng: random.Random = field(default_factory=random.Random)
    new_owner: Callable[[], str] = lambda: uuid.uuid4().hex
    presence: EntryPresence = field(default_factory=EntryPresence)


@dataclass(frozen=True)
class ProcessResult:
    outcome: Outcome
    account_number: str | None = None
    failure: Failure | None = None
    delay: int | None = None  # seconds until the event is tried again (deferred, retrying)


@dataclass(frozen=True)
class Delivery:
    """One delivery of a readable queue message: what every way of ending it needs."""

    envelope: Envelope
    body: str | bytes  # as received: a dead letter keeps it
    dequeue_count: int  # the host's count of this message's deliveries
    deps: ProcessorDeps
    started: float  # time.perf_counter() when the delivery began: the outcome's latency

    @property
    def event(self) -> NormalisedEvent:
        return self.envelope.event

    def finish(self, result: ProcessResult, level: int = logging.INFO) -> ProcessResult:
        """The delivery's one ``CustomerSyncOutcome`` event, then ``result``."""
        event, envelope, deps = self.event, self.envelope, self.deps
        failure = result.failure
        deps.telemetry.outcome(
            result.outcome,
            event_id=event.event_id,
            email_hash=event.email_hash,
            correlation_id=envelope.correlation_id,
            latency_ms=(time.perf_counter() - self.started) * 1000,
            commerce_calls=deps.calls.count,
            attempt=envelope.attempt,
            reason=failure.reason if failure else None,
            level=level,
            source=event.source,
        )
        return result


def process_message(body: str | bytes, dequeue_count: int, deps: ProcessorDeps) -> ProcessResult:
    started = time.perf_counter()
    deps.calls.reset()
    try:
        envelope = Envelope.from_json(body)
    except MessageFormatError as error:
        return _dead_letter_unreadable(body, dequeue_count, classify_failure(error), deps, started)
    event = envelope.event
    with log_context(event_id=event.event_id, correlation_id=envelope.correlation_id, email_hash=event.email_hash[:16]):
        return _process(Delivery(envelope, body, dequeue_count, deps, started))


def _process(delivery: Delivery) -> ProcessResult:
    envelope, deps = delivery.envelope, delivery.deps
    try:
        outcome, account = apply_event(envelope, deps)
    except Exception as error:  # noqa: BLE001 - classified below: retried or dead-lettered, never dropped
        return _failed(delivery, classify_failure(error), error)

    if outcome is Outcome.DEFERRED:
        if expired(envelope.ingested_at, deps.clock(), deps.retry):
            # A lease outlives its owner by at most LEDGER_LEASE_SECONDS: waiting this long means
            # something else is wrong (a clock far off, an entry edited by hand). Keep it for replay.
            busy = Failure(
                Disposition.RETRY, "lease_busy", "another worker held the email's lease until the event's maximum age"
            )
            return _dead_letter(delivery, busy, "retries_exhausted:lease_busy")
        return _send_again(
            delivery,
            reason="lease_busy",
            delay=defer_delay(deps.rng),
            counts=False,
            outcome=Outcome.DEFERRED,
        )
    log.info("%s customer %s with %d Commerce call(s)", outcome.value, account or "-", deps.calls.count)
    return delivery.finish(ProcessResult(outcome, account))


def _failed(delivery: Delivery, failure: Failure, error: BaseException) -> ProcessResult:
    envelope, deps = delivery.envelope, delivery.deps
    failure = _masked(failure, envelope)  # before any log line, re-sent message or dead letter
    if failure.auth and failure.reason == "commerce_auth":  # storage auth has its own signals
        deps.telemetry.auth_failure(
            status=failure.status, operation=getattr(error, "operation", None), correlation_id=envelope.correlation_id
        )
    if failure.reason == "unexpected_error":
        log.warning("unexpected error: %s", safe_traceback(error))
    if failure.disposition is Disposition.RETRY:
        too_old = expired(envelope.ingested_at, deps.clock(), deps.retry)
        # A defect rarely heals by waiting: it gets the host's attempt count, not the full age.
        defect_exhausted = failure.reason == "unexpected_error" and envelope.attempt >= deps.max_dequeue_count
        if not (too_old or defect_exhausted):
            delay = retry_delay(envelope.attempt, failure.retry_after, deps.retry, deps.rng)
            log.warning(
                "attempt %d failed, trying again in %d s: %s %s",
                envelope.attempt,
                delay,
                failure.reason,
                failure.message,
            )
            return _send_again(
                delivery,
                reason=failure.reason,
                delay=delay,
                counts=True,
                outcome=Outcome.RETRYING,
                failure=failure,
            )
        reason = f"retries_exhausted:{failure.reason}"
    else:
        reason = failure.reason
    return _dead_letter(delivery, failure, reason)


def _masked(failure: Failure, envelope: Envelope) -> Failure:
    """The failure with its message masked of what this event sent (Commerce may quote it back)."""
    return replace(failure, message=privacy.mask_free_text(failure.message, privacy.sensitive_values(envelope.event)))


def _send_again(
    delivery: Delivery,
    *,
    reason: str,
    delay: int,
    counts: bool,
    outcome: Outcome,
    failure: Failure | None = None,
) -> ProcessResult:
    """Queue the event again, invisible for ``delay`` s, and let the current message complete."""
    try:
        delivery.deps.requeue(delivery.envelope.next_attempt(reason, counts=counts).to_json(), delay)
    except Exception as error:  # noqa: BLE001 - the host's own retry is the fallback
        send_failure = classify_failure(error)
        log.warning("could not queue the event again (%s): the host will release it", send_failure.reason)
        delivery.finish(ProcessResult(Outcome.RETRYING, failure=failure or send_failure), logging.WARNING)
        raise RetryLater(failure or send_failure) from None
    level = logging.WARNING if outcome is Outcome.RETRYING else logging.INFO
    return delivery.finish(ProcessResult(outcome, failure=failure, delay=delay), level)


def _dead_letter(delivery: Delivery, failure: Failure, reason: str) -> ProcessResult:
    envelope, event, deps = delivery.envelope, delivery.event, delivery.deps
    failure = _masked(failure, envelope)
    attempts = max(envelope.attempt, delivery.dequeue_count)
    deps.deadletters.put(
        DeadLetter(
            email_hash=event.email_hash,
            event_id=event.event_id,
            reason=reason,
            message=failure.message,
            error_resource_id=failure.error_resource_id,
            status=failure.status,
            attempts=attempts,
            first_seen_at=envelope.ingested_at,
            dead_lettered_at=deps.clock(),
            envelope=_text(delivery.body),
        )
    )
    deps.telemetry.dead_lettered(
        event_id=event.event_id,
        email_hash=event.email_hash,
        reason=reason,
        error_resource_id=failure.error_resource_id,
        correlation_id=envelope.correlation_id,
        attempts=attempts,
    )
    log.error("dead-lettered after %d attempt(s): %s %s", attempts, reason, failure.message)
    # The outcome carries the dead letter's own reason (retries_exhausted:... included).
    return delivery.finish(ProcessResult(Outcome.DEAD_LETTERED, failure=replace(failure, reason=reason)), logging.ERROR)


# --- messages that cannot be processed -----------------------------------------------------------


def collect_poison(body: str | bytes, dequeue_count: int, deps: ProcessorDeps) -> ProcessResult:
    """A message the host moved to ``<queue>-poison``: keep it as a dead letter so nothing is stranded."""
    failure = Failure(
        Disposition.DEAD_LETTER,
        "max_dequeue_exceeded",
        "the host moved this message to the poison queue after maxDequeueCount attempts",
    )
    return _dead_letter_unreadable(body, dequeue_count, failure, deps, time.perf_counter(), from_poison=True)


def _dead_letter_unreadable(
    body: str | bytes,
    dequeue_count: int,
    failure: Failure,
    deps: ProcessorDeps,
    started: float,
    from_poison: bool = False,
) -> ProcessResult:
    event_id, email_hash = peek_identity(body)
    text = _text(body)
    if not event_id:
        event_id = "unreadable-" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]
    now = deps.clock()
    deps.deadletters.put(
        DeadLetter(
            email_hash=email_hash or UNKNOWN_PARTITION,
            event_id=event_id,
            reason=failure.reason,
            message=failure.message,
            error_resource_id=None,
            status=None,
            attempts=dequeue_count,
            first_seen_at=None,
            dead_lettered_at=now,
            envelope=text,
        )
    )
    deps.telemetry.dead_lettered(
        event_id=event_id,
        email_hash=email_hash,
        reason=failure.reason,
        error_resource_id=None,
        correlation_id=None,
        attempts=dequeue_count,
    )
    deps.telemetry.outcome(
        Outcome.DEAD_LETTERED,
        event_id=event_id,
        email_hash=email_hash,
        correlation_id=None,
        latency_ms=(time.perf_counter() - started) * 1000,
        commerce_calls=0,
        attempt=dequeue_count,
        reason=failure.reason,
        level=logging.ERROR,
    )
    log.error(
        "%s message dead-lettered: %s [event %s]", "poison" if from_poison else "unreadable", failure.reason, event_id
    )
    return ProcessResult(Outcome.DEAD_LETTERED, failure=failure)


def _text(body: str | bytes) -> str:
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else body


def keep_stranded(body: str | bytes, dequeue_count: int, readable: bool, deps: ProcessorDeps) -> ProcessResult:
    """A message no trigger will take, found by the queue monitor (``shared.usecases.queue_monitor``): kept as a
    dead letter like the poison collector's. ``readable``: the host could decode it, so it is there
    because the poison collector failed on it; otherwise no trigger can ever read it. Raises when the
    dead letter cannot be written, so the monitor leaves the message queued."""
    if readable:
        failure = Failure(
            Disposition.DEAD_LETTER,
            "max_dequeue_exceeded",
            "the poison collector failed on this message maxDequeueCount times",
        )
    else:
        failure = Failure(
            Disposition.DEAD_LETTER,
            "unreadable_message",
            "the queue message is not base64-encoded UTF-8 text, so no queue trigger could read it",
        )
    return _dead_letter_unreadable(body, dequeue_count, failure, deps, time.perf_counter(), from_poison=True)
