"""Pure transformations of Customer documents: validate a body, build a stored customer, apply a PATCH.

Identifiers and the clock come in through ``Ids`` so that these functions stay pure and testable; the store
(store.py) implements it under its lock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import quote

from .schema import ADDRESS, CONTACT, CUSTOMER, GLOBAL_CUSTOMER_KEYS, Problem, check_entity, complete

# Set by the server on create, ignored when a client sends them (a seed may set them: see build_customer).
SERVER_OWNED = ("AccountNumber", "RecordId", "PartyNumber", "CreatedDateTime", "IsAsyncCustomer")
ADDRESS_COMPONENTS = ("Street", "City", "State", "ZipCode", "ThreeLetterISORegionName")
EMAIL_CONTACT_TYPE = 2  # ContactInfoType.Email

# Deliberately simple (the real server's rule is not documented): one @, a dot-atom local part, a dotted
# domain of letter/digit/hyphen labels and a top-level label of two or more letters.
_EMAIL = re.compile(
    r"^[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*"
    r"@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,}$"
)


class Ids(Protocol):
    def record_id(self) -> int: ...
    def account_number(self) -> str: ...
    def async_account_number(self) -> str: ...
    def party_number(self) -> str: ...
    def now(self) -> str: ...


def email_ok(value: str) -> bool:
    return len(value) <= 254 and _EMAIL.match(value) is not None


@lru_cache(maxsize=1)
def _alpha3_codes() -> frozenset[str]:
    import pycountry  # loaded once; the emulator warms this at start so the first create is not slow

    return frozenset(c.alpha_3 for c in pycountry.countries)


def country_ok(code: Any) -> bool:
    return isinstance(code, str) and code in _alpha3_codes()


def is_empty(value: Any) -> bool:
    """Not set, the way Commerce sees it: null, "", [] or a zero number (booleans are always set)."""
    if value is None or value == "" or value == []:
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def validate(body: Mapping[str, Any], mode: str, config: Mapping[str, Any]) -> list[Problem]:
    """Every problem with a Customer body; ``mode`` is "create", "update" (only what is sent) or "seed".

    Shape (unknown properties, JSON types) is checked first: business rules run only on a well-formed body.
    """
    problems = check_entity(body, CUSTOMER, "", config["strict_properties"])
    if problems or mode == "seed":
        return problems
    for name in config["required_on_create"]:
        if (mode == "create" or name in body) and is_empty(body.get(name)):
            problems.append(Problem("required", name, f"A value for '{name}' is required."))
    email = body.get("Email")
    if isinstance(email, str) and email and not email_ok(email):
        problems.append(Problem("invalid_email", "Email", "The email address is not valid."))
    for i, address in enumerate(body.get("Addresses") or []):
        is_new = mode == "create" or is_empty(address.get("RecordId"))
        if is_new or "ThreeLetterISORegionName" in address:
            if not country_ok(address.get("ThreeLetterISORegionName")):
                problems.append(
                    Problem(
                        "invalid_country",
                        f"Addresses[{i}].ThreeLetterISORegionName",
                        "The country/region is not an ISO 3166-1 alpha-3 code.",
                    )
                )
    for i, contact in enumerate(body.get("Contacts") or []):
        value = contact.get("Value")
        if (
            contact.get("AddressTypeValue") == EMAIL_CONTACT_TYPE
            and isinstance(value, str)
            and value
            and not email_ok(value)
        ):
            problems.append(Problem("invalid_email", f"Contacts[{i}].Value", "The email address is not valid."))
    return problems


def _escaped(value: str) -> str:
    """Every character but letters and digits as a JSON ``\\uXXXX`` escape, as an HTML-safe encoder writes it."""
    return "".join(c if c.isascii() and c.isalnum() else f"\\u{ord(c):04X}" for c in value)


def _entities(value: str) -> str:
    return "".join(c if c.isascii() and c.isalnum() else f"&#{ord(c)};" for c in value)


def echo_input(body: Mapping[str, Any]) -> str:
    """The submitted personal data, quoted back the way a careless server might (echo_input_in_errors):
    the email raw, URL-encoded, JSON-escaped and as HTML entities; names, phone and address raw; the phone
    URL-encoded too. Empty when the body carries none of them."""
    parts: list[str] = []
    email = body.get("Email")
    if isinstance(email, str) and email:
        parts.append(
            f"Email '{email}' (query: email={quote(email, safe='')}, json: {_escaped(email)}, html: {_entities(email)})"
        )
    for key in ("Name", "FirstName", "MiddleName", "LastName", "Phone"):
        value = body.get(key)
        if isinstance(value, str) and value:
            parts.append(f"{key} '{value}'")
    phone = body.get("Phone")
    if isinstance(phone, str) and phone:
        parts.append(f"tel={quote(phone, safe='')}")
    for address in (body.get("Addresses") or [])[:1]:
        if isinstance(address, dict):
            for key in ("Street", "City", "ZipCode"):
                value = address.get(key)
                if isinstance(value, str) and value:
                    parts.append(f"{key} '{value}'")
    return f" Submitted: {'; '.join(parts)}." if parts else ""


def compose_full_address(address: Mapping[str, Any]) -> str:
    """``Street\\nCity, State ZipCode\\nThreeLetterISORegionName``, leaving out empty parts and lines."""
    city, region = (
        address.get("City") or "",
        " ".join(p for p in (address.get("State") or "", address.get("ZipCode") or "") if p),
    )
    middle = f"{city}, {region}" if city and region else city or region
    lines = (address.get("Street") or "", middle, address.get("ThreeLetterISORegionName") or "")
    return "\n".join(line for line in lines if line)


def compose_name(doc: Mapping[str, Any]) -> str:
    return " ".join(p for p in (doc.get("FirstName"), doc.get("MiddleName"), doc.get("LastName")) if p)


def _new_item(item: Mapping[str, Any], spec: Mapping[str, str], ids: Ids, keep_id: bool) -> dict[str, Any]:
    stored = complete(item, spec)
    if not (keep_id and stored["RecordId"]):
        stored["RecordId"] = ids.record_id()
    if spec is ADDRESS and not stored["FullAddress"]:
        stored["FullAddress"] = compose_full_address(stored)
    return stored


def build_customer(
    body: Mapping[str, Any], config: Mapping[str, Any], ids: Ids, *, seed: bool = False
) -> dict[str, Any]:
    """The complete stored Customer for a create (``seed``: keep the server-owned values that are given)."""
    doc = complete(body, CUSTOMER)
    keep = {k for k in SERVER_OWNED if seed and k in body and not is_empty(body[k])}
    doc["IsAsyncCustomer"] = (
        bool(body["IsAsyncCustomer"]) if seed and "IsAsyncCustomer" in body else bool(config["async_mode"])
    )
    if "AccountNumber" not in keep:
        doc["AccountNumber"] = ids.async_account_number() if doc["IsAsyncCustomer"] else ids.account_number()
    if "RecordId" not in keep:
        doc["RecordId"] = ids.record_id()
    if "PartyNumber" not in keep:
        doc["PartyNumber"] = ids.party_number()
    if "CreatedDateTime" not in keep:
        doc["CreatedDateTime"] = ids.now()
    if not doc["Name"]:
        doc["Name"] = compose_name(doc)
    for name, default in config["create_defaults"].items():
        if is_empty(body.get(name)):
            doc[name] = default
    doc["Addresses"] = [_new_item(a, ADDRESS, ids, seed) for a in doc["Addresses"]]
    doc["Contacts"] = [_new_item(c, CONTACT, ids, seed) for c in doc["Contacts"]]
    return doc


def _merge_items(
    stored: list[dict[str, Any]], sent: list[Mapping[str, Any]], spec: Mapping[str, str], collection: str, ids: Ids
) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Items with a known RecordId are updated in place (only the properties sent); the others are added."""
    merged = [dict(item) for item in stored]
    by_id = {item["RecordId"]: item for item in merged}
    problems: list[Problem] = []
    for i, item in enumerate(sent):
        record_id = item.get("RecordId")
        if is_empty(record_id):
            merged.append(_new_item(item, spec, ids, keep_id=False))
            continue
        target = by_id.get(record_id)
        if target is None:
            problems.append(
                Problem(
                    "object_not_found", f"{collection}[{i}].RecordId", f"No item of '{collection}' has this RecordId."
                )
            )
            continue
        for key, value in complete(item, spec).items():
            if key in item and key != "RecordId":
                target[key] = value
        if spec is ADDRESS and "FullAddress" not in item and any(k in item for k in ADDRESS_COMPONENTS):
            target["FullAddress"] = compose_full_address(target)
    return merged, problems


