"""The per-email sync ledger: what the integration knows about one email's Commerce customer.

One record per email, keyed by the email hash (no personal data at rest). It remembers:
- the Commerce account number, whether it is an async (temporary) account, and the ``RecordId`` of the
  primary address and of the email and phone contacts, so that an update is one PATCH with no search;
- the ordering key (``occurredAt`` in UTC, then ``eventId``) of the last event applied, and the ids of
  the latest few, so that a redelivered event is skipped without calling Commerce;
- per field group, the ordering key of the last event applied that carried it, so that an older event
  still applies the groups nobody has written since and skips only those a newer event wrote;
- a hash per field group of what was last applied (``shared.core.commerce_bodies.groups``), so that unchanged data
  costs nothing and a change is one PATCH of just that group;
- the lease: which invocation may write to Commerce for this email, until when, and which event it is
  applying (``pending``), so that a worker that dies mid-write is noticed by the next one.

Everything here is pure: the transitions between states are functions from one ``LedgerEntry`` to the
next. ``shared.adapters.ledger_table`` reads and writes them (ETag-conditional); ``shared.usecases.processor`` decides
which transition applies. ``docs/ledger.md`` draws the state diagram.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Protocol

from shared.core import fields
from shared.core.commerce_bodies.create import CONTACT_EMAIL, CONTACT_PHONE, NAME_PARTS, primary
from shared.core.contract import NormalisedEvent

RECENT_EVENT_IDS = 16  # enough to tell "the same event again" from "an older event" in practice

# The contract's fields by the group Commerce stores them in (``shared.core.commerce_bodies.groups`` hashes them and
# builds their PATCH), from each field's ``group`` in shared.core.fields. Every event carries ``email``:
# it names the entry, so it is not ordered on its own; each other group is (``ORDERED_GROUPS``).
GROUPS: Mapping[str, tuple[str, ...]] = fields.GROUPS
ORDERED_GROUPS: tuple[str, ...] = tuple(g for g in GROUPS if g != "email")


class LedgerConflict(Exception):
    """Another writer changed (or created) the entry since it was read: read again, decide again."""


class State(str, Enum):
    NEW = "new"  # no event applied yet (a first writer holds the lease, or its first try failed)
    APPLIED = "applied"  # the last event was applied and Commerce confirmed it
    UNCERTAIN = "uncertain"  # the last write's outcome is unknown (timeout, 5xx, a worker died)
    MOVED = "moved"  # the email changed: the customer now lives under ``moved_to``
    FORGOTTEN = "forgotten"  # erased (``shared.usecases.erasure``): only what ordering and duplicates need is kept


@dataclass(frozen=True, order=True)
class OrderKey:
    """Events of one email are applied in this order: when it happened, then the event id."""

    occurred_at: datetime
    event_id: str

    @classmethod
    def of(cls, event: NormalisedEvent) -> OrderKey:
        return cls(event.occurred_at, event.event_id)


def carried_groups(event: NormalisedEvent) -> frozenset[str]:
    """The ordered groups ``event`` carries (at least one of their fields present, null included)."""
    return frozenset(g for g in ORDERED_GROUPS if any(event.has(f) for f in GROUPS[g]))


class Verdict(str, Enum):
    APPLY = "apply"
    DUPLICATE = "duplicate"  # this event id was applied already
    STALE = "stale"  # a newer event was applied (or may have been) already


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    # APPLY: the ordered groups to write; the event's other groups were written by a newer event
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Lease:
    owner: str
    until: datetime
    pending: OrderKey | None  # the event the owner is applying
    # The groups that event writes (its write counts for them if it may have committed). None: every
    # group (an email change, the previous address's lease, or a lease written before groups were kept).
    groups: frozenset[str] | None = None

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
    # Per ordered group, the key of the last event applied (or possibly applied) that carried it. None:
    # an entry written before groups were ordered on their own, read as every group at ``last``.
    group_keys: Mapping[str, OrderKey] | None = None
    # Groups whose write at their ``group_keys`` key may or may not have committed: that event, and only
    # that one, applies them again (read first). Read as every group for an old ``uncertain`` entry.
    uncertain_groups: frozenset[str] = frozenset()
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

    def keys(self) -> dict[str, OrderKey]:
        """``group_keys``, an entry written before them read as every group at ``last``."""
        if self.group_keys is None:
            return dict.fromkeys(ORDERED_GROUPS, self.last) if self.last else {}
        return dict(self.group_keys)

    def unsure(self) -> frozenset[str]:
        """``uncertain_groups``, an old ``uncertain`` entry read as every group uncertain at ``last``."""
        if self.group_keys is None:
            return frozenset(ORDERED_GROUPS) if self.state is State.UNCERTAIN and self.last else frozenset()
        return self.uncertain_groups


def _fresh(entry: LedgerEntry, key: OrderKey, groups: frozenset[str]) -> frozenset[str]:
    """Of ``groups``, those no newer event has written: never written, written by an older event, or
    written by this very event with an outcome unknown (its retry)."""
    keys, unsure = entry.keys(), entry.unsure()
    return frozenset(g for g in groups if keys.get(g) is None or key > keys[g] or (key == keys[g] and g in unsure))


def assess(entry: LedgerEntry | None, event: NormalisedEvent, *, force: bool = False) -> Judgement:
    """Whether ``event`` still needs applying, and for which groups. Pure; call it on a ``settle``d entry.

    Duplicates are found by event id. Ordering is per group: an event older than the last one applied
    still applies the groups no newer event has written (and is ``stale`` only when there are none).
    An email change is ordered as a whole: it moves the entry, so it is ``stale`` when older."""
    carried = carried_groups(event)
    if entry is None or entry.last is None or force:
        return Judgement(Verdict.APPLY, carried)
    key = OrderKey.of(event)
    if key == entry.last:
        # The last event itself: done, unless its write may not have happened (retry it).
        if entry.state is State.UNCERTAIN or _fresh(entry, key, carried):
            return Judgement(Verdict.APPLY, _fresh(entry, key, carried))
        return Judgement(Verdict.DUPLICATE)
    if event.event_id in entry.recent_event_ids:
        return Judgement(Verdict.DUPLICATE)
    if key > entry.last:
        return Judgement(Verdict.APPLY, carried)
    fresh = _fresh(entry, key, carried)
    if event.changes_email or not fresh:
        return Judgement(Verdict.STALE)
    return Judgement(Verdict.APPLY, fresh)


def judge(entry: LedgerEntry | None, event: NormalisedEvent, *, force: bool = False) -> Verdict:
    """``assess`` without the groups."""
    return assess(entry, event, force=force).verdict


def settle(entry: LedgerEntry, now: datetime) -> LedgerEntry:
    """Fold an expired lease into the entry. An expired lease with a pending event means its owner
    died or overran mid-write: that event may have reached Commerce, so it counts as the last one
    (older events are then stale, never written over it) and the write is marked uncertain."""
    lease = entry.lease
    if lease is None or lease.live(now):
        return entry
    if lease.pending is None:
        return replace(entry, lease=None)
    return uncertain(replace(entry, lease=None), lease.pending, lease.groups)


def expect_change(
    entry: LedgerEntry | None, email_hash: str, previous_hash: str, change: OrderKey, now: datetime
) -> LedgerEntry | None:
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


def take_lease(
    entry: LedgerEntry,
    owner: str,
    now: datetime,
    seconds: float,
    pending: OrderKey,
    *,
    moved_from: str | None = None,
    groups: frozenset[str] | None = None,
) -> LedgerEntry:
    """``moved_from``: the event (``pending``) changes the email from that address to this one.
    Recorded with the lease, so it outlives a failed attempt (see ``LedgerEntry.moved_from``).
    ``groups``: the groups the pending event writes (None: every group)."""
    lease = Lease(owner, now + timedelta(seconds=seconds), pending, groups)
    if moved_from:
        return replace(entry, lease=lease, moved_from=moved_from, moved_from_at=pending)
    return replace(entry, lease=lease)


def renew_lease(entry: LedgerEntry, now: datetime, seconds: float) -> LedgerEntry:
    assert entry.lease is not None
    return replace(entry, lease=replace(entry.lease, until=now + timedelta(seconds=seconds)))


def release(entry: LedgerEntry) -> LedgerEntry:
    """The write did not happen (Commerce refused it before committing, or the event was skipped)."""
    return replace(entry, lease=None)


def uncertain(entry: LedgerEntry, key: OrderKey, groups: frozenset[str] | None = None) -> LedgerEntry:
    """The write for ``key`` (of ``groups``; None: every group) may or may not have committed. What
    Commerce holds is unknown, so the hashes are dropped (the next writer reads the customer first).
    The write counts as applied for its groups: ``key`` becomes their key, marked uncertain (so only
    that event applies them again), unless a newer one is recorded; likewise ``key`` becomes the last
    event unless a newer one is recorded (an older event's fresh groups, or a forced replay)."""
    keys, unsure = entry.keys(), set(entry.unsure())
    for group in ORDERED_GROUPS if groups is None else groups:
        if keys.get(group) is None or key >= keys[group]:
            keys[group] = key
            unsure.add(group)
    last = max(entry.last, key) if entry.last else key
    return replace(
        entry,
        lease=None,
        state=State.UNCERTAIN if last == key else entry.state,
        last=last,
        hashes={},
        group_keys=keys,
        uncertain_groups=frozenset(unsure),
    )


def applied(
    entry: LedgerEntry,
    event: NormalisedEvent,
    *,
    customer: Mapping[str, Any] | None,
    account_number: str,
    hashes: Mapping[str, str],
    groups: frozenset[str] | None = None,
    moved_at: OrderKey | None = None,
) -> LedgerEntry:
    """The event was applied (or found already true). ``customer`` is the document Commerce returned
    last (create, PATCH or GET response), the source of the record ids; None keeps the known ones.
    ``groups``: the groups it wrote (None: every group it carries); each gets its key unless a newer
    one is recorded (a forced replay). ``moved_at``: the key of an email change this event applied
    (its own, or one it took the customer over for): the change moves the entry, so every group is
    recorded at that key at least and older events of this address are stale in every group."""
    key = OrderKey.of(event)
    recent = tuple(i for i in entry.recent_event_ids if i != event.event_id)
    recent = (recent + (event.event_id,))[-RECENT_EVENT_IDS:]
    learned = learn(customer) if customer is not None else {}
    keys, unsure = entry.keys(), set(entry.unsure())
    for group, at in [(g, key) for g in (carried_groups(event) if groups is None else groups)] + [
        (g, moved_at) for g in ORDERED_GROUPS if moved_at is not None
    ]:
        if keys.get(group) is None or at >= keys[group]:
            keys[group] = at
            unsure.discard(group)
    last = max(entry.last, key) if entry.last else key  # a forced replay never moves it back
    # An older event applied while the last one's write is still unknown leaves the entry uncertain.
    still_uncertain = entry.state is State.UNCERTAIN and last != key
    return replace(
        entry,
        state=State.UNCERTAIN if still_uncertain else State.APPLIED,
        account_number=account_number,
        last=last,
        recent_event_ids=recent,
        hashes={} if still_uncertain else dict(hashes),
        group_keys=keys,
        uncertain_groups=frozenset(unsure),
        lease=None,
        moved_to=None,
        moved_from=None,
        moved_from_at=None,
        **learned,
    )


def moved(entry: LedgerEntry, key: OrderKey, new_email_hash: str) -> LedgerEntry:
    """The customer of this (previous) email now has the new email, by the change event ``key``:
    keep a tombstone, so older events for the old address are stale instead of creating a second
    customer (later ones are a new customer's)."""
    last = max(entry.last, key) if entry.last else key
    return LedgerEntry(
        email_hash=entry.email_hash,
        state=State.MOVED,
        last=last,
        recent_event_ids=entry.recent_event_ids,
        group_keys=dict.fromkeys(ORDERED_GROUPS, last),
        moved_to=new_email_hash,
        etag=entry.etag,
    )


def forgotten(entry: LedgerEntry | None, email_hash: str, erased_at: datetime) -> LedgerEntry:
    """The email's entry after an erasure (``shared.usecases.erasure``): a tombstone that keeps what the
    ordering and duplicate rules need and nothing else. ``Last*`` becomes the later of the last event
    and the erasure itself, every group is at that key and ``RecentEventIds`` stay, so an event that
    happened before the erasure (a late delivery, a redelivery, a replay) is ``stale`` or ``duplicate``
    and cannot bring the erased data back; a newer one is applied as for an email seen for the first
    time (found by search, or created). Account, record ids, hashes, lease and email-change links go.
    Call it on a ``settle``d entry (an expired lease's pending event then counts as possibly applied)."""
    erased = OrderKey(erased_at, "")
    last = max(entry.last, erased) if entry is not None and entry.last else erased
    return LedgerEntry(
        email_hash=email_hash,
        state=State.FORGOTTEN,
        last=last,
        recent_event_ids=entry.recent_event_ids if entry is not None else (),
        group_keys=dict.fromkeys(ORDERED_GROUPS, last),
        etag=entry.etag if entry is not None else None,
    )


# Commerce properties whose emptiness the ledger remembers: a PATCH that changes one name part or
# one address part must send the composed Name / FullAddress, and that needs every other part; a
# phone without an extension clears PhoneExt only when one may be there. (NAME_PARTS: the name group's
# Customer properties, from shared.core.fields.)
ADDRESS_PARTS = ("Street", "StreetNumber", "City", "State", "ZipCode")


def _record_id(item: Mapping[str, Any] | None) -> str | None:
    if item is None or item.get("RecordId") in (None, "", 0):
        return None
    return str(item["RecordId"])


def learn(customer: Mapping[str, Any]) -> dict[str, Any]:
    """What the ledger keeps of a Customer document: ids and which composed parts are empty."""
    address = primary(customer.get("Addresses"))
    contacts = customer.get("Contacts")
    empty = {p for p in (*NAME_PARTS, "PhoneExt") if not customer.get(p)}
    if address is not None:
        empty |= {p for p in ADDRESS_PARTS if not address.get(p)}
    return dict(
        is_async=bool(customer.get("IsAsyncCustomer")),
        address_record_id=_record_id(address),
        email_contact_record_id=_record_id(primary(contacts, CONTACT_EMAIL)),
        phone_contact_record_id=_record_id(primary(contacts, CONTACT_PHONE)),
        empty_fields=frozenset(empty),
    )


class LedgerPort(Protocol):
    """What the use cases need of the ledger's store: read an entry, write it conditionally on the
    ETag it was read with (raising ``LedgerConflict`` when another writer got there first)."""

    def read(self, email_hash: str) -> LedgerEntry | None: ...
    def write(self, entry: LedgerEntry) -> LedgerEntry: ...
