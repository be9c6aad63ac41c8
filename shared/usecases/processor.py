"""Queue processing: apply one event to Commerce (create, update or nothing), or say why not.

The flow for one event (``docs/ledger.md`` has the state diagram):
1. read the envelope (unreadable -> dead letter at once);
2. read the email's ledger entry: an event already applied is a ``duplicate``, one older than the
   last applied is ``stale``; both are acknowledged with no Commerce call;
3. take the email's lease (insert-if-absent, or an ETag-conditional take-over of an expired one). A
   live lease of another worker -> the event is sent again with a 1-5 s delay (``deferred``): only
   the lease holder ever searches, creates or updates that email's customer. An email that is likely
   new skips the read: the insert that takes the lease fails if the entry exists (``EntryPresence``).
   A known customer whose field groups are unchanged needs no lease: the event is recorded by one
   write conditional on the ETag read (``unchanged``);
4. under the lease: a known customer with unchanged field groups -> nothing; changed groups -> one
   PATCH; otherwise find it (sender's hint, then exact email search), read it and PATCH the
   difference, or create it. A 404 on the stored account (deleted, merged, async number replaced)
   re-resolves by email;
5. record the result and release the lease in one conditional write.
Failures are classified once (``shared.core.failures.classify_failure``). A transient one sends the event again
with a delay (Retry-After, else exponential backoff with jitter) and completes the current message,
so throttling never spends the host's dequeue attempts; after ``RETRY_MAX_AGE_SECONDS`` the event is
dead-lettered with its last error. Permanent failures are dead-lettered at once, with their reason.
Every delivery ends in exactly one ``CustomerSyncOutcome`` telemetry event.
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
from typing import TYPE_CHECKING, Any, Protocol

from shared.core import privacy
from shared.core.commerce_bodies.create import build_create_body
from shared.core.commerce_bodies.groups import blind_patch, changed_groups, group_hashes, restrict
from shared.core.commerce_bodies.patch import build_patch
from shared.core.commerce_errors import CommerceNotFoundError
from shared.core.contract import NormalisedEvent
from shared.core.dead_letters import UNKNOWN_PARTITION, DeadLetter
from shared.core.envelope import Envelope, peek_identity
from shared.core.failures import Disposition, Failure, MessageFormatError, classify_failure, safe_traceback
from shared.core.ledger_rules import (
    LedgerConflict,
    LedgerEntry,
    LedgerPort,
    OrderKey,
    State,
    Verdict,
    applied,
    assess,
    carried_groups,
    moved,
    release,
    renew_lease,
    settle,
    take_lease,
    uncertain,
)
from shared.core.logcontext import log_context
from shared.core.retry_policy import defer_delay, expired, retry_delay
from shared.core.settings import MappingSettings, RetrySettings
from shared.core.telemetry_names import Outcome

if TYPE_CHECKING:  # adapters are injected; only their types are named here
    from shared.adapters.telemetry import Telemetry


log = logging.getLogger("customer_sync.processor")

LEASE_RACES = 4  # lost ETag races in a row before deferring: another worker is busy with this email


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


class EntryPresence:
    """A guess, per worker process, at whether an email's ledger entry exists, to choose the first
    ledger operation: a read (a new email then costs read, insert with the lease, record: 3) or the
    insert that takes the lease (insert, record: 2). A wrong guess costs one operation, never
    correctness: the insert is conditional (it fails when the entry exists, which is then read and
    judged as always), and a read that finds nothing is followed by the insert as before.

    Insert first for an email not seen in this process when the sender says the customer is new
    (``eventType`` ``customer.created``), or when most of the latest emails not seen here had no entry
    (a backfill, a first import). Emails seen here (their entry exists) are always read first."""

    REMEMBERED = 20_000  # emails kept as seen (32 hex characters each: about 2 MB)
    WEIGHT = 1 / 8  # of the latest observation in the share of unseen emails that were new

    def __init__(self, remembered: int = REMEMBERED):
        self._seen: dict[str, None] = {}  # insertion-ordered: the oldest is forgotten first
        self._remembered = remembered
        self._new_share = 0.5  # no information yet: either guess is as good
        self._lock = threading.Lock()

    def insert_first(self, email_hash: str, event: NormalisedEvent) -> bool:
        if email_hash[:32] in self._seen:
            return False
        return event.event_type == "customer.created" or self._new_share >= 0.5

    def observed(self, email_hash: str, existed: bool) -> None:
        """What the first operation found for this email (an entry, or none: it has one now)."""
        key = email_hash[:32]
        with self._lock:
            if key in self._seen:
                del self._seen[key]
            else:
                self._new_share += self.WEIGHT * ((0.0 if existed else 1.0) - self._new_share)
            self._seen[key] = None
            if len(self._seen) > self._remembered:
                del self._seen[next(iter(self._seen))]


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


def process_message(body: str | bytes, dequeue_count: int, deps: ProcessorDeps) -> ProcessResult:
    started = time.perf_counter()
    deps.calls.reset()
    try:
        envelope = Envelope.from_json(body)
    except MessageFormatError as error:
        return _dead_letter_unreadable(body, dequeue_count, classify_failure(error), deps, started)
    event = envelope.event
    with log_context(event_id=event.event_id, correlation_id=envelope.correlation_id, email_hash=event.email_hash[:16]):
        return _process(envelope, body, dequeue_count, deps, started)


def _process(
    envelope: Envelope, body: str | bytes, dequeue_count: int, deps: ProcessorDeps, started: float
) -> ProcessResult:
    event = envelope.event

    def finish(result: ProcessResult, level=logging.INFO) -> ProcessResult:
        failure = result.failure
        deps.telemetry.outcome(
            result.outcome,
            event_id=event.event_id,
            email_hash=event.email_hash,
            correlation_id=envelope.correlation_id,
            latency_ms=(time.perf_counter() - started) * 1000,
            commerce_calls=deps.calls.count,
            attempt=envelope.attempt,
            reason=failure.reason if failure else None,
            level=level,
            source=event.source,
        )
        return result

    try:
        outcome, account = apply_event(envelope, deps)
    except Exception as error:  # noqa: BLE001 - classified below: retried or dead-lettered, never dropped
        return _failed(envelope, body, dequeue_count, deps, classify_failure(error), error, finish)

    if outcome is Outcome.DEFERRED:
        if expired(envelope.ingested_at, deps.clock(), deps.retry):
            # A lease outlives its owner by at most LEDGER_LEASE_SECONDS: waiting this long means
            # something else is wrong (a clock far off, an entry edited by hand). Keep it for replay.
            busy = Failure(
                Disposition.RETRY, "lease_busy", "another worker held the email's lease until the event's maximum age"
            )
            return _dead_letter(envelope, body, dequeue_count, deps, busy, "retries_exhausted:lease_busy", finish)
        return _send_again(
            envelope,
            deps,
            finish,
            reason="lease_busy",
            delay=defer_delay(deps.rng),
            counts=False,
            outcome=Outcome.DEFERRED,
        )
    log.info("%s customer %s with %d Commerce call(s)", outcome.value, account or "-", deps.calls.count)
    return finish(ProcessResult(outcome, account))


def _failed(
    envelope: Envelope,
    body: str | bytes,
    dequeue_count: int,
    deps: ProcessorDeps,
    failure: Failure,
    error: BaseException,
    finish,
) -> ProcessResult:
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
                envelope,
                deps,
                finish,
                reason=failure.reason,
                delay=delay,
                counts=True,
                outcome=Outcome.RETRYING,
                failure=failure,
            )
        reason = f"retries_exhausted:{failure.reason}"
    else:
        reason = failure.reason
    return _dead_letter(envelope, body, dequeue_count, deps, failure, reason, finish)


def _masked(failure: Failure, envelope: Envelope) -> Failure:
    """The failure with its message masked of what this event sent (Commerce may quote it back)."""
    return replace(failure, message=privacy.mask_free_text(failure.message, privacy.sensitive_values(envelope.event)))


def _send_again(
    envelope: Envelope,
    deps: ProcessorDeps,
    finish,
    *,
    reason: str,
    delay: int,
    counts: bool,
    outcome: Outcome,
    failure: Failure | None = None,
) -> ProcessResult:
    """Queue the event again, invisible for ``delay`` s, and let the current message complete."""
    try:
        deps.requeue(envelope.next_attempt(reason, counts=counts).to_json(), delay)
    except Exception as error:  # noqa: BLE001 - the host's own retry is the fallback
        send_failure = classify_failure(error)
        log.warning("could not queue the event again (%s): the host will release it", send_failure.reason)
        finish(ProcessResult(Outcome.RETRYING, failure=failure or send_failure), logging.WARNING)
        raise RetryLater(failure or send_failure) from None
    level = logging.WARNING if outcome is Outcome.RETRYING else logging.INFO
    return finish(ProcessResult(outcome, failure=failure, delay=delay), level)


def _dead_letter(
    envelope: Envelope,
    body: str | bytes,
    dequeue_count: int,
    deps: ProcessorDeps,
    failure: Failure,
    reason: str,
    finish,
) -> ProcessResult:
    event = envelope.event
    failure = _masked(failure, envelope)
    attempts = max(envelope.attempt, dequeue_count)
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
            envelope=_text(body),
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
    return finish(ProcessResult(Outcome.DEAD_LETTERED, failure=replace(failure, reason=reason)), logging.ERROR)


# --- the ledger protocol -------------------------------------------------------------------------


class _Lease:
    """An entry this invocation holds the lease of, kept current across renewals."""

    def __init__(self, entry: LedgerEntry, deps: ProcessorDeps):
        self.entry = entry
        self.deps = deps
        self.wrote = False  # a create or PATCH was sent: a failure after it leaves Commerce uncertain
        self.partner: _Lease | None = None  # the previous address's lease during an email change

    def before_write(self) -> None:
        """A write starts only with a whole call's budget (slot wait + call: twice the call budget)
        left on every lease it relies on, so it ends before a lease can pass to another worker. Renews
        when less is left. A renewal is a storage write, which can take up to the storage timeout per
        wait, and that time comes out of the lease it renews (and out of the other lease of an email
        change): the clock is read again after the renewals, and if a lease no longer has the budget,
        ``_NoBudget`` is raised before anything is sent (the event is deferred, the leases let go)."""
        leases = [held for held in (self, self.partner) if held is not None]
        needed = 2 * self.deps.call_budget
        for held in leases:
            now = held.deps.clock()
            lease = held.entry.lease
            assert lease is not None
            if (lease.until - now).total_seconds() < needed:
                held.entry = held.deps.ledger.write(renew_lease(held.entry, now, held.deps.lease_seconds))
        now = self.deps.clock()
        left = min((held.entry.lease.until - now).total_seconds() for held in leases)  # type: ignore[union-attr]
        if left < needed:
            raise _NoBudget(left, needed)
        for held in leases:
            held.wrote = True


class _NoBudget(Exception):
    """Less than a write's budget is left on a lease after renewing it (the renewal took that long)."""

    def __init__(self, left: float, needed: float):
        super().__init__(f"{left:.1f} s left on the email's lease after renewing it, {needed:g} s needed")


