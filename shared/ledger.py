"""The per-email sync ledger: what the integration knows about one email's Commerce customer.

One record per email, keyed by the email hash (no personal data at rest). It remembers:
- the Commerce account number, whether it is an async (temporary) account, and the ``RecordId`` of the
  primary address and of the email and phone contacts, so that an update is one PATCH with no search;
- the ordering key (``occurredAt`` in UTC, then ``eventId``) of the last event applied, and the ids of
  the latest few, so that a redelivered or older event is skipped without calling Commerce;
- a hash per field group of what was last applied (``shared.fieldgroups``), so that unchanged data
  costs nothing and a change is one PATCH of just that group;
- the lease: which invocation may write to Commerce for this email, until when, and which event it is
  applying (``pending``), so that a worker that dies mid-write is noticed by the next one.

Everything here is pure: the transitions between states are functions from one ``LedgerEntry`` to the
next. ``shared.ledger_store`` reads and writes them (ETag-conditional); ``shared.processor`` decides
which transition applies. ``docs/ledger.md`` draws the state diagram.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Mapping

from shared.contract import NormalisedEvent
from shared.mapping import CONTACT_EMAIL, CONTACT_PHONE, primary

RECENT_EVENT_IDS = 16  # enough to tell "the same event again" from "an older event" in practice


class LedgerConflict(Exception):
    """Another writer changed (or created) the entry since it was read: read again, decide again."""


class State(str, Enum):
    NEW = "new"  # no event applied yet (a first writer holds the lease, or its first try failed)
    APPLIED = "applied"  # the last event was applied and Commerce confirmed it
    UNCERTAIN = "uncertain"  # the last write's outcome is unknown (timeout, 5xx, a worker died)
    MOVED = "moved"  # the email changed: the customer now lives under ``moved_to``


@dataclass(frozen=True, order=True)
class OrderKey:
    """Events of one email are applied in this order: when it happened, then the event id."""

    occurred_at: datetime
    event_id: str

    @classmethod
    def of(cls, event: NormalisedEvent) -> "OrderKey":
        return cls(event.occurred_at, event.event_id)


class Verdict(str, Enum):
    APPLY = "apply"
    DUPLICATE = "duplicate"  # this event id was applied already
    STALE = "stale"  # a newer event was applied (or may have been) already


@dataclass(frozen=True)
class Lease:
    owner: str
    until: datetime
    pending: OrderKey | None  # the event the owner is applying

    def live(self, now: datetime) -> bool:
        return now < self.until


@dataclass(frozen=True)
class LedgerEntry:
    email_hash: str
    state: State = State.NEW
    account_number: str | None = None
    is_async: bool = False
    address_record_id: str | None = None
    email_contact_record_id: str | None = None
    phone_contact_record_id: str | None = None
    last: OrderKey | None = None
    recent_event_ids: tuple[str, ...] = ()
    hashes: Mapping[str, str] = field(default_factory=dict)
    empty_fields: frozenset[str] = frozenset()
    lease: Lease | None = None
    moved_to: str | None = None
    # An email change into this address that has not been applied yet: the previous address's hash.
    # Until it is, a later event for this address adopts that customer instead of creating one.
    moved_from: str | None = None
    moved_from_at: OrderKey | None = None  # the change event's key
    etag: str | None = field(default=None, compare=False)  # as read; every write is conditional on it

    @property
    def knows_customer(self) -> bool:
        """An account to PATCH directly (not a tombstone, not a half-done first create)."""
        return bool(self.account_number) and self.state is not State.MOVED

    def leased_by_other(self, owner: str, now: datetime) -> bool:
        return self.lease is not None and self.lease.owner != owner and self.lease.live(now)


def judge(entry: LedgerEntry | None, event: NormalisedEvent, *, force: bool = False) -> Verdict:
    """Whether ``event`` still needs applying. Pure; call it on a ``settle``d entry."""
    if entry is None or entry.last is None or force:
        return Verdict.APPLY
    key = OrderKey.of(event)
    if key == entry.last:
        # The last event itself: done, unless its write may not have happened (retry it).
        return Verdict.APPLY if entry.state is State.UNCERTAIN else Verdict.DUPLICATE
    if event.event_id in entry.recent_event_ids:
        return Verdict.DUPLICATE
    if key < entry.last:
        return Verdict.STALE
    return Verdict.APPLY


def settle(entry: LedgerEntry, now: datetime) -> LedgerEntry:
    """Fold an expired lease into the entry. An expired lease with a pending event means its owner
    died or overran mid-write: that event may have reached Commerce, so it counts as the last one
    (older events are then stale, never written over it) and the write is marked uncertain."""
    lease = entry.lease
    if lease is None or lease.live(now):
        return entry
    if lease.pending is None:
        return replace(entry, lease=None)
    return uncertain(replace(entry, lease=None), lease.pending)


def expect_change(entry: LedgerEntry | None, email_hash: str, previous_hash: str, change: OrderKey,
                  now: datetime) -> LedgerEntry | None:
    """The new address's entry marked with an email change that ingest has just accepted, or None
    when no mark is needed (or must not be written now).

    The change and the sender's next events for the new address are usually queued moments apart
    and may be processed in either order. Marked at ingest, a later event for the new address that
    runs first adopts the previous address's customer instead of creating a second one."""
    if entry is None:
        return LedgerEntry(email_hash, moved_from=previous_hash, moved_from_at=change)
    if entry.lease is not None and entry.lease.live(now):
        return None  # its holder decides; writing now would only make the holder's own write conflict
    if (entry.knows_customer and entry.state is State.APPLIED) or (entry.last and entry.last >= change):
        return None  # a customer of its own, or a newer event already applied here
    if entry.moved_from_at and entry.moved_from_at >= change:
        return None
    return replace(entry, moved_from=previous_hash, moved_from_at=change)


