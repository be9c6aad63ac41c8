"""Events and ledger entries as the product makes them: NormalisedEvents from the real validator (so
hashes, present lists and UTC are genuine), the mapping settings they are validated with, a customer
with every field, and ledger entries of known content."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.core.commerce_bodies.groups import group_hashes
from shared.core.ledger_rules import Lease, LedgerEntry, OrderKey, State, learn
from shared.core.settings import InvalidFieldPolicy, MappingSettings
from shared.core.validation import validate_event

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
T0 = datetime(2026, 11, 26, 10, tzinfo=UTC)
KEY = b"test-hash-key-0123456789"


def mapping(group="30", currency="USD", language="en-us", address_type=7) -> MappingSettings:
    return MappingSettings(
        default_customer_type=1,
        default_group=group,
        default_currency=currency,
        default_language=language,
        address_type=address_type,
        default_country="US",
        state_id_overrides={},
        invalid_field_policy=InvalidFieldPolicy.REJECT,
    )


def normalised(**customer):
    raw = {
        "eventId": "evt-1",
        "occurredAt": "2026-11-26T11:00:00Z",
        "customer": {"email": "ada@example.com", **customer},
    }
    result = validate_event(raw, now=NOW, settings=mapping(), hash_key=KEY)
    assert result.errors == []
    return result.event


def event(event_id: str = "evt-1", at: datetime = T0, email: str = "ada@example.com", **customer):
    """A real NormalisedEvent, made by the validator (so hashes, present lists and UTC are genuine)."""
    raw = {"eventId": event_id, "occurredAt": at.isoformat(), "customer": {"email": email, **customer}}
    result = validate_event(raw, now=NOW, settings=mapping(), hash_key=KEY)
    assert result.errors == [], result.errors
    return result.event


FULL = dict(
    firstName="Ada",
    middleName="King",
    lastName="Lovelace",
    phone="(202) 555-0142",
    isOptedInMarketing=True,
    language="en-GB",
    currencyCode="GBP",
    customerGroup="40",
    customerAccount="C-9",
    createdDateTime="2026-01-01T00:00:00Z",
    address={
        "name": "Home",
        "street": "Example Avenue",
        "streetNumber": "12",
        "city": "Seattle",
        "county": "KING",
        "state": "WA",
        "postalCode": "98101",
        "country": "US",
    },
)


def full_entry() -> LedgerEntry:
    return LedgerEntry(
        "a" * 64,
        state=State.UNCERTAIN,
        account_number="004075",
        is_async=True,
        address_record_id="5637144577",
        email_contact_record_id="5637144578",
        phone_contact_record_id="5637144579",
        last=OrderKey(datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC), "évt/1 ?#"),
        recent_event_ids=("a", "évt/1 ?#", "c" * 128),
        hashes={"email": "0" * 32, "name": "1" * 32},
        empty_fields=frozenset({"MiddleName", "ZipCode"}),
        lease=Lease("worker-1", NOW + timedelta(seconds=120), OrderKey(T0 + timedelta(minutes=1), "evt-2")),
        moved_to="b" * 64,
        moved_from="c" * 64,
    )


def known_entry(customer: dict, ev, **overrides) -> LedgerEntry:
    """The ledger entry after ``ev`` created ``customer``: ids and empty parts learned from it."""
    fields = dict(
        state=State.APPLIED, account_number=customer["AccountNumber"], hashes=group_hashes(ev, KEY), **learn(customer)
    )
    fields.update(overrides)
    return LedgerEntry(ev.email_hash, **fields)
