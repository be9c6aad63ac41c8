"""Erasure: the forgotten tombstone keeps what ordering and duplicates need and nothing else, and
erase_customer removes one email's dead letters and poison copies (a pack loses only its events)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from shared.adapters.memory_ledger import MemoryLedger
from shared.core.ledger_rules import (
    ORDERED_GROUPS,
    LedgerEntry,
    OrderKey,
    State,
    Verdict,
    assess,
    forgotten,
    take_lease,
)
from shared.usecases.backfill import pack, unpack
from shared.usecases.erasure import ErasureBusy, ErasureDeps, erase_customer

T = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
ERASED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
H = "a" * 64


def event(event_id: str, at: datetime, **fields):
    present = tuple(fields)
    return SimpleNamespace(event_id=event_id, occurred_at=at, changes_email=False, has=lambda name: name in present)


def applied_entry() -> LedgerEntry:
    last = OrderKey(T, "evt-2")
    return LedgerEntry(
        H,
        state=State.APPLIED,
        account_number="C-1",
        address_record_id="5",
        email_contact_record_id="6",
        last=last,
        recent_event_ids=("evt-1", "evt-2"),
        group_keys=dict.fromkeys(ORDERED_GROUPS, last),
        hashes={"name": "x"},
        empty_fields=frozenset({"MiddleName"}),
        moved_from="b" * 64,
        etag="e1",
    )


def test_the_tombstone_keeps_only_the_ordering_key_and_the_recent_ids():
    tomb = forgotten(applied_entry(), H, ERASED)
    assert tomb.state is State.FORGOTTEN and tomb.last == OrderKey(ERASED, "")
    assert tomb.recent_event_ids == ("evt-1", "evt-2") and tomb.etag == "e1"
    assert tomb.group_keys == dict.fromkeys(ORDERED_GROUPS, OrderKey(ERASED, ""))
    assert (
        tomb.account_number,
        tomb.address_record_id,
        tomb.email_contact_record_id,
        tomb.hashes,
        tomb.empty_fields,
        tomb.moved_from,
        tomb.lease,
    ) == (None, None, None, {}, frozenset(), None, None)
    assert not tomb.knows_customer
    # No entry at all: a tombstone is written anyway, so late events still cannot create the customer.
    assert forgotten(None, H, ERASED).last == OrderKey(ERASED, "") and forgotten(None, H, ERASED).etag is None


def test_after_the_erasure_only_newer_events_apply():
    tomb = forgotten(applied_entry(), H, ERASED)
    assert assess(tomb, event("evt-2", T, firstName=1)).verdict is Verdict.DUPLICATE
    late = event("evt-3", T + timedelta(days=2), firstName=1, isOptedInMarketing=1)  # before the erasure
    assert assess(tomb, late).verdict is Verdict.STALE
    newer = assess(tomb, event("evt-4", ERASED + timedelta(seconds=1), firstName=1))
    assert newer.verdict is Verdict.APPLY and newer.groups == {"name"}


class Letters:
    def __init__(self, letters):
        self.letters = list(letters)

    def query(self, email_hash=None, **_):
        return [x for x in self.letters if x.email_hash == email_hash]

    def delete(self, letter):
        self.letters.remove(letter)
        return True


class Queue:
    def __init__(self, texts):
        self.messages = [
            SimpleNamespace(id=i, content=base64.b64encode(t.encode()).decode()) for i, t in enumerate(texts)
        ]
        self.released = 0

    def receive_messages(self, **_):
        return list(self.messages)

    def delete_message(self, message):
        self.messages.remove(message)

    def send_message(self, content, **_):
        self.messages.append(SimpleNamespace(id=len(self.messages) + 100, content=content))

    def update_message(self, message, visibility_timeout):
        self.released += 1

    def texts(self):
        return [base64.b64decode(m.content).decode() for m in self.messages]


def envelope(email_hash: str, event_id: str) -> str:
    return json.dumps({"v": 1, "event": {"eventId": event_id, "emailHash": email_hash}})


def deps(ledger, letters, queues):
    return ErasureDeps(ledger=ledger, deadletters=letters, poison_queues=queues, clock=lambda: ERASED)


def test_erase_customer_removes_this_email_only():
    ledger = MemoryLedger()
    stored = ledger.write(LedgerEntry(H, state=State.APPLIED, account_number="C-1", last=OrderKey(T, "evt-2")))
    other = "b" * 64
    letters = Letters([SimpleNamespace(email_hash=H), SimpleNamespace(email_hash=other)])
    poison = Queue([envelope(H, "e1"), envelope(other, "e2")])
    backfill = Queue([pack([envelope(H, "e3"), envelope(other, "e4")]), pack([envelope(H, "e5")])])
    report = erase_customer(H, deps(ledger, letters, [poison, backfill]))
    assert report.summary() == {
        "emailHash": H,
        "ledger": "forgotten",
        "deadLetters": 1,
        "poisonMessages": 3,
        "senderRecords": 0,
    }
    assert report.account_number == "C-1" and stored.etag is not None
    assert ledger.read(H).state is State.FORGOTTEN
    assert [x.email_hash for x in letters.letters] == [other]
    assert poison.texts() == [envelope(other, "e2")] and poison.released == 1
    [rest] = backfill.texts()  # the pack lost only this email's event
    assert [json.loads(e)["event"]["eventId"] for e in unpack(rest)] == ["e4"]
    # Again: nothing left to remove, the tombstone stays.
    assert erase_customer(H, deps(ledger, letters, [poison])).summary()["ledger"] == "again"


def test_a_live_lease_stops_the_erasure_before_anything_is_deleted():
    ledger = MemoryLedger()
    ledger.write(take_lease(LedgerEntry(H), "worker", ERASED - timedelta(seconds=5), 60, OrderKey(T, "evt-9")))
    letters = Letters([SimpleNamespace(email_hash=H)])
    with pytest.raises(ErasureBusy) as busy:
        erase_customer(H, deps(ledger, letters, []))
    assert 50 <= busy.value.retry_after <= 60 and len(letters.letters) == 1
    assert ledger.read(H).state is State.NEW


def test_an_expired_lease_counts_its_pending_event_as_possibly_applied():
    ledger = MemoryLedger()
    pending = OrderKey(ERASED + timedelta(hours=1), "evt-future")  # a clock ahead of ours
    ledger.write(take_lease(LedgerEntry(H), "dead", ERASED - timedelta(hours=1), 60, pending))
    erase_customer(H, deps(ledger, Letters([]), []))
    assert ledger.read(H).last == pending


def test_erasure_forgets_the_senders_records_by_hash_never_by_address():
    class Senders:
        def __init__(self):
            self.asked: list[str] = []

        def forget_email(self, email_hash: str) -> int:
            self.asked.append(email_hash)
            return 2

    senders = Senders()
    report = erase_customer(
        H,
        ErasureDeps(
            ledger=MemoryLedger(), deadletters=Letters([]), poison_queues=[], clock=lambda: ERASED, senders=senders
        ),
    )
    assert senders.asked == [H] and report.summary()["senderRecords"] == 2


class ResentLedger(MemoryLedger):
    """The first ``lost`` writes commit, but their answer is lost (a kept-alive connection dropped): the
    resend on a new connection finds the new ETag and fails as a conflict."""

    def __init__(self, lost: int = 1):
        super().__init__()
        self.lost = lost

    def write(self, entry):
        stored = super().write(entry)
        if self.lost:
            self.lost -= 1
            from shared.core.ledger_rules import LedgerConflict

            raise LedgerConflict("ResourceModifiedError")
        return stored


def test_a_tombstone_whose_answer_was_lost_still_reports_the_account_and_what_was_done():
    ledger = ResentLedger()
    MemoryLedger.write(ledger, LedgerEntry(H, state=State.APPLIED, account_number="C-1", last=OrderKey(T, "evt-2")))
    report = erase_customer(H, deps(ledger, Letters([]), []))
    # The retry re-reads its own tombstone; the report still names the account headquarters must erase.
    assert (report.ledger, report.account_number) == ("forgotten", "C-1")
    assert ledger.read(H).state is State.FORGOTTEN and ledger.read(H).account_number is None
    # No entry before: the first attempt inserted the tombstone.
    ledger = ResentLedger()
    report = erase_customer(H, deps(ledger, Letters([]), []))
    assert (report.ledger, report.account_number) == ("tombstone", None)


def test_an_entry_written_between_two_tries_is_the_one_reported():
    class Racing(MemoryLedger):
        """A worker records a new account just before the erasure's first write lands."""

        raced = False

        def write(self, entry):
            if not self.raced:
                self.raced = True
                current = self.read(entry.email_hash)
                MemoryLedger.write(
                    self,
                    LedgerEntry(
                        H, state=State.APPLIED, account_number="C-2", last=OrderKey(T, "evt-3"), etag=current.etag
                    ),
                )
            return super().write(entry)

    ledger = Racing()
    MemoryLedger.write(ledger, LedgerEntry(H, state=State.APPLIED, account_number="C-1", last=OrderKey(T, "evt-2")))
    report = erase_customer(H, deps(ledger, Letters([]), []))
    assert (report.ledger, report.account_number) == ("forgotten", "C-2")
