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
    CONTACT_EMAIL,
    CONTACT_PHONE,
    address_body,
    compose_full_address,
    compose_name,
    email_contact,
    phone_contact,
    primary,
)
from shared.core.contract import NormalisedEvent
from shared.core.settings import MappingSettings, PhoneClear

_NOT_DIGITS = re.compile(r"[^\d+]")
# Address properties compared case-insensitively (ids and codes, not free text).
_CASELESS = frozenset({"State", "ZipCode", "ThreeLetterISORegionName", "County"})


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _phone_key(value: Any) -> str:
    return _NOT_DIGITS.sub("", _text(value))


def _same(prop: str, old: Any, new: str) -> bool:
    old_text = _text(old)
    return old_text.casefold() == new.casefold() if prop in _CASELESS else old_text == new


def _customer_fields(existing: dict[str, Any], event: NormalisedEvent) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    names = {
        "FirstName": ("firstName", event.first_name),
        "MiddleName": ("middleName", event.middle_name),
        "LastName": ("lastName", event.last_name),
    }
    merged: dict[str, str] = {}
    for prop, (field, value) in names.items():
        merged[prop] = _text(existing.get(prop))
        if event.has(field) and merged[prop] != (value or ""):
            patch[prop] = value or ""
            merged[prop] = value or ""
    if patch:
        name = compose_name(merged["FirstName"], merged["MiddleName"], merged["LastName"])
        if name and name != _text(existing.get("Name")):
            patch["Name"] = name

    old_email = _text(existing.get("Email"))
    if old_email.lower() != event.email_match_key:
        patch["Email"] = event.email
        receipt = _text(existing.get("ReceiptEmail")).lower()
        if receipt in ("", old_email.lower()):
            patch["ReceiptEmail"] = event.email

    if event.has("phone") and _phone_key(existing.get("Phone")) != (event.phone or ""):
        patch["Phone"] = event.phone or ""
    if event.has("phoneExtension") and _text(existing.get("PhoneExt")) != (event.phone_extension or ""):
        patch["PhoneExt"] = event.phone_extension or ""
    for prop, field, value in (
        ("Language", "language", event.language),
        ("CurrencyCode", "currencyCode", event.currency_code),
    ):
        if event.has(field) and value and _text(existing.get(prop)).lower() != value.lower():
            patch[prop] = value
    if (
        event.has("customerGroup")
        and event.customer_group
        and _text(existing.get("CustomerGroup")) != event.customer_group
    ):
        patch["CustomerGroup"] = event.customer_group
    return patch


def _contacts(existing: dict[str, Any], event: NormalisedEvent, settings: MappingSettings) -> list[dict[str, Any]]:
    contacts = existing.get("Contacts")
    contacts = contacts if isinstance(contacts, list) else []
    opt_in = event.is_opted_in_marketing if event.has("isOptedInMarketing") else None
    changes: list[dict[str, Any]] = []
    # A contact added by an event that does not set consent takes the customer's current consent.
    current = primary(contacts, CONTACT_EMAIL) or primary(contacts, CONTACT_PHONE)
    consent = opt_in if opt_in is not None else bool(current and current.get("IsOptedInMarketing"))

    def update(contact: dict[str, Any], value_changed: str | None, extension_changed: str | None = None) -> None:
        change: dict[str, Any] = {}
        if value_changed is not None:
            change["Value"] = value_changed
        if extension_changed is not None:
            change["ValueExtension"] = extension_changed
        if opt_in is not None and bool(contact.get("IsOptedInMarketing")) != opt_in:
            change["IsOptedInMarketing"] = opt_in
        if change:
            changes.append({"RecordId": contact.get("RecordId"), **change})

    email = primary(contacts, CONTACT_EMAIL)
    if email is None:
        changes.append({**email_contact(event), "IsOptedInMarketing": consent})
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
            changes.append({**phone_contact(event), "IsOptedInMarketing": consent})
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
    addresses = existing.get("Addresses")
    current = primary(addresses)
    if current is None:
        return [address_body(address, settings)]
    change: dict[str, Any] = {}
    for attr, field, prop in ADDRESS_PROPERTIES:
        if address.has(field):
            new = getattr(address, attr) or ""
            if not _same(prop, current.get(prop), new):
                change[prop] = new
    if not _same("ThreeLetterISORegionName", current.get("ThreeLetterISORegionName"), address.country):
        change["ThreeLetterISORegionName"] = address.country
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
        patch["Addresses"] = addresses
    if not patch:
        return None
    return {"AccountNumber": existing.get("AccountNumber"), **patch}
