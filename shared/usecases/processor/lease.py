"""The lease protocol on the sync ledger: one event applied under its email's lease.

``apply_event`` judges the event against the email's entry, takes the entry's lease (insert-if-absent,
or an ETag-conditional take-over of an expired one; ``docs/ledger.md`` has the state diagram), has the
customer found and written (``shared.usecases.processor.lookup``), then records the result and releases
the lease in one conditional write. The lease keeps exactly one worker searching, creating or updating
an email's customer, so two deliveries racing for a new email create one customer, not two.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from enum import Enum
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from shared.core.commerce_bodies.groups import blind_patch, changed_groups, group_hashes, restrict
from shared.core.contract import NormalisedEvent
from shared.core.envelope import Envelope
from shared.core.failures import classify_failure
from shared.core.ledger_rules import (
    LedgerConflict,
    LedgerEntry,
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
from shared.core.telemetry_names import Outcome
from shared.usecases.processor.lookup import sync_customer

if TYPE_CHECKING:  # the processor's dependencies, defined where a delivery starts
    from shared.usecases.processor.delivery import ProcessorDeps


log = logging.getLogger("customer_sync.processor")

LEASE_RACES = 4  # lost ETag races in a row before deferring: another worker is busy with this email


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


class _Held:
    """The leases one event holds while it is applied: its own email's, and during an email change the
    previous address's. A context manager, so that every way out writes each lease off: recorded (the
    own lease released by the very write that records the event; the previous entry then moved to the
    new address, or released), or let go (``_let_go``), as uncertain once Commerce may hold the event."""

    def __init__(self, own: _Lease, key: OrderKey, deps: ProcessorDeps):
        self.own = own
        self.key = key
        self.deps = deps
        self.previous: _Lease | None = None
        self.change = key  # the email change the previous address's lease stands for
        self.maybe_written = False  # Commerce may hold the event's data: let go as uncertain
        self.recorded = False
        self.adopted = False  # the previous address's customer is the new address's now

    def __enter__(self) -> _Held:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if error is not None and not isinstance(error, Exception):
            # The worker is going away (SystemExit, KeyboardInterrupt) and may be mid-write, with
            # ``maybe_written`` not yet set: a release could hide a write. Left to expire, a lease is
            # folded in by the next worker as uncertain, which is right whatever was sent.
            return
        if not self.recorded:
            _let_go(self.own, self.key, self.maybe_written, self.deps)
            _let_go(self.previous, self.change, self.maybe_written, self.deps)
            return
        if self.previous is None:
            return
        entry = self.previous.entry
        after = moved(entry, self.change, self.own.entry.email_hash) if self.adopted else release(entry)
        try:
            self.deps.ledger.write(after)
        except Exception as failure:  # noqa: BLE001 - the event is applied; the lease expires by itself
            log.warning(
                "could not update the previous email's ledger entry (%s); its lease expires "
                "and it is then treated as uncertain",
                type(failure).__name__,
            )

    def add_previous(self, previous: _Lease, change: OrderKey) -> None:
        self.previous = self.own.partner = previous
        self.change = change

    def record(self, entry: LedgerEntry, *, adopted: bool) -> None:
        """Write ``entry`` (the event applied, the own lease released). Raises what storage raises."""
        self.deps.ledger.write(entry)
        self.recorded = True
        self.adopted = adopted


@dataclass(frozen=True)
class _Recorded:
    """An event recorded as applied with no lease and no Commerce call: every group it writes was
    unchanged (``_record_unchanged``)."""

    account: str | None
    groups: frozenset[str] | None


_Acquired = LedgerEntry | Literal[Verdict.DUPLICATE, Verdict.STALE] | _Recorded | None


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
) -> _Acquired:
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


class _Previous(Enum):
    """Why the previous address's lease is not held for an email change."""

    BUSY = "busy"  # another worker holds it
    SUPERSEDED = "superseded"  # the old address has had newer events than the change


def _lease_previous(
    event: NormalisedEvent, held: LedgerEntry, change: OrderKey, deps: ProcessorDeps, owner: str
) -> _Lease | _Previous | None:
    """During an email change not applied yet (this event's own, or an earlier one still being
    retried, which a later event for the new address must adopt rather than create a second
    customer): the previous address's entry, leased too, so no other worker writes that customer
    meanwhile. ``BUSY`` when another worker holds it; ``SUPERSEDED`` when the change is stale there."""
    if not held.moved_from or (held.knows_customer and held.state is State.APPLIED):
        return None  # no change pending, or the new address has a confirmed customer of its own
    # The lease on the old entry is recorded as applying the change (not this event, which may be a
    # later one for the new address): if it may have written, the old entry is uncertain at the
    # change's key, and the check below keeps meaning "the old address had events since the change".
    old = _acquire(held.moved_from, event, deps, owner, force=True, pending=change, whole=True)
    if not isinstance(old, LedgerEntry):
        return _Previous.BUSY
    if old.last and old.last > change:
        # The old address has had newer events than the change: it is still in use there. A later
        # event for the new address does not take its customer over; the change itself is stale.
        _let_go(_Lease(old, deps), change, False, deps)
        return _Previous.SUPERSEDED if event.changes_email else None
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
    with _Held(lease, key, deps) as leases:
        previous = _lease_previous(event, held, change, deps, owner)
        if previous is _Previous.BUSY:
            return Outcome.DEFERRED, None
        if previous is _Previous.SUPERSEDED:
            # Undo the change's mark on the new address: it will not be applied.
            lease.entry = replace(held, moved_from=None, moved_from_at=None)
            log.info("email change superseded: the previous address has had newer events")
            return Outcome.STALE, None
        if previous is not None:
            leases.add_previous(previous, change)
        groups = held.lease.groups if held.lease else None  # None: the whole event (an email change)
        _narrowed(event, groups)
        applying = event if groups is None else restrict(event, groups)

        try:
            outcome, customer, account, hashes, adopted = sync_customer(
                applying, lease, previous.entry if previous else None, deps, force=envelope.force
            )
        except _NoBudget as short:
            # Nothing was sent for this write. A write sent before it in this attempt can only be the
            # PATCH that found no customer (404), so nothing of this event is in Commerce: released.
            log.warning("not writing to Commerce: %s; deferred", short)
            return Outcome.DEFERRED, None
        except Exception as error:
            leases.maybe_written = lease.wrote and classify_failure(error).may_have_committed
            raise
        # Written to Commerce (if at all) and not recorded yet: should recording fail, both entries say
        # uncertain, so the retry need not wait for the lease to expire (if storage is down, it expires
        # and says the same).
        leases.maybe_written = lease.wrote
        # An email change moves the entry: recorded at its key for every group (see ledger.applied).
        leases.record(
            applied(
                lease.entry,
                event,
                customer=customer,
                account_number=account,
                hashes=hashes,
                groups=groups,
                moved_at=key if event.changes_email else change if adopted else None,
            ),
            adopted=adopted,
        )
    return outcome, account


def _narrowed(event: NormalisedEvent, groups: frozenset[str] | None) -> None:
    if groups is not None and groups != carried_groups(event):
        log.info(
            "older than the last event applied: writing %s only, the rest was written by newer events",
            ", ".join(sorted(groups)) or "no group",
        )
