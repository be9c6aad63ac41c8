"""Erasure of one email's data held by the integration: the operator's ``tools.customer --forget`` and a
sender's erasure request (Shopify ``customers/redact``) both call ``erase_customer``.

What it does, in this order:
1. the email's ledger entry becomes a ``forgotten`` tombstone (``shared.core.ledger_rules.forgotten``): it keeps
   the ordering key (the later of the last event and the erasure) and the recent event ids, and drops
   the account, record ids, hashes and email-change links. An event from before the erasure that
   arrives later is then ``stale`` (or ``duplicate``) and cannot bring the data back;
2. its dead letters are deleted (they hold the event as sent: the one place with personal data at rest);
3. its copies in the poison queues (``<queue>-poison``, the backfill's, and their own poison queues) are
   deleted; a packed backfill message loses only this email's events;
4. when given the email itself, a webhook sender's record of it (the sender-id table) is deleted.

It is logged, and reported as the ``CustomerErased`` event, by email hash only. The Commerce customer
is not touched: erasing it is headquarters' process (the report names its account number, once, to the
caller). Events still waiting in the live or backfill queue are judged against the tombstone when
their turn comes: stale if they happened before the erasure.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from shared.core.envelope import peek_identity
from shared.core.ledger_rules import LedgerConflict, LedgerPort, State, forgotten, settle

if TYPE_CHECKING:  # adapters are injected; only their types are named here
    from azure.storage.queue import QueueClient, QueueMessage

    from shared.adapters.dead_letter_table import DeadLetterStore
    from shared.adapters.telemetry import Telemetry


log = logging.getLogger("customer_sync.erasure")

CONFLICT_RETRIES = 5
MAX_SCANNED_PER_QUEUE = 10_000  # a poison queue is small; this bounds one erasure's work


class ErasureBusy(Exception):
    """A worker holds the email's lease right now (it is writing to Commerce): try again after
    ``retry_after`` seconds. Nothing was changed."""

    def __init__(self, retry_after: float):
        super().__init__(f"the email's ledger lease is held for {retry_after:.0f} s more")
        self.retry_after = retry_after


class SenderRecords(Protocol):
    """The webhook senders' id records (``shared.adapters.sender_tables.SenderIdentityStore``)."""

    def forget_email(self, email_hash: str) -> int: ...


@dataclass
class ErasureDeps:
    ledger: LedgerPort  # shared.adapters.ledger_table.LedgerStore
    deadletters: DeadLetterStore
    poison_queues: list[QueueClient]  # raw: no decode policy
    clock: Callable[[], datetime]
    telemetry: Telemetry | None = None  # for the CustomerErased event
    senders: SenderRecords | None = None  # None: the app keeps none


@dataclass(frozen=True)
class ErasureReport:
    email_hash: str
    ledger: str  # "forgotten" (an entry was turned into a tombstone), "tombstone" (a new one), "again"
    account_number: str | None  # the Commerce account the entry knew, for erasure in headquarters
    dead_letters: int
    poison_messages: int
    sender_records: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, str | int]:
        return {
            "emailHash": self.email_hash,
            "ledger": self.ledger,
            "deadLetters": self.dead_letters,
            "poisonMessages": self.poison_messages,
            "senderRecords": self.sender_records,
        }


def erase_customer(email_hash: str, deps: ErasureDeps) -> ErasureReport:
    """Erase what the integration holds for the email with this hash (``shared.core.privacy.email_hash`` of
    its match key), the webhook senders' records of it included. Raises ``ErasureBusy`` when a worker
    holds the email's lease, before anything is deleted; storage errors are raised as they are (the
    erasure can be run again: every step is idempotent)."""
    ledger_state, account = _tombstone(email_hash, deps)
    letters = _delete_dead_letters(email_hash, deps.deadletters)
    poison = sum(_purge_queue(queue, email_hash) for queue in deps.poison_queues)
    # By the hash column: a query by the address would put it in the request URL, which HTTP logs keep.
    senders = deps.senders.forget_email(email_hash) if deps.senders is not None else 0
    report = ErasureReport(email_hash, ledger_state, account, letters, poison, senders)
    log.warning(
        "erased the data held for email %s: ledger %s, %d dead letter(s), %d poison message(s), %d sender record(s)",
        email_hash,
        ledger_state,
        letters,
        poison,
        senders,
    )
    if deps.telemetry is not None:
        from shared.core import telemetry_names as names

        deps.telemetry.custom_event(
            names.EVENT_CUSTOMER_ERASED,
            "customer data erased",
            logging.WARNING,
            email_hash=email_hash,
            ledger=ledger_state,
            dead_letters=letters,
            poison_messages=poison,
            sender_records=senders,
        )
    return report


