"""NormalisedEvent -> Commerce Customer create body (POST /Commerce/Customers).

Only property names of the Customer, Address and ContactInfo entities are used (a test checks each
key against the property lists of docs/commerce-api.md, "Entities"). The table of
``shared.core.fields`` says which property each field is sent as; a field without one
(``customerAccount``, ``createdDateTime``) is never sent: the account number is the server's to
assign, and the creation time is the server's to stamp. Settings defaults (type, and each field's
``default``: group, currency, language) apply here, on create, and never on update
(``shared.core.commerce_bodies.patch``).
"""

from __future__ import annotations

from typing import Any

from shared.core.contract import NormalisedAddress, NormalisedEvent
from shared.core.fields import ADDRESS, ADDRESS_FIELD, CUSTOMER, FIELD, Field, NullMeans
from shared.core.settings import MappingSettings

CONTACT_PHONE = 1  # ContactInfoType.Phone
CONTACT_EMAIL = 2  # ContactInfoType.Email

# The fields sent as one Customer property each, with that property, by the same rules everywhere
# (create, PATCH, blind PATCH); the others are mapped by hand (email, phone, consent, address) or never sent.
SCALARS: tuple[tuple[Field, str], ...] = tuple((f, f.commerce) for f in CUSTOMER if f.scalar and f.commerce)
# Customer.Name is composed of the name group's properties, in their order.
NAME_PARTS: tuple[str, ...] = tuple(f.commerce for f in CUSTOMER if f.group == "name" and f.commerce)
# The properties of the fields mapped by hand (IsOptedInMarketing is the contacts').
EMAIL, PHONE, PHONE_EXT, OPTED_IN, ADDRESSES = (
    str(FIELD[name].commerce) for name in ("email", "phone", "phoneExtension", "isOptedInMarketing", "address")
)
COUNTRY = str(ADDRESS_FIELD["country"].commerce)  # Address.ThreeLetterISORegionName

# NormalisedAddress attribute -> (contract name, Address property); the state id and name go together.
ADDRESS_PROPERTIES: tuple[tuple[str, str, str], ...] = tuple(
    (attr, f.name, prop)
    for f in ADDRESS
    if f.scalar
    for attr, prop in ((f.attr, f.commerce), *f.also)
    if prop is not None
)


def value_to_send(event: NormalisedEvent, f: Field) -> Any:
    """What a PATCH sends for a scalar field the event carries: its value, "" to clear it, or None
    for nothing (a field that null cannot clear is never sent empty)."""
    value = getattr(event, f.attr)
    if value is None or value == "":
        return "" if f.null is NullMeans.CLEAR else None
    return value


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


def compose_name(*parts: str | None) -> str:
    """Customer.Name for a person: the name parts (first, middle, last) in order, single-spaced."""
    return " ".join(part for part in parts if part)


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
    return "\n".join(p for p in (line1, line2, get(COUNTRY)) if p)


def address_body(address: NormalisedAddress, settings: MappingSettings) -> dict[str, Any]:
    """A new primary Address: every component the event gave, plus the composed FullAddress."""
    body: dict[str, Any] = {}
    for attr, _, prop in ADDRESS_PROPERTIES:
        value = getattr(address, attr)
        if value:
            body[prop] = value
    body[COUNTRY] = address.country
    body["FullAddress"] = compose_full_address(body)
    body["IsPrimary"] = True
    body["AddressTypeValue"] = settings.address_type
    return body


def email_contact(event: NormalisedEvent) -> dict[str, Any]:
    return {
        "Value": event.email,
        "AddressTypeValue": CONTACT_EMAIL,
        "IsPrimary": True,
        OPTED_IN: bool(event.is_opted_in_marketing),
    }


def phone_contact(event: NormalisedEvent) -> dict[str, Any]:
    contact = {
        "Value": event.phone,
        "AddressTypeValue": CONTACT_PHONE,
        "IsPrimary": True,
        OPTED_IN: bool(event.is_opted_in_marketing),
    }
    if event.phone_extension:
        contact["ValueExtension"] = event.phone_extension
    return contact


def build_create_body(event: NormalisedEvent, settings: MappingSettings) -> dict[str, Any]:
    """The create body for a customer Commerce does not have yet. ``AccountNumber`` is "" so that
    the server assigns one. A field the event leaves empty takes its default (the webhook source's,
    else the settings'); empty defaults are left out (Commerce then applies the channel's default
    customer)."""
    body: dict[str, Any] = {"AccountNumber": ""}
    own = event.create_defaults  # a webhook source's defaults, before the global ones
    for f, prop in SCALARS:
        value = getattr(event, f.attr)
        if (value is None or value == "") and f.default:
            value = (own and getattr(own, f.attr)) or getattr(settings, f.default)
        if value is not None and value != "":
            body[prop] = value
    name = compose_name(*(body.get(p) for p in NAME_PARTS))
    if name:
        body["Name"] = name
    body[EMAIL] = event.email
    body["ReceiptEmail"] = event.email
    if event.phone:
        body[PHONE] = event.phone
        if event.phone_extension:
            body[PHONE_EXT] = event.phone_extension
    body["CustomerTypeValue"] = settings.default_customer_type
    body[ADDRESSES] = [address_body(event.address, settings)] if event.address else []
    contacts = [email_contact(event)]
    if event.phone:
        contacts.append(phone_contact(event))
    body["Contacts"] = contacts
    body["IsAsyncCustomer"] = False
    body["ExtensionProperties"] = []
    return body
