"""Queue processing: apply one event to Commerce (create, update or nothing), or say why not.

The flow for one event:
1. read the envelope (unreadable -> dead letter at once);
2. find the customer: the sender's ``customerAccount`` hint when its email matches, else an exact
   email search (the CSU search is a prefix search; the client keeps exact matches only);
3. no match -> create; a match -> read it, compute the minimal PATCH, send it or do nothing;
4. failures are classified once (``shared.errors.classify``): transient ones raise ``RetryLater`` so
   the host makes the message visible again after host.json's ``visibilityTimeout``; on the last
   attempt (``maxDequeueCount``) and for permanent failures the event is dead-lettered here, with its
   reason, so nothing is left to the poison queue unless this code itself could not run.
Every event ends in exactly one ``CustomerSyncOutcome`` telemetry event.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Protocol

from shared.commerce.errors import CommerceNotFoundError
from shared.deadletters import DeadLetter, UNKNOWN_PARTITION
from shared.diff import build_patch
from shared.envelope import Envelope, peek_identity
from shared.errors import Disposition, Failure, MessageFormatError, classify, safe_traceback
from shared.logcontext import log_context
from shared.mapping import build_create_body
from shared.settings import MappingSettings
from shared.telemetry import Telemetry
from shared.telemetry_names import Outcome
from shared.contract import NormalisedEvent

log = logging.getLogger("customer_sync.processor")


class CommercePort(Protocol):
    def search_customers_by_email(self, email: str) -> list[dict]: ...
    def get_customer(self, account_number: str) -> dict: ...
    def create_customer(self, body: dict) -> dict: ...
    def update_customer(self, account_number: str, changes: dict) -> dict: ...


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
        return getattr(self._local, "count", 0)


class RetryLater(Exception):
    """Raised to the trigger so the host releases the message for another attempt."""

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


@dataclass(frozen=True)
class ProcessResult:
    outcome: Outcome
    account_number: str | None = None
    failure: Failure | None = None


def process_message(body: str | bytes, dequeue_count: int, deps: ProcessorDeps) -> ProcessResult:
    started = time.perf_counter()
    deps.calls.reset()
    try:
        envelope = Envelope.from_json(body)
    except MessageFormatError as error:
        return _dead_letter_unreadable(body, dequeue_count, classify(error), deps, started)
    event = envelope.event
    with log_context(event_id=event.event_id, correlation_id=envelope.correlation_id,
                     email_hash=event.email_hash[:16]):
        return _process(envelope, body, dequeue_count, deps, started)


def _process(envelope: Envelope, body: str | bytes, dequeue_count: int, deps: ProcessorDeps,
             started: float) -> ProcessResult:
    event = envelope.event

    def finish(outcome: Outcome, failure: Failure | None = None, level=logging.INFO) -> None:
        deps.telemetry.outcome(outcome, event_id=event.event_id, email_hash=event.email_hash,
                               correlation_id=envelope.correlation_id,
                               latency_ms=(time.perf_counter() - started) * 1000,
                               commerce_calls=deps.calls.count, attempt=dequeue_count,
                               reason=failure.reason if failure else None, level=level)

    try:
        outcome, account = sync_customer(event, deps.commerce, deps.mapping)
    except Exception as error:  # noqa: BLE001 - classified below: retried or dead-lettered, never dropped
        failure = classify(error)
        if failure.auth:
            deps.telemetry.auth_failure(status=failure.status, operation=getattr(error, "operation", None),
                                        correlation_id=envelope.correlation_id)
        last_attempt = dequeue_count >= deps.max_dequeue_count
        if failure.disposition is Disposition.RETRY and not last_attempt:
            log.warning("attempt %d of %d failed, will retry: %s %s", dequeue_count,
                         deps.max_dequeue_count, failure.reason, failure.message)
            finish(Outcome.RETRYING, failure, logging.WARNING)
            if failure.reason == "unexpected_error":
                log.warning("unexpected error: %s", safe_traceback(error))
            # No exception chaining: the host logs what reaches it, and only the redacted text may.
            raise RetryLater(failure) from None
        reason = failure.reason if failure.disposition is Disposition.DEAD_LETTER \
            else f"retries_exhausted:{failure.reason}"
        deps.deadletters.put(DeadLetter(
            email_hash=event.email_hash, event_id=event.event_id, reason=reason,
            message=failure.message, error_resource_id=failure.error_resource_id,
            status=failure.status, attempts=dequeue_count, first_seen_at=envelope.ingested_at,
            dead_lettered_at=deps.clock(), envelope=_text(body)))
        deps.telemetry.dead_lettered(event_id=event.event_id, email_hash=event.email_hash, reason=reason,
                                     error_resource_id=failure.error_resource_id,
                                     correlation_id=envelope.correlation_id, attempts=dequeue_count)
        log.error("dead-lettered after %d attempt(s): %s %s", dequeue_count, reason, failure.message)
        if failure.reason == "unexpected_error":
            log.error("unexpected error: %s", safe_traceback(error))
        finish(Outcome.DEAD_LETTERED, failure, logging.ERROR)
        return ProcessResult(Outcome.DEAD_LETTERED, failure=failure)

    log.info("%s customer %s with %d Commerce call(s)", outcome.value, account, deps.calls.count)
    finish(outcome)
    return ProcessResult(outcome, account)


def sync_customer(event: NormalisedEvent, commerce: CommercePort,
                  mapping: MappingSettings) -> tuple[Outcome, str]:
    """Create or update one customer. Raises whatever the client raises; the caller classifies it."""
    customer = None
    if event.customer_account:
        try:
            candidate = commerce.get_customer(event.customer_account)
            if (candidate.get("Email") or "").lower() == event.email_match_key:
                customer = candidate
        except CommerceNotFoundError:
            log.info("customerAccount hint not found in Commerce; resolving by email")

    if customer is None:
        matches = commerce.search_customers_by_email(event.email)
        if not matches:
            created = commerce.create_customer(build_create_body(event, mapping))
            return Outcome.CREATED, created.get("AccountNumber", "")
        chosen = pick_customer(matches)
        if len(matches) > 1:
            log.warning("%d Commerce customers share this email; updating %s (lowest RecordId, "
                         "non-async first) - merge the duplicates in headquarters", len(matches),
                         chosen.get("AccountNumber"))
        customer = commerce.get_customer(chosen["AccountNumber"])

    account = customer["AccountNumber"]
    patch = build_patch(customer, event, mapping)
    if patch is None:
        return Outcome.UNCHANGED, account
    commerce.update_customer(account, patch)
    return Outcome.UPDATED, account


def pick_customer(matches: list[dict]) -> dict:
    """Deterministic choice among exact matches: non-async before async, then the lowest RecordId."""
    return min(matches, key=lambda c: (bool(c.get("IsAsyncCustomer")), int(c.get("RecordId") or 0),
                                       str(c.get("AccountNumber"))))


def collect_poison(body: str | bytes, dequeue_count: int, deps: ProcessorDeps) -> ProcessResult:
    """A message the host moved to ``<queue>-poison``: keep it as a dead letter so nothing is stranded."""
    failure = Failure(Disposition.DEAD_LETTER, "max_dequeue_exceeded",
                      "the host moved this message to the poison queue after maxDequeueCount attempts")
    return _dead_letter_unreadable(body, dequeue_count, failure, deps, time.perf_counter(),
                                   from_poison=True)


def _dead_letter_unreadable(body: str | bytes, dequeue_count: int, failure: Failure,
                            deps: ProcessorDeps, started: float, from_poison: bool = False
                            ) -> ProcessResult:
    event_id, email_hash = peek_identity(body)
    text = _text(body)
    if not event_id:
        event_id = "unreadable-" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]
    now = deps.clock()
    deps.deadletters.put(DeadLetter(
        email_hash=email_hash or UNKNOWN_PARTITION, event_id=event_id, reason=failure.reason,
        message=failure.message, error_resource_id=None, status=None, attempts=dequeue_count,
        first_seen_at=None, dead_lettered_at=now, envelope=text))
    deps.telemetry.dead_lettered(event_id=event_id, email_hash=email_hash, reason=failure.reason,
                                 error_resource_id=None, correlation_id=None, attempts=dequeue_count)
    deps.telemetry.outcome(Outcome.DEAD_LETTERED, event_id=event_id, email_hash=email_hash,
                           correlation_id=None, latency_ms=(time.perf_counter() - started) * 1000,
                           commerce_calls=0, attempt=dequeue_count, reason=failure.reason,
                           level=logging.ERROR)
    log.error("%s message dead-lettered: %s [event %s]", "poison" if from_poison else "unreadable",
              failure.reason, event_id)
    return ProcessResult(Outcome.DEAD_LETTERED, failure=failure)


def _text(body: str | bytes) -> str:
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else body