@dataclass(frozen=True)
class _Recorded:
    """An event recorded as applied with no lease and no Commerce call: every group it writes was
    unchanged (``_record_unchanged``)."""

    account: str | None
    groups: frozenset[str] | None


def _acquire(
    email_hash: str,
    event: NormalisedEvent,
    deps: ProcessorDeps,
    owner: str,
    *,
    force: bool,
    moved_from: str | None = None,
    pending: OrderKey | None = None,
    whole: bool = False,
    record: bool = False,
) -> LedgerEntry | Verdict | _Recorded | None:
    """The entry with our lease on it; or the verdict DUPLICATE / STALE; or None when another
    worker holds the lease (or keeps winning the race for it). ``pending``: the event the lease is
    recorded as applying, when it is not ``event`` itself (an email change adopted by a later event).
    The lease names the groups the event may still write (``Lease.groups``; None with ``whole``, or for
    an email change: it moves the entry, every group with it).

    The event's own entry (no ``pending``) is not read first when it is likely new
    (``EntryPresence``): the lease is taken by the insert that would follow a read finding nothing,
    and the verdict on no entry is to apply every group carried. The insert fails if the entry
    exists; it is then read as usual. ``record``: an event that needs no Commerce call (below) is
    recorded by a replace conditional on the ETag read, with no lease (``_Recorded``)."""
    key = pending or OrderKey.of(event)
    own = pending is None  # not the previous address's entry, leased for an email change
    insert_first = own and deps.presence.insert_first(email_hash, event)
    observe = own
    for _ in range(LEASE_RACES):
        now = deps.clock()
        if insert_first:
            insert_first = observe = False
            groups = None if whole or event.changes_email else assess(None, event, force=force).groups
            try:
                held = deps.ledger.write(
                    take_lease(
                        LedgerEntry(email_hash),
                        owner,
                        now,
                        deps.lease_seconds,
                        key,
                        moved_from=moved_from,
                        groups=groups,
                    )
                )
            except LedgerConflict:
                deps.presence.observed(email_hash, existed=True)  # there is an entry: read it
            else:
                deps.presence.observed(email_hash, existed=False)
                return held
            now = deps.clock()
        read = deps.ledger.read(email_hash)
        if observe:
            observe = False
            deps.presence.observed(email_hash, existed=read is not None)
        entry = settle(read, now) if read is not None else None
        judged = assess(entry, event, force=force)
        if judged.verdict is not Verdict.APPLY:
            return judged.verdict
        if entry is not None and entry.leased_by_other(owner, now):
            return None
        base = entry if entry is not None else LedgerEntry(email_hash)
        groups = None if whole or event.changes_email else judged.groups
        recorded = _record_unchanged(entry, event, groups, deps) if record and entry is not None else None
        try:
            if recorded is not None:
                deps.ledger.write(recorded)
                return _Recorded(recorded.account_number, groups)
            return deps.ledger.write(
                take_lease(base, owner, now, deps.lease_seconds, key, moved_from=moved_from, groups=groups)
            )
        except LedgerConflict:
            continue
    return None


