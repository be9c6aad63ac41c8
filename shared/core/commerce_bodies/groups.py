"""Field groups: what changed since the last applied event, and the PATCH of just that, without a read.

The contract's fields fall into groups that Commerce stores together. The ledger keeps a keyed hash
per group of what was last applied (keyed like the email hash: a hash of a name must not be
reversible by guessing). An event whose groups all hash the same needs no Commerce call; one whose
groups differ needs one PATCH of those groups, built here from the event and the record ids the
ledger holds. Only when the event lacks a part that a composed property needs (``Name`` from the
three name parts, ``FullAddress`` from the address parts) and the ledger cannot tell that part is
empty, when the email itself changes, or when a new phone contact needs the customer's consent and
the event carries none, is the customer read first (``None`` from ``blind_patch``).

``restrict`` narrows an event to the groups it may still write (``shared.core.ledger_rules.assess``): an older
event's groups that a newer event has written are left out of everything built from it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from shared.core.commerce_bodies.create import (
    ADDRESS_PROPERTIES,
    ADDRESSES,
    COUNTRY,
    NAME_PARTS,
    OPTED_IN,
    PHONE,
    PHONE_EXT,
    SCALARS,
    address_body,
    compose_full_address,
    compose_name,
    phone_contact,
    value_to_send,
)
from shared.core.contract import NormalisedEvent
from shared.core.fields import FIELD
from shared.core.ledger_rules import ADDRESS_PARTS, GROUPS, ORDERED_GROUPS, LedgerEntry
from shared.core.settings import MappingSettings, PhoneClear


def restrict(event: NormalisedEvent, groups: frozenset[str]) -> NormalisedEvent:
    """``event`` as if it carried only the ordered ``groups`` (and its email): the fields of its other
    groups, which newer events have written, read as absent, so that no PATCH, create body or hash
    is built from them."""
    dropped = [f for g, fields in GROUPS.items() if g in ORDERED_GROUPS and g not in groups for f in fields]
    if not any(event.has(f) for f in dropped):
        return event
    update: dict[str, Any] = {attr: None for f in dropped for attr in FIELD[f].attrs}
    update["present"] = tuple(p for p in event.present if p not in dropped)
    return event.model_copy(update=update)


def _value(event: NormalisedEvent, field: str) -> Any:
    # Contract names are the camelCase aliases of the event's attributes; the email compares by its key.
    value = getattr(event, "email_match_key" if field == "email" else FIELD[field].attr)
    if field == "address" and value is not None:
        return value.model_dump(mode="json", by_alias=True)  # carries its own ``present`` list
    return value


def group_hashes(event: NormalisedEvent, key: bytes) -> dict[str, str]:
    """A hash per group the event carries (absent groups are unchanged, so they have none)."""
    hashes = {}
    for group, fields in GROUPS.items():
        carried = [f for f in fields if f == "email" or event.has(f)]
        if carried:
            text = json.dumps(
                [group, [[f, _value(event, f)] for f in carried]],
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
            )
            hashes[group] = hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
    return hashes


def changed_groups(known: Mapping[str, str], hashes: Mapping[str, str]) -> list[str]:
    return [group for group, value in hashes.items() if known.get(group) != value]


class _NeedsRead(Exception):
    """A part the PATCH must compose from is neither in the event nor known to be empty."""


def _part(prop: str, carried: Mapping[str, str], entry: LedgerEntry) -> str:
    if prop in carried:
        return carried[prop]
    if prop in entry.empty_fields:
        return ""
    raise _NeedsRead(prop)


def _record(record_id: str) -> int | str:
    return int(record_id) if record_id.isdigit() else record_id


def blind_patch(
    event: NormalisedEvent, entry: LedgerEntry, groups: list[str], mapping: MappingSettings
) -> dict[str, Any] | None:
    """The PATCH body (without ``AccountNumber``) for ``groups`` of a customer the ledger knows ({}
    when there is nothing to send), or None when it cannot be built without reading the customer."""
    try:
        return _build(event, entry, set(groups), mapping)
    except _NeedsRead:
        return None


def _build(
    event: NormalisedEvent, entry: LedgerEntry, groups: set[str], mapping: MappingSettings
) -> dict[str, Any] | None:
    if "email" in groups:
        return None  # an email change also moves ReceiptEmail and the contact: read, then diff
    patch: dict[str, Any] = {}
    contacts: dict[object, dict[str, Any]] = {}

    for f, prop in SCALARS:
        if f.group in groups and event.has(f.name):
            value = value_to_send(event, f)
            if value is not None:
                patch[prop] = value

    if "name" in groups:
        name = compose_name(*(_part(p, patch, entry) for p in NAME_PARTS))
        if name:
            patch["Name"] = name

    if "phone" in groups:
        if event.has("phone"):
            patch[PHONE] = event.phone or ""
        # The extension is sent when set, or to clear one the ledger does not know to be empty.
        extension: dict[str, str] = {}
        if event.has("phoneExtension") and (event.phone_extension or PHONE_EXT not in entry.empty_fields):
            patch[PHONE_EXT] = event.phone_extension or ""
            extension["ValueExtension"] = event.phone_extension or ""
        phone_id = entry.phone_contact_record_id
        if event.phone:
            if phone_id:
                contacts[phone_id] = {"RecordId": _record(phone_id), "Value": event.phone, **extension}
            elif event.is_opted_in_marketing is None:
                # A new contact takes the customer's current consent, which only a read tells.
                raise _NeedsRead("consent for a new phone contact")
            else:
                contacts["new-phone"] = phone_contact(event)
        elif phone_id and not event.has("phone"):
            if extension:
                contacts[phone_id] = {"RecordId": _record(phone_id), **extension}
        elif phone_id and mapping.phone_clear is PhoneClear.BLANK:
            contacts[phone_id] = {"RecordId": _record(phone_id), "Value": "", "ValueExtension": ""}
        elif phone_id and mapping.phone_clear is PhoneClear.OMIT:
            raise _NeedsRead("the contacts a PATCH without the phone contact keeps")

    if "consent" in groups and event.is_opted_in_marketing is not None:
        if not entry.email_contact_record_id:
            raise _NeedsRead("email contact")
        for record_id in (entry.email_contact_record_id, entry.phone_contact_record_id):
            if record_id:
                contacts.setdefault(record_id, {"RecordId": _record(record_id)})[OPTED_IN] = event.is_opted_in_marketing
        if "new-phone" in contacts:
            contacts["new-phone"][OPTED_IN] = event.is_opted_in_marketing

    if "address" in groups and event.address is not None:
        address = event.address
        if not entry.address_record_id:
            patch[ADDRESSES] = [address_body(address, mapping)]
        else:
            change: dict[str, Any] = {}
            for attr, field, prop in ADDRESS_PROPERTIES:
                if address.has(field):
                    change[prop] = getattr(address, attr) or ""
            change[COUNTRY] = address.country
            parts = {p: _part(p, change, entry) for p in ADDRESS_PARTS}
            change["FullAddress"] = compose_full_address({**parts, COUNTRY: address.country})
            patch[ADDRESSES] = [{"RecordId": _record(entry.address_record_id), **change}]

    if contacts:
        patch["Contacts"] = list(contacts.values())
    return patch  # may be empty: the changed groups carried nothing Commerce stores
