"""The published models and the validator agree; the normalised event is a faithful queue message."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.core import contract, validation
from shared.core.contract import (
    CLEARABLE_ADDRESS_FIELDS,
    CLEARABLE_CUSTOMER_FIELDS,
    AddressIn,
    CustomerEvent,
    CustomerIn,
    NormalisedAddress,
    NormalisedEvent,
    Problem,
)


def test_validator_field_lists_match_the_published_models():
    # The event's own fields are listed by hand; the customer's and the address's come from the one
    # table of shared/core/fields.py, which tests/unit/test_fields.py checks against every use
    # (field lists, length limits, null semantics, groups, Commerce properties, docs).
    assert set(validation.EVENT_FIELDS) == set(CustomerEvent.model_fields)
    assert CLEARABLE_CUSTOMER_FIELDS <= set(CustomerIn.model_fields)
    assert CLEARABLE_ADDRESS_FIELDS <= set(AddressIn.model_fields)
    assert "email" not in CLEARABLE_CUSTOMER_FIELDS


def test_models_refuse_unknown_properties():
    with pytest.raises(ValidationError):
        CustomerEvent.model_validate(
            {"eventId": "e", "occurredAt": "2026-01-01T00:00:00Z", "customer": {"email": "a@example.com", "nick": "x"}}
        )


def test_model_accepts_a_valid_event_like_the_validator():
    raw = {
        "eventId": "e",
        "occurredAt": "2026-01-01T00:00:00Z",
        "customer": {"email": "a@example.com", "address": {"country": "US"}},
    }
    assert CustomerEvent.model_validate(raw).customer.address.country == "US"


def _event(**kw) -> NormalisedEvent:
    base = dict(
        event_id="e-1",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        email="Ada@example.com",
        email_match_key="ada@example.com",
        email_hash="h",
    )
    return NormalisedEvent(**{**base, **kw})


def test_normalised_event_is_frozen():
    with pytest.raises(ValidationError):
        _event().first_name = "x"  # type: ignore[misc]


def test_present_set_survives_json_and_distinguishes_null_from_absent():
    cleared = _event(middle_name=None, present=("middleName",))
    absent = _event()
    assert cleared != absent
    for e in (cleared, absent):
        back = NormalisedEvent.model_validate_json(e.to_json())
        assert back == e
        assert back.has("middleName") == e.has("middleName")


def test_present_is_canonical_so_equal_events_serialise_identically():
    a = _event(present=("phone", "firstName", "phone"))
    b = _event(present=("firstName", "phone"))
    assert a == b and a.to_json() == b.to_json()


def test_address_round_trip():
    address = NormalisedAddress(
        country="CAN",
        country_alpha2="CA",
        postal_code="K1A 0B1",
        county=None,
        present=("county", "postalCode", "country"),
    )
    e = _event(address=address, present=("address",))
    assert NormalisedEvent.model_validate_json(e.to_json()) == e


def test_problem_model_shape():
    p = Problem(
        title="Bad Request",
        status=400,
        correlationId="c",
        errors=[contract.EventError(index=0, eventId="e", pointer="/customer/email", message="m", code="c")],
    )
    dumped = p.model_dump()
    assert dumped["type"] == "about:blank" and dumped["errors"][0]["pointer"] == "/customer/email"