def _record_unchanged(
    entry: LedgerEntry, event: NormalisedEvent, groups: frozenset[str] | None, deps: ProcessorDeps
) -> LedgerEntry | None:
    """``entry`` recording ``event`` (narrowed to ``groups``) as applied, when the entry shows that
    Commerce holds everything it writes already: a known customer whose last write was confirmed
    (``applied``, hashes kept) and no hash of its groups changed, or the changed ones hold nothing
    Commerce stores. None when a call is needed or cannot be ruled out (then the lease is taken).

    Why no lease is needed: the lease keeps two workers from writing one customer in Commerce, and
    this event writes nothing there. The replace is conditional on the ETag of the entry judged, so it
    lands only if nothing changed since the read: no lease was taken meanwhile (a live one of another
    worker defers the event before this), no event was recorded, no write became uncertain (an
    expired lease with a pending event is folded in first, and its dropped hashes rule this path
    out). A lost race is a re-read and a fresh decision, as for the lease itself."""
    if not (entry.knows_customer and entry.state is State.APPLIED and entry.hashes):
        return None
    applying = event if groups is None else restrict(event, groups)
    hashes = group_hashes(applying, deps.hash_key)
    changed = changed_groups(entry.hashes, hashes)
    if changed and blind_patch(applying, entry, changed, deps.mapping) != {}:
        return None
    return applied(
        entry,
        event,
        customer=None,
        account_number=entry.account_number or "",
        hashes={**entry.hashes, **hashes},
        groups=groups,
    )