def apply_patch(stored: Mapping[str, Any], body: Mapping[str, Any], ids: Ids) -> tuple[dict[str, Any], list[Problem]]:
    """The stored Customer after a partial update; omitted properties keep their stored values."""
    doc = dict(stored)
    sent = complete(body, CUSTOMER)  # the sent values with nulls turned into defaults
    problems: list[Problem] = []
    for key in body:
        if key not in CUSTOMER or key in SERVER_OWNED:
            continue
        if key == "Addresses":
            doc[key], found = _merge_items(stored[key], body[key], ADDRESS, key, ids)
            problems += found
        elif key == "Contacts":
            doc[key], found = _merge_items(stored[key], body[key], CONTACT, key, ids)
            problems += found
        else:
            doc[key] = sent[key]
    if not doc["Name"]:
        doc["Name"] = compose_name(doc)
    return doc, problems


def primary_address(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    addresses = doc.get("Addresses") or []
    return next((a for a in addresses if a.get("IsPrimary")), addresses[0] if addresses else None)


def global_customer(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The search-result projection of a stored Customer."""
    address = primary_address(doc)
    out = {key: doc.get(key) for key in GLOBAL_CUSTOMER_KEYS if key in doc}
    out["FullName"] = doc["Name"]
    out["FullAddress"] = address["FullAddress"] if address else ""
    return {key: out[key] for key in GLOBAL_CUSTOMER_KEYS}
