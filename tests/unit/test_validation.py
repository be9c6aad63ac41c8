"""validate_event / validate_batch / read_batch: every problem listed, no values leaked, no crash."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from shared.core.contract import NormalisedEvent
from shared.core.privacy import email_hash
from shared.core.settings import InvalidFieldPolicy
from shared.core.validation import EventResult, validate_batch
from shared.usecases.ingest import BatchRejected, read_batch
from tests.support.builders import KEY, NOW
from tests.support.validation import check, codes, event, mapping


def test_a_full_event_is_normalised():
    raw = event(
        firstName=" Ada ",
        lastName="Lovelace",
        phone="(202) 555-0142",
        language="en-US",
        currencyCode="usd",
        isOptedInMarketing=True,
        customerAccount="C0001",
        createdDateTime="2026-01-01T00:00:00+02:00",
        address={
            "street": "1 Example Rd",
            "city": "Seattle",
            "state": "washington",
            "postalCode": "98101",
            "country": "USA",
        },
    )
    result = check(raw)
    assert result.errors == [] and result.event_id == "evt-1"
    e = result.event
    assert (e.first_name, e.last_name, e.phone, e.language, e.currency_code) == (
        "Ada",
        "Lovelace",
        "+12025550142",
        "en-us",
        "USD",
    )
    assert e.email_hash == email_hash("ada@example.com", KEY)
    assert e.occurred_at == datetime(2026, 11, 26, 11, tzinfo=UTC)
    assert e.created_date_time == datetime(2025, 12, 31, 22, tzinfo=UTC)
    assert (e.address.country, e.address.state, e.address.state_name, e.address.postal_code) == (
        "USA",
        "WA",
        "Washington",
        "98101",
    )


def test_absent_and_null_are_kept_apart():
    e = check(event(middleName=None, phone=None, firstName="Ada")).event
    assert e.has("middleName") and e.middle_name is None
    assert e.has("phone") and e.phone is None
    assert e.has("firstName") and not e.has("lastName")


def test_email_is_normalised_and_hashed_by_match_key():
    e = check(event(email="  Ada.Lovelace+News@Example.COM ")).event
    assert e.email == "Ada.Lovelace+News@example.com"
    assert e.email_match_key == "ada.lovelace+news@example.com"
    assert e.email_hash == email_hash("ada.lovelace+news@example.com", KEY)


def test_previous_email_is_validated_and_hashed():
    current = event()["customer"]["email"]
    e = check(event(previousEmail=current.upper())).event
    assert e.previous_email_match_key == current.lower()
    assert e.previous_email_hash == email_hash(current.lower(), KEY)
    assert codes(check(event(previousEmail="not an email"))) == {"/customer/previousEmail": "invalid_email"}


def test_an_email_change_is_accepted_and_carries_both_hashes():
    e = check(event(previousEmail="Old@Example.com")).event
    assert e.previous_email == "Old@example.com" and e.previous_email_match_key == "old@example.com"
    assert e.previous_email_hash == email_hash("old@example.com", KEY) != e.email_hash


def test_every_problem_is_listed_with_pointer_and_code():
    raw = {
        "eventId": "",
        "occurredAt": "2026-11-26T11:00:00",
        "extra": 1,
        "customer": {
            "email": "nope",
            "firstName": None,
            "phone": "+1 555",
            "language": "klingon!",
            "address": {"country": "CA", "postalCode": "12345", "state": "Texas", "street": "x" * 251},
        },
    }
    assert codes(check(raw)) == {
        "/eventId": "length",
        "/occurredAt": "missing_offset",
        "/extra": "unknown_property",
        "/customer/email": "invalid_email",
        "/customer/firstName": "not_clearable",
        "/customer/phone": "invalid_phone",
        "/customer/language": "invalid_language",
        "/customer/address/postalCode": "invalid_postal_code",
        "/customer/address/state": "invalid_state",
        "/customer/address/street": "too_long",
    }


def test_required_fields():
    assert codes(check({"customer": {}})) == {
        "/eventId": "required",
        "/occurredAt": "required",
        "/customer/email": "required",
    }
    assert codes(check({"eventId": "e", "occurredAt": "2026-11-26T11:00:00Z"})) == {"/customer": "required"}
    assert codes(check(event(email=None))) == {"/customer/email": "required"}


def test_messages_never_contain_the_submitted_email_or_phone():
    secret_email, secret_phone = "secret.person@@example.com", "+1 555 867 5309 99"
    result = check(event(email=secret_email, phone=secret_phone, previousEmail="x@@y"))
    assert len(result.errors) == 3
    for problem in result.errors:
        assert "secret" not in problem.message and "867" not in problem.message
        assert "secret" not in problem.pointer and "867" not in problem.pointer


def test_drop_policy_leaves_invalid_optional_fields_out_with_warnings():
    raw = event(
        firstName="Ada",
        phone="+1 555",
        language="nope!",
        address={"street": "1 Main", "postalCode": "12", "country": "US"},
    )
    result = check(raw, settings=mapping(InvalidFieldPolicy.DROP))
    assert result.errors == []
    assert {w.pointer for w in result.warnings} == {
        "/customer/phone",
        "/customer/language",
        "/customer/address/postalCode",
    }
    e = result.event
    assert e.first_name == "Ada" and not e.has("phone") and not e.has("language")
    assert e.address.street == "1 Main" and not e.address.has("postalCode")


def test_drop_policy_never_drops_required_fields():
    result = check(event(email="bad"), settings=mapping(InvalidFieldPolicy.DROP))
    assert codes(result) == {"/customer/email": "invalid_email"} and result.event is None


def test_drop_policy_drops_an_address_whose_country_is_invalid():
    result = check(
        event(address={"street": "1 Main", "country": "Atlantis"}), settings=mapping(InvalidFieldPolicy.DROP)
    )
    assert result.event is not None and result.event.address is None
    assert not result.event.has("address")


def test_unknown_properties_are_always_refused():
    result = check(
        event(nickname="x", address={"country": "US", "zip": "1"}), settings=mapping(InvalidFieldPolicy.DROP)
    )
    assert codes(result) == {"/customer/nickname": "unknown_property", "/customer/address/zip": "unknown_property"}


def test_pointer_tokens_are_escaped():
    assert codes(check({**event(), "a/b~c": 1})) == {"/a~1b~0c": "unknown_property"}


def test_occurred_at_in_the_future():
    soon = (NOW + timedelta(minutes=4)).isoformat()
    late = (NOW + timedelta(minutes=6)).isoformat()
    assert check({**event(), "occurredAt": soon}).ok
    assert codes(check({**event(), "occurredAt": late})) == {"/occurredAt": "in_future"}


def test_phone_region_comes_from_address_country_then_default_country():
    gb = event(phone="020 7946 0123", address={"street": "1 Example St", "country": "GB"})
    assert check(gb).event.phone == "+442079460123"
    assert check(event(phone="(202) 555-0142")).event.phone == "+12025550142"
    no_default = check(event(phone="(202) 555-0142"), settings=mapping(default_country=""))
    assert codes(no_default) == {"/customer/phone": "phone_region_unknown"}
    assert check(event(phone="+49 30 901820")).event.phone == "+4930901820"


def test_state_override_from_settings_is_applied():
    raw = event(address={"country": "GB", "state": "GB-ENG"})
    result = check(raw, settings=mapping(overrides={"GBR": {"GB-ENG": "EN"}}))
    assert result.event.address.state == "EN" and result.event.address.state_name == "England"


def test_not_clearable_and_clearable_nulls():
    assert codes(check(event(address=None))) == {"/customer/address": "not_clearable"}
    assert codes(check(event(language=None))) == {"/customer/language": "not_clearable"}
    e = check(event(address={"country": "US", "county": None, "state": None, "postalCode": None})).event
    assert e.address.has("county") and e.address.county is None
    assert e.address.has("postalCode") and e.address.has("state")
    assert codes(check(event(address={"country": "US", "city": None}))) == {"/customer/address/city": "not_clearable"}


def test_null_metadata_means_absent():
    e = check({**event(customerAccount=None, createdDateTime=None), "source": None}).event
    assert e.source is None and not e.has("customerAccount")


def test_is_primary_false_is_unsupported():
    assert codes(check(event(address={"country": "US", "isPrimary": False}))) == {
        "/customer/address/isPrimary": "unsupported"
    }
    assert check(event(address={"country": "US", "isPrimary": True})).ok
    both = check(event(address={"country": "Atlantis", "isPrimary": False}))
    assert set(codes(both)) == {"/customer/address/isPrimary", "/customer/address/country"}
    dropped = check(event(address={"country": "US", "isPrimary": False}), settings=mapping(InvalidFieldPolicy.DROP))
    assert dropped.ok and dropped.event.address is None


@pytest.mark.parametrize("spec, ok", [("1.0", True), ("2.0", False), (1.0, False)])
def test_spec_version(spec, ok):
    assert check({**event(), "specVersion": spec}).ok is ok


def test_event_type_is_checked():
    assert codes(check({**event(), "eventType": "customer.deleted"})) == {"/eventType": "invalid_event_type"}
    assert check({k: v for k, v in event().items() if k != "eventType"}).event.event_type is None


def test_normalised_event_round_trips_through_json():
    e = check(
        event(
            firstName="𠮷田",
            middleName=None,
            lastName="😀",
            email="o'brien%x/y+z@example.com",
            address={"country": "CA", "postalCode": "k1a0b1", "county": None},
        )
    ).event
    for dumped in (e.to_json(), e.model_dump_json()):
        assert NormalisedEvent.model_validate_json(dumped) == e
    assert json.loads(e.to_json())["firstName"] == "𠮷田"
    assert e.email == "o'brien%x/y+z@example.com"


def test_batch_refuses_later_duplicates_and_keeps_order():
    items = [event(), {**event(), "customer": {"email": "b@example.com"}}, {**event(), "eventId": "evt-2"}]
    results = validate_batch(items, now=NOW, settings=mapping(), hash_key=KEY)
    assert [r.index for r in results] == [0, 1, 2]
    assert [r.ok for r in results] == [True, False, True]
    assert codes(results[1]) == {"/eventId": "duplicate_event_id"}


def test_non_object_event():
    result = check([1, 2])
    assert codes(result) == {"": "type"} and result.event_id is None


# --- read_batch -------------------------------------------------------------------------------


def read(body: bytes, content_type: str | None = "application/json", **kw):
    return read_batch(body, content_type, max_events=kw.get("max_events", 3), max_bytes=kw.get("max_bytes", 10_000))


def test_read_batch_shapes():
    one = {"eventId": "a"}
    assert read(json.dumps(one).encode()) == [one]
    assert read(json.dumps([one, one]).encode()) == [one, one]
    assert read(json.dumps({"events": [one]}).encode()) == [one]


@pytest.mark.parametrize(
    "content_type, ok",
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON;charset=UTF-8", True),
        ("application/cloudevents-batch+json", True),
        ("text/plain", False),
        (None, False),
        ("", False),
        ("application/json; charset=latin-1", False),
        ("application/xml", False),
    ],
)
def test_read_batch_content_type(content_type, ok):
    if ok:
        assert read(b"[{}]", content_type) == [{}]
    else:
        with pytest.raises(BatchRejected) as info:
            read(b"[{}]", content_type)
        assert info.value.status == 415


@pytest.mark.parametrize(
    "body, status",
    [
        (b"x" * 20_001, 413),
        (b"[{}, {}, {}, {}]", 413),
        (b"\xff\xfe[]", 400),
        (b"{not json", 400),
        (b"[]", 400),
        (b'{"events": []}', 400),
        (b'{"events": {}}', 400),
        (b'{"events": [{}], "more": 1}', 400),
        (b'"a string"', 400),
        (b"42", 400),
        (b"null", 400),
        (b"[NaN]", 400),
        (b"[" * 33 + b"]" * 33, 400),
        (b"[" * 5000 + b"]" * 5000, 400),
    ],
)
def test_read_batch_refusals(body, status):
    with pytest.raises(BatchRejected) as info:
        read(body, max_bytes=20_000)
    assert info.value.status == status


def test_brackets_inside_strings_do_not_count_as_depth():
    body = json.dumps([{"eventId": "[" * 100 + '\\"{' * 50}]).encode()
    assert len(read(body)) == 1


def test_depth_limit_allows_32_levels():
    items = read(b"[" * 32 + b"]" * 32)  # the outer array is the batch: one item, 31 deep
    assert len(items) == 1 and isinstance(items[0], list)


# --- fuzz: arbitrary JSON in, EventResult out -------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
_field_values = st.none() | st.booleans() | st.integers() | st.text(max_size=40) | _json
_address = st.fixed_dictionaries(
    {},
    optional={
        k: _field_values | st.sampled_from(["US", "CA", "GB", "Texas", "WA", "k1a0b1", "98052", "", "XX"])
        for k in ("name", "street", "streetNumber", "city", "county", "state", "postalCode", "country", "isPrimary")
    },
)
_customer = st.fixed_dictionaries(
    {},
    optional={
        "email": _field_values | st.sampled_from(["a@example.com", "A+b@Example.com", "bad@", ""]),
        "previousEmail": _field_values,
        "firstName": _field_values,
        "middleName": _field_values,
        "lastName": _field_values,
        "isOptedInMarketing": _field_values,
        "language": _field_values,
        "currencyCode": _field_values,
        "customerGroup": _field_values,
        "customerAccount": _field_values,
        "createdDateTime": _field_values,
        "phone": _field_values | st.sampled_from(["+12025550142", "(202) 555-0142", "+4930901820"]),
        "address": _address | _field_values,
    },
)
_event = st.fixed_dictionaries(
    {},
    optional={
        "specVersion": _field_values | st.just("1.0"),
        "eventId": _field_values | st.text(min_size=1, max_size=10),
        "eventType": _field_values | st.sampled_from(["customer.created", "customer.updated"]),
        "occurredAt": _field_values | st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00"]),
        "source": _field_values,
        "customer": _customer | _field_values,
    },
)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_json | _event, policy=st.sampled_from(list(InvalidFieldPolicy)))
def test_fuzz_any_json_gives_an_event_result(raw, policy):
    result = check(raw, settings=mapping(policy))
    assert isinstance(result, EventResult)
    assert (result.event is None) == bool(result.errors)
    assert all(p.code != "internal_error" for p in result.errors)
    if result.event is not None:
        assert NormalisedEvent.model_validate_json(result.event.to_json()) == result.event


@hsettings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=200) | _json.map(lambda v: json.dumps(v).encode()))
def test_fuzz_read_batch_only_raises_batch_rejected(body):
    try:
        items = read(body, max_events=10)
    except BatchRejected as refused:
        assert refused.status in (400, 413)
    else:
        assert isinstance(items, list) and items