def _let_go(lease: _Lease | None, key: OrderKey, maybe_written: bool, deps: ProcessorDeps) -> None:
    """Release after a failure; ``maybe_written``: Commerce may hold the event's data now, so the
    entry says uncertain. Best effort: if this write fails, the lease simply expires and the next
    worker folds its pending event in the same (uncertain) way."""
    if lease is None:
        return
    held = lease.entry.lease
    after = uncertain(lease.entry, key, held.groups if held else None) if maybe_written else release(lease.entry)
    try:
        deps.ledger.write(after)
    except Exception as error:  # noqa: BLE001 - see docstring
        log.warning("could not release the email's lease (%s); it expires by itself", type(error).__name__)


_BUSY = object()
_SUPERSEDED = object()


def _lease_previous(
    event: NormalisedEvent, held: LedgerEntry, change: OrderKey, deps: ProcessorDeps, owner: str
) -> _Lease | None | object:
    """During an email change not applied yet (this event's own, or an earlier one still being
    retried, which a later event for the new address must adopt rather than create a second
    customer): the previous address's entry, leased too, so no other worker writes that customer
    meanwhile. ``_BUSY`` when another worker holds it; ``_SUPERSEDED`` when the change is stale there."""
    if not held.moved_from or (held.knows_customer and held.state is State.APPLIED):
        return None  # no change pending, or the new address has a confirmed customer of its own
    # The lease on the old entry is recorded as applying the change (not this event, which may be a
    # later one for the new address): if it may have written, the old entry is uncertain at the
    # change's key, and the check below keeps meaning "the old address had events since the change".
    old = _acquire(held.moved_from, event, deps, owner, force=True, pending=change, whole=True)
    if not isinstance(old, LedgerEntry):
        return _BUSY
    if old.last and old.last > change:
        # The old address has had newer events than the change: it is still in use there. A later
        # event for the new address does not take its customer over; the change itself is stale.
        _let_go(_Lease(old, deps), change, False, deps)
        return _SUPERSEDED if event.changes_email else None
    return _Lease(old, deps)


