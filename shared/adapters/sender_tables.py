"""The two tables the webhook sources keep: received deliveries, and the senders' own customer ids.

Both are small Azure Tables beside the ledger and the dead letters, written with ETag conditions and
short per-call timeouts (a webhook answer has a deadline: Shopify waits 5 seconds).

- ``DeliveryStore``: one row per (source, delivery id), claimed before the delivery is queued and
  completed once it is, so a redelivery is acknowledged without queueing anything again. Rows live in
  one partition per source and UTC day; a lookup reads today's and yesterday's, so a redelivery is
  recognised for at least 24 hours (Shopify retries for 4 hours), and older days are purged whole.
- ``SenderIdentityStore``: the sender's customer id (Shopify ``id``, HubSpot object id, Klaviyo
  profile id), keyed by an HMAC with ``EMAIL_HASH_KEY``, with the email it last carried and when, so an
  email change at the sender becomes ``previousEmail`` here.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, UpdateMode


class _CallLimits(TypedDict):
    """azure-core's per-call keywords (the SDK methods take them through ``**kwargs``)."""

    retry_total: int
    connection_timeout: float
    read_timeout: float


# Per-call limits for these tables: one quick retry, short timeouts (the answer's deadline is 5 s).
FAST: _CallLimits = {"retry_total": 1, "connection_timeout": 2, "read_timeout": 2}
CLAIM_SECONDS = 60  # a claim still pending after this was left by a worker that died: it is taken over
PENDING, DONE = "pending", "done"


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


@dataclass
class Claim:
    state: str  # "new" (this request processes it), "duplicate" (done before), "in_flight" (another request)
    partition: str = ""
    row: str = ""
    etag: str | None = None


class DeliveryStore:
    def __init__(self, table: TableClient):
        self.table = table

    @staticmethod
    def _row(delivery_key: str) -> str:
        return hashlib.sha256(delivery_key.encode("utf-8")).hexdigest()

    @staticmethod
    def _partition(source: str, day: datetime) -> str:
        return f"{source}-{_utc(day):%Y%m%d}"

    def _read(self, partition: str, row: str) -> TableEntity | None:
        try:
            return self.table.get_entity(partition, row, **FAST)
        except ResourceNotFoundError:
            return None

    @staticmethod
    def _judge(entity: Mapping[str, Any], now: datetime) -> str | None:
        if entity.get("State") == DONE:
            return "duplicate"
        claimed = entity.get("ClaimedAt")
        if isinstance(claimed, datetime) and (now - claimed).total_seconds() < CLAIM_SECONDS:
            return "in_flight"
        return None  # a stale claim: the worker that made it died before finishing

    def claim(self, source: str, delivery_key: str, now: datetime) -> Claim:
        row = self._row(delivery_key)
        earlier = self._read(self._partition(source, now - timedelta(days=1)), row)
        if earlier is not None and (verdict := self._judge(earlier, now)) is not None:
            return Claim(verdict)
        partition = self._partition(source, now)
        entity = {
            "PartitionKey": partition,
            "RowKey": row,
            "State": PENDING,
            "ClaimedAt": _utc(now),
            "DeliveryId": delivery_key[:256],
        }
        try:
            created = self.table.create_entity(entity, **FAST)
            return Claim("new", partition, row, (created or {}).get("etag"))
        except ResourceExistsError:
            pass
        current = self._read(partition, row)
        if current is None:  # released between our insert and read: try once more
            try:
                created = self.table.create_entity(entity, **FAST)
                return Claim("new", partition, row, (created or {}).get("etag"))
            except ResourceExistsError:
                return Claim("in_flight")
        if (verdict := self._judge(current, now)) is not None:
            return Claim(verdict)
        try:  # take over a stale claim, unless someone else just did
            taken = self.table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=current.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
                **FAST,
            )
            return Claim("new", partition, row, (taken or {}).get("etag"))
        except ResourceModifiedError:
            return Claim("in_flight")

    def complete(self, claim: Claim, now: datetime, *, queued: int, rejected: int, outcome: str) -> None:
        self.table.upsert_entity(
            {
                "PartitionKey": claim.partition,
                "RowKey": claim.row,
                "State": DONE,
                "CompletedAt": _utc(now),
                "Queued": queued,
                "Rejected": rejected,
                "Outcome": outcome,
            },
            mode=UpdateMode.MERGE,
            **FAST,
        )

    def release(self, claim: Claim) -> None:
        """Forget a claim whose delivery could not be stored, so the sender's retry is processed."""
        try:
            self.table.delete_entity(claim.partition, claim.row, **FAST)
        except ResourceNotFoundError:
            pass

    def purge(self, sources: list[str], now: datetime) -> int:
        """Delete the partitions older than yesterday (a point lookup never reads them)."""
        removed = 0
        keep_from = self._partition("", now - timedelta(days=1))[1:]  # YYYYMMDD
        for source in sources:
            query = "PartitionKey ge @low and PartitionKey lt @high"
            rows = self.table.query_entities(
                query,
                parameters={"low": f"{source}-", "high": f"{source}-{keep_from}"},
                select=["PartitionKey", "RowKey"],
            )
            for row in rows:
                self.table.delete_entity(row["PartitionKey"], row["RowKey"])
                removed += 1
        return removed


