"""Dead letters: events that could not be applied, kept with their reason for inspection and replay.

One Azure Table, PartitionKey = the keyed email hash (so an operator finds every failure of one
customer without knowing the email), RowKey = the event id (escaped: table keys forbid ``/\\#?``).
The stored envelope is the queue message as it was, so a replay re-queues exactly what failed; it is
the one column holding personal data. The message is masked (``safe_message``) on the way in and out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterator
from urllib.parse import quote, unquote

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.privacy import mask_free_text, sensitive_values_from_envelope

UNKNOWN_PARTITION = "unknown"  # messages too broken to tell whose they are


@dataclass(frozen=True)
class DeadLetter:
    email_hash: str
    event_id: str
    reason: str
    message: str
    error_resource_id: str | None
    status: int | None
    attempts: int
    first_seen_at: datetime | None
    dead_lettered_at: datetime
    envelope: str  # the queue message body (JSON text), as received
    etag: str | None = field(default=None, compare=False)  # as read; guards delete against a newer write

    @property
    def key(self) -> tuple[str, str]:
        return self.email_hash, self.event_id


def _row_key(event_id: str) -> str:
    key = quote(event_id, safe="")
    # Table keys are at most 1 KiB; a long non-ASCII id grows 12x when escaped. Such ids are keyed
    # by their hash instead (the EventId property keeps the id itself for queries).
    return key if len(key) <= 512 else "sha256-" + hashlib.sha256(event_id.encode("utf-8")).hexdigest()


class DeadLetterStore:
    def __init__(self, table: TableClient):
        self.table = table

    def put(self, letter: DeadLetter) -> None:
        """Insert or replace: the same event dead-lettered twice keeps its latest reason."""
        self.table.upsert_entity({
            "PartitionKey": letter.email_hash or UNKNOWN_PARTITION,
            "RowKey": _row_key(letter.event_id),
            "EventId": letter.event_id,
            "Reason": letter.reason,
            "Message": safe_message(letter),
            "ErrorResourceId": letter.error_resource_id or "",
            "Status": letter.status or 0,
            "Attempts": letter.attempts,
            "FirstSeenAt": letter.first_seen_at or letter.dead_lettered_at,
            "DeadLetteredAt": letter.dead_lettered_at,
            "Envelope": letter.envelope,
        }, mode=UpdateMode.REPLACE)

    def get(self, email_hash: str, event_id: str) -> DeadLetter | None:
        try:
            return _from_entity(self.table.get_entity(email_hash, _row_key(event_id)))
        except ResourceNotFoundError:
            return None

    def delete(self, letter: DeadLetter) -> bool:
        """Delete the dead letter as it was read. False when it was replaced since (the event failed
        again and a newer dead letter took its place: that one must stay)."""
        kwargs = {}
        if letter.etag:
            kwargs = {"etag": letter.etag, "match_condition": MatchConditions.IfNotModified}
        try:
            self.table.delete_entity(letter.email_hash or UNKNOWN_PARTITION, _row_key(letter.event_id),
                                     **kwargs)
        except ResourceModifiedError:
            return False
        return True

    def query(self, *, reason: str | None = None, email_hash: str | None = None,
              event_id: str | None = None, since: datetime | None = None,
              until: datetime | None = None) -> Iterator[DeadLetter]:
        exact_hash = email_hash if email_hash and len(email_hash) >= 64 else None
        prefix = email_hash if email_hash and len(email_hash) < 64 else None
        prefix_end = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else None
        filters = (("PartitionKey eq @pk", "pk", exact_hash),
                   # A displayed hash is shortened: a prefix selects the partitions it starts.
                   ("PartitionKey ge @pk_from", "pk_from", prefix),
                   ("PartitionKey lt @pk_to", "pk_to", prefix_end),
                   ("EventId eq @eid", "eid", event_id),
                   ("Reason eq @reason", "reason", reason), ("DeadLetteredAt ge @since", "since", since),
                   ("DeadLetteredAt lt @until", "until", until))
        clauses = [clause for clause, _, value in filters if value]
        params = {name: value for _, name, value in filters if value}
        entities = (self.table.query_entities(" and ".join(clauses), parameters=params)
                    if clauses else self.table.list_entities())
        for entity in entities:
            yield _from_entity(entity)

    def purge_older_than(self, days: int, now: datetime | None = None) -> int:
        cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=days)
        removed = 0
        for letter in self.query(until=cutoff):
            self.delete(letter)
            removed += 1
        return removed

    def count(self) -> int:
        return sum(1 for _ in self.table.list_entities(select=["PartitionKey"]))


def _from_entity(e: dict) -> DeadLetter:
    return DeadLetter(
        email_hash=e["PartitionKey"],
        event_id=e.get("EventId") or unquote(e["RowKey"]),
        reason=e.get("Reason", ""),
        message=e.get("Message", ""),
        error_resource_id=e.get("ErrorResourceId") or None,
        status=e.get("Status") or None,
        attempts=int(e.get("Attempts", 0)),
        first_seen_at=e.get("FirstSeenAt"),
        dead_lettered_at=e.get("DeadLetteredAt"),
        envelope=e.get("Envelope", ""),
        etag=getattr(e, "metadata", {}).get("etag"),
    )


def safe_message(letter: DeadLetter) -> str:
    """The dead letter's message masked of personal data: the generic patterns and every value its own
    event carries (the message may quote what Commerce was sent). Applied when the letter is stored and
    again when it is shown, so letters stored by older versions are masked too."""
    return mask_free_text(letter.message or "", sensitive_values_from_envelope(letter.envelope))


def describe(letter: DeadLetter) -> dict:
    """A JSON-friendly view for the replay command's listing (no envelope: it holds personal data)."""
    return {
        "emailHash": letter.email_hash, "eventId": letter.event_id, "reason": letter.reason,
        "errorResourceId": letter.error_resource_id, "status": letter.status,
        "message": safe_message(letter), "attempts": letter.attempts,
        "deadLetteredAt": letter.dead_lettered_at.isoformat() if letter.dead_lettered_at else None,
    }