def apply_event(envelope: Envelope, deps: ProcessorDeps) -> tuple[Outcome, str | None]:
    """Judge, lease, sync and record one event. Raises what Commerce or storage raise."""
    event = envelope.event
    owner = deps.new_owner()
    key = OrderKey.of(event)
    held = _acquire(
        event.email_hash,
        event,
        deps,
        owner,
        force=envelope.force,
        moved_from=event.previous_email_hash if event.changes_email else None,
        record=not (envelope.force or event.changes_email),
    )
    if isinstance(held, _Recorded):
        _narrowed(event, held.groups)
        return Outcome.UNCHANGED, held.account
    if held is Verdict.DUPLICATE:
        return Outcome.DUPLICATE, None
    if held is Verdict.STALE:
        if event.changes_email:
            # A newer event for the new address was applied first; if it created a customer, the one
            # under the previous address may still exist: a duplicate to merge in headquarters.
            log.warning(
                "email change older than the new address's last event: not applied; check "
                "for a customer still under the previous address"
            )
        return Outcome.STALE, None
    if held is None:
        return Outcome.DEFERRED, None
    lease = _Lease(held, deps)
    change = held.moved_from_at or key  # the email change a lease on the previous entry stands for
    try:
        previous = _lease_previous(event, held, change, deps, owner)
    except Exception:
        _let_go(lease, key, False, deps)
        raise
    if previous is _BUSY:
        _let_go(lease, key, False, deps)
        return Outcome.DEFERRED, None
    if previous is _SUPERSEDED:
        # Undo the change's mark on the new address: it will not be applied.
        _let_go(_Lease(replace(held, moved_from=None, moved_from_at=None), deps), key, False, deps)
        log.info("email change superseded: the previous address has had newer events")
        return Outcome.STALE, None
    lease.partner = previous
    groups = held.lease.groups if held.lease else None  # None: the whole event (an email change)
    _narrowed(event, groups)
    applying = event if groups is None else restrict(event, groups)

    try:
        outcome, customer, account, hashes, adopted = _sync(applying, lease, previous, deps, force=envelope.force)
    except _NoBudget as short:
        # Nothing was sent for this write. A write sent before it in this attempt can only be the
        # PATCH that found no customer (404), so nothing of this event is in Commerce: released.
        log.warning("not writing to Commerce: %s; deferred", short)
        _let_go(lease, key, False, deps)
        _let_go(previous, change, False, deps)
        return Outcome.DEFERRED, None
    except Exception as error:
        maybe_written = lease.wrote and classify_failure(error).may_have_committed
        _let_go(lease, key, maybe_written, deps)
        _let_go(previous, change, maybe_written, deps)
        raise
    try:
        # An email change moves the entry: recorded at its key for every group (see ledger.applied).
        deps.ledger.write(
            applied(
                lease.entry,
                event,
                customer=customer,
                account_number=account,
                hashes=hashes,
                groups=groups,
                moved_at=key if event.changes_email else change if adopted else None,
            )
        )
    except Exception:
        # Written to Commerce (if at all) but not recorded: both entries say uncertain, so the retry
        # need not wait for the lease to expire (if storage is down, it expires and says the same).
        _let_go(lease, key, lease.wrote, deps)
        _let_go(previous, change, lease.wrote, deps)
        raise
    if previous is not None:
        after = moved(previous.entry, change, event.email_hash) if adopted else release(previous.entry)
        try:
            deps.ledger.write(after)
        except Exception as error:  # noqa: BLE001 - the event is applied; the lease expires by itself
            log.warning(
                "could not update the previous email's ledger entry (%s); its lease expires "
                "and it is then treated as uncertain",
                type(error).__name__,
            )
    return outcome, account


