"""The ledger in Azure Table storage: one entity per email, every write conditional on what was read.

PartitionKey = the email hash, RowKey = ``"ledger"``. A first write is an insert (it fails if another
worker inserted first); every later write replaces the entity only if its ETag is still the one read.
A lost race surfaces as ``LedgerConflict``: the caller reads again and decides again.
The three operations go out as direct HTTP requests (``shared.adapters.storage.HttpTableEntities``), not
through the SDK's pipeline, which cost four times their CPU; the SDK still lists entries.
Record ids are stored as text (Int64 in Commerce; the table's Int64 needs explicit typing, text does not).
An entity written before per-group ordering has no ``GroupKeys`` (read as None: every group at
``Last*``) and no ``PendingGroups`` (every group); it needs no migration.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient

from shared.adapters.storage import TableEntities, table_entities
from shared.core.ledger_rules import Lease, LedgerConflict, LedgerEntry, OrderKey, State

ROW_KEY = "ledger"


def _time(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _stored_time(value: Any) -> datetime:
    """A time to_entity always writes (a lease's expiry, a group's event): a row without one is corrupt,
    refused here rather than carried as None into the ordering and lease checks."""
    return datetime.fromisoformat(value)


def _group_keys(keys: Mapping[str, OrderKey] | None) -> str:
    if keys is None:
        return ""
    return json.dumps({g: [_time(k.occurred_at), k.event_id] for g, k in keys.items()}, sort_keys=True)


def _parse_group_keys(value: Any) -> dict[str, OrderKey] | None:
    if not isinstance(value, str) or not value:
        return None
    return {g: OrderKey(_stored_time(at), event_id) for g, (at, event_id) in json.loads(value).items()}


def to_entity(entry: LedgerEntry) -> dict[str, Any]:
    lease = entry.lease
    pending = lease.pending if lease else None
    return {
        "PartitionKey": entry.email_hash,
        "RowKey": ROW_KEY,
        "State": entry.state.value,
        "AccountNumber": entry.account_number or "",
        "IsAsync": entry.is_async,
        "AddressRecordId": entry.address_record_id or "",
        "EmailContactRecordId": entry.email_contact_record_id or "",
        "PhoneContactRecordId": entry.phone_contact_record_id or "",
        "LastOccurredAt": _time(entry.last.occurred_at if entry.last else None),
        "LastEventId": entry.last.event_id if entry.last else "",
        "RecentEventIds": json.dumps(list(entry.recent_event_ids)),
        "Hashes": json.dumps(dict(entry.hashes), sort_keys=True),
        "GroupKeys": _group_keys(entry.group_keys),
        "UncertainGroups": ",".join(sorted(entry.uncertain_groups)),
        "EmptyFields": ",".join(sorted(entry.empty_fields)),
        "LeaseOwner": lease.owner if lease else "",
        "LeaseUntil": _time(lease.until if lease else None),
        "PendingOccurredAt": _time(pending.occurred_at if pending else None),
        "PendingEventId": pending.event_id if pending else "",
        "PendingGroups": json.dumps(sorted(lease.groups)) if lease and pending and lease.groups is not None else "",
        "MovedTo": entry.moved_to or "",
        "MovedFrom": entry.moved_from or "",
        "MovedFromOccurredAt": _time(entry.moved_from_at.occurred_at if entry.moved_from_at else None),
        "MovedFromEventId": entry.moved_from_at.event_id if entry.moved_from_at else "",
    }


def from_entity(entity: Mapping[str, Any], etag: str | None = None) -> LedgerEntry:
    last_at, pending_at = _parse_time(entity.get("LastOccurredAt")), _parse_time(entity.get("PendingOccurredAt"))
    moved_at = _parse_time(entity.get("MovedFromOccurredAt"))
    lease = None
    if entity.get("LeaseOwner"):
        pending = OrderKey(pending_at, entity["PendingEventId"]) if pending_at else None
        groups = entity.get("PendingGroups")
        lease = Lease(
            entity["LeaseOwner"],
            _stored_time(entity["LeaseUntil"]),
            pending,
            frozenset(json.loads(groups)) if pending and groups else None,
        )
    return LedgerEntry(
        email_hash=entity["PartitionKey"],
        state=State(entity.get("State") or State.NEW.value),
        account_number=entity.get("AccountNumber") or None,
        is_async=bool(entity.get("IsAsync")),
        address_record_id=entity.get("AddressRecordId") or None,
        email_contact_record_id=entity.get("EmailContactRecordId") or None,
        phone_contact_record_id=entity.get("PhoneContactRecordId") or None,
        last=OrderKey(last_at, entity.get("LastEventId") or "") if last_at else None,
        recent_event_ids=tuple(json.loads(entity.get("RecentEventIds") or "[]")),
        hashes=json.loads(entity.get("Hashes") or "{}"),
        group_keys=_parse_group_keys(entity.get("GroupKeys")),
        uncertain_groups=frozenset(g for g in (entity.get("UncertainGroups") or "").split(",") if g),
        empty_fields=frozenset(f for f in (entity.get("EmptyFields") or "").split(",") if f),
        lease=lease,
        moved_to=entity.get("MovedTo") or None,
        moved_from=entity.get("MovedFrom") or None,
        moved_from_at=OrderKey(moved_at, entity.get("MovedFromEventId") or "") if moved_at else None,
        etag=etag or (entity.metadata.get("etag") if hasattr(entity, "metadata") else None),
    )


class LedgerStore:
    def __init__(self, table: TableClient, entities: TableEntities | None = None):
        """``entities``: how entities are read and written (default: ``table_entities(table)``)."""
        self.table = table
        self.entities = entities if entities is not None else table_entities(table)

    def read(self, email_hash: str) -> LedgerEntry | None:
        try:
            entity, etag = self.entities.get(email_hash, ROW_KEY)
            return from_entity(entity, etag)
        except ResourceNotFoundError as error:
            if _table_missing(error):
                raise  # not "no entry": a deployment fault, classified as a storage failure
            return None

    def write(self, entry: LedgerEntry) -> LedgerEntry:
        """Insert (no ETag: the entity must not exist) or replace the version read (ETag). Returns the
        entry with its new ETag. Raises LedgerConflict when another writer got there first."""
        entity = to_entity(entry)
        try:
            if entry.etag is None:
                etag = self.entities.insert(entity)
            else:
                etag = self.entities.replace(entity, entry.etag)
        except ResourceNotFoundError as error:
            if _table_missing(error):
                raise
            raise LedgerConflict("deleted since read") from None
        except (ResourceExistsError, ResourceModifiedError) as error:
            raise LedgerConflict(type(error).__name__) from None
        return replace(entry, etag=etag)

    def entries(self) -> list[LedgerEntry]:
        """Every entry (operators' tools and tests; the processor never scans)."""
        return [from_entity(e) for e in self.table.query_entities(f"RowKey eq '{ROW_KEY}'")]


def _table_missing(error: ResourceNotFoundError) -> bool:
    return getattr(error, "error_code", None) == "TableNotFound" or "TableNotFound" in str(error)