def take_lease(entry: LedgerEntry, owner: str, now: datetime, seconds: float,
               pending: OrderKey, *, moved_from: str | None = None) -> LedgerEntry:
    """``moved_from``: the event (``pending``) changes the email from that address to this one.
    Recorded with the lease, so it outlives a failed attempt (see ``LedgerEntry.moved_from``)."""
    lease = Lease(owner, now + timedelta(seconds=seconds), pending)
    if moved_from:
        return replace(entry, lease=lease, moved_from=moved_from, moved_from_at=pending)
    return replace(entry, lease=lease)


def renew_lease(entry: LedgerEntry, now: datetime, seconds: float) -> LedgerEntry:
    assert entry.lease is not None
    return replace(entry, lease=replace(entry.lease, until=now + timedelta(seconds=seconds)))


def release(entry: LedgerEntry) -> LedgerEntry:
    """The write did not happen (Commerce refused it before committing, or the event was skipped)."""
    return replace(entry, lease=None)


def uncertain(entry: LedgerEntry, key: OrderKey) -> LedgerEntry:
    """The write for ``key`` may or may not have committed. What Commerce holds is unknown, so the
    hashes are dropped (the next writer reads the customer first) and ``key`` becomes the last event
    unless a newer one is already recorded (a forced replay of an older event)."""
    last = max(entry.last, key) if entry.last else key
    return replace(entry, lease=None, state=State.UNCERTAIN if last == key else entry.state,
                   last=last, hashes={})


def applied(entry: LedgerEntry, event: NormalisedEvent, *, customer: Mapping[str, Any] | None,
            account_number: str, hashes: Mapping[str, str]) -> LedgerEntry:
    """The event was applied (or found already true). ``customer`` is the document Commerce returned
    last (create, PATCH or GET response), the source of the record ids; None keeps the known ones."""
    key = OrderKey.of(event)
    recent = tuple(i for i in entry.recent_event_ids if i != event.event_id)
    recent = (recent + (event.event_id,))[-RECENT_EVENT_IDS:]
    learned = learn(customer) if customer is not None else {}
    last = max(entry.last, key) if entry.last else key  # a forced replay never moves it back
    return replace(entry, state=State.APPLIED, account_number=account_number, last=last,
                   recent_event_ids=recent, hashes=dict(hashes), lease=None, moved_to=None, moved_from=None,
                   moved_from_at=None, **learned)


def moved(entry: LedgerEntry, key: OrderKey, new_email_hash: str) -> LedgerEntry:
    """The customer of this (previous) email now has the new email, by the change event ``key``:
    keep a tombstone, so older events for the old address are stale instead of creating a second
    customer (later ones are a new customer's)."""
    last = max(entry.last, key) if entry.last else key
    return LedgerEntry(email_hash=entry.email_hash, state=State.MOVED, last=last,
                       recent_event_ids=entry.recent_event_ids, moved_to=new_email_hash, etag=entry.etag)


# Commerce properties whose emptiness the ledger remembers: a PATCH that changes one name part or
# one address part must send the composed Name / FullAddress, and that needs every other part.
NAME_PARTS = ("FirstName", "MiddleName", "LastName")
ADDRESS_PARTS = ("Street", "StreetNumber", "City", "State", "ZipCode")


def _record_id(item: Mapping[str, Any] | None) -> str | None:
    if item is None or item.get("RecordId") in (None, "", 0):
        return None
    return str(item["RecordId"])


def learn(customer: Mapping[str, Any]) -> dict[str, Any]:
    """What the ledger keeps of a Customer document: ids and which composed parts are empty."""
    address = primary(customer.get("Addresses"))
    contacts = customer.get("Contacts")
    empty = {p for p in NAME_PARTS if not customer.get(p)}
    if address is not None:
        empty |= {p for p in ADDRESS_PARTS if not address.get(p)}
    return dict(is_async=bool(customer.get("IsAsyncCustomer")),
                address_record_id=_record_id(address),
                email_contact_record_id=_record_id(primary(contacts, CONTACT_EMAIL)),
                phone_contact_record_id=_record_id(primary(contacts, CONTACT_PHONE)),
                empty_fields=frozenset(empty))