def _narrowed(event: NormalisedEvent, groups: frozenset[str] | None) -> None:
    if groups is not None and groups != carried_groups(event):
        log.info(
            "older than the last event applied: writing %s only, the rest was written by newer events",
            ", ".join(sorted(groups)) or "no group",
        )


SyncResult = tuple[Outcome, dict[str, Any] | None, str, dict[str, str], bool]


def _sync(
    event: NormalisedEvent, lease: _Lease, previous: _Lease | None, deps: ProcessorDeps, *, force: bool
) -> SyncResult:
    """Create or update the customer. Returns the outcome, the last customer document Commerce sent,
    the account, the group hashes to record, and whether the previous address's customer was adopted."""
    entry, commerce = lease.entry, deps.commerce
    hashes = group_hashes(event, deps.hash_key)
    if entry.knows_customer and entry.state is State.APPLIED and entry.hashes and not force:
        account = entry.account_number
        changed = changed_groups(entry.hashes, hashes)
        known = {**entry.hashes, **hashes}
        if not changed:
            return Outcome.UNCHANGED, None, account, known, False
        patch = blind_patch(event, entry, changed, deps.mapping)
        if patch == {}:
            return Outcome.UNCHANGED, None, account, known, False
        if patch is not None:
            lease.before_write()
            try:
                return Outcome.UPDATED, commerce.update_customer(account, patch), account, known, False
            except CommerceNotFoundError:
                log.info("stored account not found in Commerce; resolving by email")
                return _resolve_and_write(event, lease, None, deps, hashes, skip_account=True)
    return _resolve_and_write(event, lease, previous, deps, hashes, skip_account=False)


