"""NormalisedEvent -> Commerce Customer create body (POST /Commerce/Customers).

Only property names of the Customer, Address and ContactInfo entities are used (a test checks each
key against the property lists of docs/commerce-api.md, "Entities"). ``customerAccount`` and ``createdDateTime``
are never sent: the account number is the server's to assign, and the creation time is the server's
to stamp. Settings defaults (type, group, currency, language) apply here, on create, and never on
update (``shared.core.commerce_bodies.patch``).
"""

from __future__ import annotations

from typing import Any

from shared.core.contract import NormalisedAddress, NormalisedEvent
from shared.core.settings import MappingSettings

CONTACT_PHONE = 1  # ContactInfoType.Phone
CONTACT_EMAIL = 2  # ContactInfoType.Email

# NormalisedAddress attribute -> (contract name, Address property); the state id and name go together.
ADDRESS_PROPERTIES: tuple[tuple[str, str, str], ...] = (
    ("name", "name", "Name"),
    ("street", "street", "Street"),
    ("street_number", "streetNumber", "StreetNumber"),
    ("city", "city", "City"),
    ("county", "county", "County"),
    ("state", "state", "State"),
    ("state_name", "state", "StateName"),
    ("postal_code", "postalCode", "ZipCode"),
)


def primary(items: Any, type_value: int | None = None) -> dict[str, Any] | None:
    """The primary item of a Customer's Addresses (``type_value`` None) or Contacts of one
    AddressTypeValue; for contacts with none marked primary, the first of that type."""
    candidates = [
        i
        for i in (items if isinstance(items, list) else [])
        if isinstance(i, dict) and (type_value is None or i.get("AddressTypeValue") == type_value)
    ]
    for item in candidates:
        if item.get("IsPrimary") is True:
            return item
    return candidates[0] if candidates and type_value is not None else None


def compose_name(first: str | None, middle: str | None, last: str | None) -> str:
    """Customer.Name for a person: the name parts in order, single-spaced."""
    return " ".join(part for part in (first, middle, last) if part)


def compose_full_address(parts: dict[str, Any]) -> str:
    """Address.FullAddress from Address properties: street line, "City, State Zip", country.

    Commerce recomposes it from headquarters' address format when it formats an address; this is
    what the integration sends so that the field is never stale after a component changes.
    """

    def get(prop: str) -> str:
        value = parts.get(prop)
        return value if isinstance(value, str) else ""

    line1 = " ".join(p for p in (get("Street"), get("StreetNumber")) if p)
    region = " ".join(p for p in (get("State"), get("ZipCode")) if p)
    line2 = ", ".join(p for p in (get("City"), region) if p)
    return "\n".join(p for p in (line1, line2, get("ThreeLetterISORegionName")) if p)


def address_body(address: NormalisedAddress, settings: MappingSettings) -> dict[str, Any]:
    """A new primary Address: every component the event gave, plus the composed FullAddress."""
    body: dict[str, Any] = {}
    for attr, _, prop in ADDRESS_PROPERTIES:
        value = getattr(address, attr)
        if value:
            body[prop] = value
    body["ThreeLetterISORegionName"] = address.country
    body["FullAddress"] = compose_full_address(body)
    body["IsPrimary"] = True
    body["AddressTypeValue"] = settings.address_type
    return body


def email_contact(event: NormalisedEvent) -> dict[str, Any]:
    return {
        "Value": event.email,
        "AddressTypeValue": CONTACT_EMAIL,
        "IsPrimary": True,
        "IsOptedInMarketing": bool(event.is_opted_in_marketing),
    }


def phone_contact(event: NormalisedEvent) -> dict[str, Any]:
    contact = {
        "Value": event.phone,
        "AddressTypeValue": CONTACT_PHONE,
        "IsPrimary": True,
        "IsOptedInMarketing": bool(event.is_opted_in_marketing),
    }
    if event.phone_extension:
        contact["ValueExtension"] = event.phone_extension
    return contact


def build_create_body(event: NormalisedEvent, settings: MappingSettings) -> dict[str, Any]:
    """The create body for a customer Commerce does not have yet. ``AccountNumber`` is "" so that
    the server assigns one. Empty settings defaults are left out (Commerce then applies the
    channel's default customer)."""
    body: dict[str, Any] = {"AccountNumber": ""}
    for prop, value in (
        ("FirstName", event.first_name),
        ("MiddleName", event.middle_name),
        ("LastName", event.last_name),
    ):
        if value:
            body[prop] = value
    name = compose_name(event.first_name, event.middle_name, event.last_name)
    if name:
        body["Name"] = name
    body["Email"] = event.email
    body["ReceiptEmail"] = event.email
    if event.phone:
        body["Phone"] = event.phone
        if event.phone_extension:
            body["PhoneExt"] = event.phone_extension
    body["CustomerTypeValue"] = settings.default_customer_type
    own = event.create_defaults  # a webhook source's defaults, before the global ones
    for prop, value, default in (
        ("Language", event.language, (own and own.language) or settings.default_language),
        ("CurrencyCode", event.currency_code, (own and own.currency_code) or settings.default_currency),
        ("CustomerGroup", event.customer_group, (own and own.customer_group) or settings.default_group),
    ):
        if value or default:
            body[prop] = value or default
    body["Addresses"] = [address_body(event.address, settings)] if event.address else []
    contacts = [email_contact(event)]
    if event.phone:
        contacts.append(phone_contact(event))
    body["Contacts"] = contacts
    body["IsAsyncCustomer"] = False
    body["ExtensionProperties"] = []
    return body
