"""Dead letters: events that could not be applied, kept with their reason for inspection and replay.

One Azure Table, PartitionKey = the keyed email hash (so an operator finds every failure of one
customer without knowing the email), RowKey = the event id (escaped: table keys forbid ``/\\#?``).
The stored envelope is the queue message as it was, so a replay re-queues exactly what failed; it is
the one column holding personal data. The message is masked (``safe_message``) on the way in and out.

A table string property holds at most 32K UTF-16 code units (64 KiB), and a queue message that no
trigger could read (not base64) may be up to 64K characters. So an envelope over ``ENVELOPE_PART``
units is split, not truncated: ``Envelope`` holds the first part, ``Envelope2``... the rest,
``EnvelopeParts`` their count and ``EnvelopeSha256`` the digest of the whole, and reading joins them.
Only beyond ``MAX_ENVELOPE_PARTS`` (more than any queue message needs) is the rest dropped; the digest
is still the whole envelope's, so a shortened one can be told from the original.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.core.dead_letters import UNKNOWN_PARTITION, DeadLetter, safe_message

ENVELOPE_PART = 32_000  # UTF-16 code units per envelope column, under the 32,768 a property may hold
MAX_ENVELOPE_PARTS = 4  # 128,000 units: twice a queue message's 64K, well under the 1 MiB entity


def _row_key(event_id: str) -> str:
    # surrogatepass: an id with a lone surrogate still has a key (quote() would raise, every time).
    key = quote(event_id, safe="", errors="surrogatepass")
    # Table keys are at most 1 KiB; a long non-ASCII id grows 12x when escaped. Such ids are keyed
    # by their hash instead (the EventId property keeps the id itself for queries).
    return key if len(key) <= 512 else "sha256-" + hashlib.sha256(_utf8(event_id)).hexdigest()


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _split_envelope(envelope: str) -> list[str]:
    """The envelope in parts of at most ENVELOPE_PART UTF-16 code units (a character beyond the BMP
    takes two and is never cut in half); at most MAX_ENVELOPE_PARTS of them."""
    if len(envelope) <= ENVELOPE_PART // 2:  # even all astral, it fits
        return [envelope]
    parts: list[str] = []
    start = units = 0
    for index, char in enumerate(envelope):
        size = 2 if ord(char) > 0xFFFF else 1
        if units + size > ENVELOPE_PART:
            parts.append(envelope[start:index])
            if len(parts) == MAX_ENVELOPE_PARTS:
                return parts
            start, units = index, 0
        units += size
    parts.append(envelope[start:])
    return parts


def _envelope_columns(envelope: str) -> dict[str, str | int]:
    parts = _split_envelope(envelope)
    if len(parts) == 1 and len(parts[0]) == len(envelope):
        return {"Envelope": envelope}
    columns: dict[str, str | int] = {"Envelope" if i == 0 else f"Envelope{i + 1}": part for i, part in enumerate(parts)}
    columns.update(EnvelopeParts=len(parts), EnvelopeSha256=hashlib.sha256(_utf8(envelope)).hexdigest())
    return columns


def _envelope_of(entity: Mapping[str, Any]) -> str:
    parts = int(entity.get("EnvelopeParts") or 1)
    first: str = entity.get("Envelope", "")  # string columns, as put() writes them
    return first + "".join(entity.get(f"Envelope{i}", "") for i in range(2, parts + 1))


class DeadLetterStore:
    def __init__(self, table: TableClient):
        self.table = table

    def put(self, letter: DeadLetter) -> None:
        """Insert or replace: the same event dead-lettered twice keeps its latest reason."""
        self.table.upsert_entity(
            {
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
                **_envelope_columns(letter.envelope),
            },
            mode=UpdateMode.REPLACE,
        )

    def get(self, email_hash: str, event_id: str) -> DeadLetter | None:
        try:
            return _from_entity(self.table.get_entity(email_hash, _row_key(event_id)))
        except ResourceNotFoundError:
            return None

    def delete(self, letter: DeadLetter) -> bool:
        """Delete the dead letter as it was read. False when it was replaced since (the event failed
        again and a newer dead letter took its place: that one must stay)."""
        partition, row = letter.email_hash or UNKNOWN_PARTITION, _row_key(letter.event_id)
        try:
            if letter.etag:
                self.table.delete_entity(
                    partition, row, etag=letter.etag, match_condition=MatchConditions.IfNotModified
                )
            else:
                self.table.delete_entity(partition, row)
        except ResourceModifiedError:
            return False
        return True

    def query(
        self,
        *,
        reason: str | None = None,
        email_hash: str | None = None,
        event_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[DeadLetter]:
        exact_hash = email_hash if email_hash and len(email_hash) >= 64 else None
        prefix = email_hash if email_hash and len(email_hash) < 64 else None
        prefix_end = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else None
        filters = (
            ("PartitionKey eq @pk", "pk", exact_hash),
            # A displayed hash is shortened: a prefix selects the partitions it starts.
            ("PartitionKey ge @pk_from", "pk_from", prefix),
            ("PartitionKey lt @pk_to", "pk_to", prefix_end),
            ("EventId eq @eid", "eid", event_id),
            ("Reason eq @reason", "reason", reason),
            ("DeadLetteredAt ge @since", "since", since),
            ("DeadLetteredAt lt @until", "until", until),
        )
        clauses = [clause for clause, _, value in filters if value]
        params = {name: value for _, name, value in filters if value}
        entities = (
            self.table.query_entities(" and ".join(clauses), parameters=params)
            if clauses
            else self.table.list_entities()
        )
        for entity in entities:
            yield _from_entity(entity)

    def purge_older_than(self, days: int, now: datetime | None = None) -> int:
        cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
        removed = 0
        for letter in self.query(until=cutoff):
            self.delete(letter)
            removed += 1
        return removed

    def count(self) -> int:
        return sum(1 for _ in self.table.list_entities(select=["PartitionKey"]))


def _from_entity(e: Mapping[str, Any]) -> DeadLetter:
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
        envelope=_envelope_of(e),
        etag=getattr(e, "metadata", {}).get("etag"),
    )