def _resolve_and_write(
    event: NormalisedEvent,
    lease: _Lease,
    previous: _Lease | None,
    deps: ProcessorDeps,
    hashes: dict[str, str],
    *,
    skip_account: bool,
) -> SyncResult:
    commerce = deps.commerce
    customer, adopted = _find(
        event,
        lease.entry,
        previous.entry if previous else None,
        commerce,
        skip_account=skip_account,
        hash_key=deps.hash_key,
    )
    if customer is None:
        lease.before_write()
        created = commerce.create_customer(build_create_body(event, deps.mapping))
        return Outcome.CREATED, created, str(created.get("AccountNumber", "")), hashes, False
    account = customer["AccountNumber"]
    patch = build_patch(customer, event, deps.mapping)
    if patch is None:
        return Outcome.UNCHANGED, customer, account, hashes, adopted
    # Kept if the PATCH ends uncertain: the next attempt (or a later event adopting this customer
    # after an email change) reads it by account; the email check in _get still guards it.
    lease.entry = replace(lease.entry, account_number=account)
    lease.before_write()
    return Outcome.UPDATED, commerce.update_customer(account, patch), account, hashes, adopted


def _get(
    commerce: CommercePort,
    account: str | None,
    *emails: str | None,
    email_hash: str | None = None,
    hash_key: bytes = b"",
) -> dict | None:
    """The customer with this account number if its email is one of ``emails`` (or, for an email
    known only by its hash, hashes to ``email_hash``); else None."""
    if not account:
        return None
    try:
        candidate = commerce.get_customer(account)
    except CommerceNotFoundError:
        log.info("account not found in Commerce; resolving by email")
        return None
    found = (candidate.get("Email") or "").strip().lower()
    if found in {e.lower() for e in emails if e}:
        return candidate
    return candidate if email_hash and found and privacy.email_hash(found, hash_key) == email_hash else None


def _search(commerce: CommercePort, email: str) -> dict | None:
    matches = commerce.search_customers_by_email(email)
    if not matches:
        return None
    chosen = pick_customer(matches)
    if len(matches) > 1:
        log.warning(
            "%d Commerce customers share this email; updating %s (lowest RecordId, non-async "
            "first) - merge the duplicates in headquarters",
            len(matches),
            chosen.get("AccountNumber"),
        )
    return commerce.get_customer(chosen["AccountNumber"])


def _find(
    event: NormalisedEvent,
    entry: LedgerEntry,
    previous: LedgerEntry | None,
    commerce: CommercePort,
    *,
    skip_account: bool,
    hash_key: bytes,
) -> tuple[dict | None, bool]:
    """The Commerce customer this event is about, read in full (None when there is none yet), and
    whether it is the previous address's customer taken over by an email change.

    Sources, in order: the ledger's account; the sender's ``customerAccount`` hint; an exact search
    by the email. The previous address is looked at only while its entry is leased (``previous``),
    and only after the new address: the new address may have a customer of its own (it is updated
    and the previous one left alone), or a change that already went through may have renamed it."""
    if not skip_account and entry.knows_customer:
        found = _get(commerce, entry.account_number, event.email_match_key)
        if found is not None:  # (after an uncertain change, the one it renamed)
            return found, bool(
                previous and previous.knows_customer and found.get("AccountNumber") == previous.account_number
            )
    if previous is None:
        found = _get(commerce, event.customer_account, event.email_match_key)
        return (found if found is not None else _search(commerce, event.email)), False
    found = _search(commerce, event.email)
    if found is not None:
        return found, previous.knows_customer and found.get("AccountNumber") == previous.account_number
    both = (event.email_match_key, event.previous_email_match_key)
    if previous.knows_customer:
        found = _get(commerce, previous.account_number, *both, email_hash=previous.email_hash, hash_key=hash_key)
        if found is not None:
            return found, True
    found = _get(commerce, event.customer_account, *both)
    if found is None and event.previous_email:
        found = _search(commerce, event.previous_email)
    return found, found is not None


def pick_customer(matches: list[dict]) -> dict:
    """Deterministic choice among exact matches: non-async before async, then the lowest RecordId."""
    return min(
        matches,
        key=lambda c: (bool(c.get("IsAsyncCustomer")), int(c.get("RecordId") or 0), str(c.get("AccountNumber"))),
    )


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
