"""The minimal PATCH that brings a Commerce customer up to date with an event, or None.

Only fields the event carried are considered (absent = unchanged; explicit null clears a clearable
field). Values are compared with what Commerce stores: it returns every property, "" when unset, so
"" and a missing value are equal; emails compare case-insensitively (the match key), phones by
their digits, codes case-insensitively. Settings defaults are never applied on update. A create
followed by the same event therefore gives None.

The primary address and the email/phone contacts are updated in place by their ``RecordId`` with
only the changed properties, or added (without RecordId) when the customer has none. An added contact
takes the event's consent, or, when the event sets none, the customer's current one (its email
contact's, else its phone contact's): consent stays one value per customer.
"""

from __future__ import annotations

import re
from typing import Any

from shared.core.commerce_bodies.create import (
    ADDRESS_PROPERTIES,
    ADDRESSES,
    CONTACT_EMAIL,
    CONTACT_PHONE,
    COUNTRY,
    EMAIL,
    NAME_PARTS,
    OPTED_IN,
    PHONE,
    PHONE_EXT,
    SCALARS,
    address_body,
    compose_full_address,
    compose_name,
    email_contact,
    phone_contact,
    primary,
    value_to_send,
)
from shared.core.contract import NormalisedEvent
from shared.core.fields import ADDRESS
from shared.core.settings import MappingSettings, PhoneClear

_NOT_DIGITS = re.compile(r"[^\d+]")
# Address properties compared case-insensitively (ids and codes, not free text).
_CASELESS = frozenset(f.commerce for f in ADDRESS if f.caseless)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _phone_key(value: Any) -> str:
    return _NOT_DIGITS.sub("", _text(value))


def _same(old: Any, new: str | bool, caseless: bool) -> bool:
    """Whether Commerce's ``old`` value already is ``new``: "" (false for a boolean) equals unset."""
    if isinstance(new, bool):
        return bool(old) is new
    old_text = _text(old)
    return old_text.casefold() == new.casefold() if caseless else old_text == new


def _customer_fields(existing: dict[str, Any], event: NormalisedEvent) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for f, prop in SCALARS:
        if event.has(f.name):
            new = value_to_send(event, f)
            if new is not None and not _same(existing.get(prop), new, f.caseless):
                patch[prop] = new
    if any(p in patch for p in NAME_PARTS):
        name = compose_name(*(patch.get(p, _text(existing.get(p))) for p in NAME_PARTS))
        if name and name != _text(existing.get("Name")):
            patch["Name"] = name

    old_email = _text(existing.get(EMAIL))
    if old_email.lower() != event.email_match_key:
        patch[EMAIL] = event.email
        receipt = _text(existing.get("ReceiptEmail")).lower()
        if receipt in ("", old_email.lower()):
            patch["ReceiptEmail"] = event.email

    if event.has("phone") and _phone_key(existing.get(PHONE)) != (event.phone or ""):
        patch[PHONE] = event.phone or ""
    if event.has("phoneExtension") and _text(existing.get(PHONE_EXT)) != (event.phone_extension or ""):
        patch[PHONE_EXT] = event.phone_extension or ""
    return patch


def _contacts(existing: dict[str, Any], event: NormalisedEvent, settings: MappingSettings) -> list[dict[str, Any]]:
    contacts = existing.get("Contacts")
    contacts = contacts if isinstance(contacts, list) else []
    opt_in = event.is_opted_in_marketing if event.has("isOptedInMarketing") else None
    changes: list[dict[str, Any]] = []
    # A contact added by an event that does not set consent takes the customer's current consent.
    current = primary(contacts, CONTACT_EMAIL) or primary(contacts, CONTACT_PHONE)
    consent = opt_in if opt_in is not None else bool(current and current.get(OPTED_IN))

    def update(contact: dict[str, Any], value_changed: str | None, extension_changed: str | None = None) -> None:
        change: dict[str, Any] = {}
        if value_changed is not None:
            change["Value"] = value_changed
        if extension_changed is not None:
            change["ValueExtension"] = extension_changed
        if opt_in is not None and bool(contact.get(OPTED_IN)) != opt_in:
            change[OPTED_IN] = opt_in
        if change:
            changes.append({"RecordId": contact.get("RecordId"), **change})

    email = primary(contacts, CONTACT_EMAIL)
    if email is None:
        changes.append({**email_contact(event), OPTED_IN: consent})
    else:
        differs = _text(email.get("Value")).lower() != event.email_match_key
        update(email, event.email if differs else None)

    phone = primary(contacts, CONTACT_PHONE)
    extension = None  # the phone contact's ValueExtension to send, "" to clear it
    if (
        phone is not None
        and event.has("phoneExtension")
        and _text(phone.get("ValueExtension")) != (event.phone_extension or "")
    ):
        extension = event.phone_extension or ""
    if event.has("phone") and event.phone:
        if phone is None:
            changes.append({**phone_contact(event), OPTED_IN: consent})
        else:
            differs = _phone_key(phone.get("Value")) != event.phone
            update(phone, event.phone if differs else None, extension)
    elif phone is not None and event.has("phone") and settings.phone_clear is PhoneClear.BLANK:
        # Cleared, PHONE_CLEAR_CONTACT=blank: the contact stays, with an empty number.
        update(phone, "" if _text(phone.get("Value")) else None, extension)
    elif phone is not None and event.has("phone") and settings.phone_clear is PhoneClear.OMIT:
        # Cleared, PHONE_CLEAR_CONTACT=omit: Contacts is sent whole, without the phone contact.
        changed = {c.get("RecordId"): c for c in changes if c.get("RecordId") is not None}
        return [
            {**c, **changed.get(c.get("RecordId"), {})} for c in contacts if isinstance(c, dict) and c is not phone
        ] + [c for c in changes if c.get("RecordId") is None]
    elif phone is not None:
        # Phone unchanged, or cleared with PHONE_CLEAR_CONTACT=keep (Commerce documents no way to
        # delete a contact): the phone contact stays as it is but for its consent, which follows the
        # event, and its extension, when only that changes.
        update(phone, None, None if event.has("phone") else extension)
    return changes


def _address(existing: dict[str, Any], event: NormalisedEvent, settings: MappingSettings) -> list[dict[str, Any]]:
    address = event.address
    if address is None:
        return []
    addresses = existing.get(ADDRESSES)
    current = primary(addresses)
    if current is None:
        return [address_body(address, settings)]
    change: dict[str, Any] = {}
    for attr, field, prop in ADDRESS_PROPERTIES:
        if address.has(field):
            new = getattr(address, attr) or ""
            if not _same(current.get(prop), new, prop in _CASELESS):
                change[prop] = new
    if not _same(current.get(COUNTRY), address.country, COUNTRY in _CASELESS):
        change[COUNTRY] = address.country
    if not change:
        return []
    merged = {**current, **change}
    full = compose_full_address(merged)
    if full != _text(current.get("FullAddress")):
        change["FullAddress"] = full
    return [{"RecordId": current.get("RecordId"), **change}]


def build_patch(existing: dict[str, Any], event: NormalisedEvent, settings: MappingSettings) -> dict[str, Any] | None:
    """``existing`` is the Customer document Commerce returned (GET). Returns ``AccountNumber`` plus
    the changed properties, or None when the customer already matches the event."""
    patch = _customer_fields(existing, event)
    contacts = _contacts(existing, event, settings)
    if contacts:
        patch["Contacts"] = contacts
    addresses = _address(existing, event, settings)
    if addresses:
        patch[ADDRESSES] = addresses
    if not patch:
        return None
    return {"AccountNumber": existing.get("AccountNumber"), **patch}