@dataclass(frozen=True)
class Identity:
    email: str
    occurred_at: datetime | None
    etag: str | None = None


class SenderIdentityStore:
    def __init__(self, table: TableClient, hash_key: bytes):
        self.table = table
        self._key = hash_key

    def _row(self, source: str, sender_id: str) -> str:
        return hmac.new(self._key, f"{source}\x00{sender_id}".encode(), hashlib.sha256).hexdigest()

    def get(self, source: str, sender_id: str) -> Identity | None:
        try:
            entity = self.table.get_entity(source, self._row(source, sender_id), **FAST)
        except ResourceNotFoundError:
            return None
        return Identity(entity.get("Email") or "", entity.get("OccurredAt"), entity.metadata.get("etag"))

    def remember(
        self,
        source: str,
        sender_id: str,
        email: str,
        occurred_at: datetime,
        known: Identity | None,
        email_hash: str = "",
    ) -> None:
        """Record ``email`` as the sender id's address, unless a newer event already set another one.
        ETag-conditional against ``known`` (as read before the event was queued): a concurrent writer
        makes this re-read and decide again, once."""
        row = self._row(source, sender_id)
        # EmailHash lets an erasure find every sender's record of an address without the address
        # itself in a query (a query's filter travels in the request URL, which HTTP logging records).
        entity = {
            "PartitionKey": source,
            "RowKey": row,
            "Email": email,
            "EmailHash": email_hash,
            "OccurredAt": _utc(occurred_at),
        }
        for _ in range(2):
            if known is not None and known.occurred_at is not None and known.occurred_at > occurred_at:
                return  # an older event: the newer address stays
            try:
                if known is None or known.etag is None:
                    self.table.create_entity(entity, **FAST)
                else:
                    self.table.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=known.etag,
                        match_condition=MatchConditions.IfNotModified,
                        **FAST,
                    )
                return
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                known = self.get(source, sender_id)
        raise ResourceModifiedError("the sender id's record kept changing")

    def forget_email(self, email_hash: str) -> int:
        """Delete every source's record that last carried the email with this hash."""
        if not email_hash:
            return 0
        rows = self.table.query_entities(
            "EmailHash eq @h", parameters={"h": email_hash}, select=["PartitionKey", "RowKey"], **FAST
        )
        removed = 0
        for row in list(rows):
            try:
                self.table.delete_entity(row["PartitionKey"], row["RowKey"], **FAST)
                removed += 1
            except ResourceNotFoundError:
                pass
        return removed

    def forget(self, source: str, sender_id: str) -> bool:
        try:
            self.table.delete_entity(source, self._row(source, sender_id), **FAST)
            return True
        except ResourceNotFoundError:
            return False