def _tombstone(email_hash: str, deps: ErasureDeps) -> tuple[str, str | None]:
    """What the ledger held (``ErasureReport.ledger``) and the Commerce account it knew.

    Both are taken from every read, not only the last: a conflict may be this erasure's own write,
    committed but answered on a connection that dropped (the resend then fails on the new ETag). The
    re-read finds its own tombstone, which knows no account and looks like an erasure done "again".
    So the account is the latest one any read knew, and "again" only when no read saw anything else."""
    state, account = "again", None
    for _ in range(CONFLICT_RETRIES):
        now = deps.clock()
        read = deps.ledger.read(email_hash)
        entry = settle(read, now) if read is not None else None
        if entry is not None and entry.lease is not None and entry.lease.live(now):
            raise ErasureBusy((entry.lease.until - now).total_seconds())
        seen = "tombstone" if entry is None else "again" if entry.state is State.FORGOTTEN else "forgotten"
        if seen != "again":
            state = seen
        if entry is not None and entry.knows_customer:
            account = entry.account_number
        try:
            deps.ledger.write(forgotten(entry, email_hash, now))
            return state, account
        except LedgerConflict:
            continue  # a worker wrote meanwhile, or our own write committed: read it again
    raise LedgerConflict("the email's ledger entry kept changing during the erasure")


def _delete_dead_letters(email_hash: str, store: DeadLetterStore) -> int:
    removed = 0
    for _ in range(CONFLICT_RETRIES):
        letters = list(store.query(email_hash=email_hash))
        if not letters:
            break
        for letter in letters:
            removed += 1 if store.delete(letter) else 0  # replaced meanwhile: the next round sees it
    return removed


def _decode(content: Any) -> str | None:
    if isinstance(content, bytes):
        content = content.decode("ascii", "replace")
    try:
        return base64.b64decode(content, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return content if isinstance(content, str) else None


def _matches(text: str, email_hash: str) -> bool:
    return peek_identity(text)[1] == email_hash


def _without(text: str, email_hash: str) -> tuple[int, str | None]:
    """For a packed backfill message: how many of its events are this email's, and the message
    without them (None when nothing is left)."""
    from shared.usecases.backfill import pack, unpack

    envelopes = unpack(text)
    if envelopes is None:
        return (1, None) if _matches(text, email_hash) else (0, text)
    kept = [e for e in envelopes if not _matches(e, email_hash)]
    return len(envelopes) - len(kept), pack(kept) if kept else None


def _purge_queue(queue: QueueClient, email_hash: str) -> int:
    """Delete this email's messages from one (poison) queue; every other message is made visible again."""
    from azure.core.exceptions import ResourceNotFoundError

    removed = 0
    others: list[QueueMessage] = []  # kept invisible until the scan ends, so none is received twice
    try:
        messages: Iterable[QueueMessage] = queue.receive_messages(messages_per_page=32, visibility_timeout=120)
        for message in messages:
            text = _decode(message.content)
            count, rest = _without(text, email_hash) if text is not None else (0, None)
            if count:
                if rest is not None:
                    queue.send_message(base64.b64encode(rest.encode("utf-8")).decode("ascii"), time_to_live=-1)
                queue.delete_message(message)
                removed += count
            else:
                others.append(message)
            if len(others) + removed >= MAX_SCANNED_PER_QUEUE:
                log.warning("erasure: stopped after %d messages of one queue", MAX_SCANNED_PER_QUEUE)
                break
    except ResourceNotFoundError:
        return removed  # a queue that was never created holds nothing
    finally:
        for message in others:
            try:
                queue.update_message(message, visibility_timeout=0)
            except Exception:  # noqa: BLE001 - it becomes visible again by itself
                pass
    return removed


def describe_json(report: ErasureReport) -> str:
    return json.dumps(report.summary())
