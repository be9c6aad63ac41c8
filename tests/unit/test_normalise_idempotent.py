"""Normalisation is idempotent: normalise(normalise(x)) == normalise(x), field by field and for a
whole event sent again in its normalised form.

Inputs are drawn from the libraries' own data (country names of every CLDR locale, phonenumbers'
examples, libaddressinput's postal examples, ISO subdivisions), loosened the way senders write them
(case, spacing, punctuation, diacritics, prefixes), and from arbitrary text.
"""

from __future__ import annotations

import dataclasses
import json
import unicodedata
from datetime import UTC, datetime

import phonenumbers
import pycountry
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from shared.core.normalise.codes import normalise_currency, normalise_language
from shared.core.normalise.country import DATA_FILE, find_country, resolve_state
from shared.core.normalise.datetimes import parse_aware
from shared.core.normalise.email import normalise_email
from shared.core.normalise.folding import fold
from shared.core.normalise.invalid import Invalid
from shared.core.normalise.phone import normalise_extension, normalise_phone
from shared.core.normalise.postal import normalise_postal_code, rules_for
from shared.core.normalise.text import clean_text
from shared.core.settings import InvalidFieldPolicy
from shared.core.validation import validate_event
from tests.support.builders import mapping

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
KEY = b"idempotence-key-0123456789"
SETTINGS = dataclasses.replace(mapping(group="", currency=""), invalid_field_policy=InvalidFieldPolicy.DROP)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_DATA = json.loads(DATA_FILE.read_text("utf-8"))
ALPHA2 = sorted(_DATA["countries"])
# Real names (not folded keys): ISO names plus a sample of other spellings through the codes.
COUNTRY_VALUES = sorted(
    {c.name for c in pycountry.countries}
    | set(ALPHA2)
    | {v[0] for v in _DATA["countries"].values()}
    | {
        "Deutschland",
        "Österreich",
        "Espagne",
        "Nederland",
        "Suisse",
        "UK",
        "Holland",
        "Côte d’Ivoire",
        "Türkiye",
        "Россия",
        "日本",
        "Kongo",
        "Nga",
    }
)
SUBDIVISIONS = sorted((s.country_code, s.code, s.name) for s in pycountry.subdivisions)
PHONES = sorted(
    (region, phonenumbers.format_number(n, fmt))
    for region in sorted(phonenumbers.SUPPORTED_REGIONS)[::3]
    for n in [phonenumbers.example_number(region)]
    if n is not None
    for fmt in (
        phonenumbers.PhoneNumberFormat.NATIONAL,
        phonenumbers.PhoneNumberFormat.INTERNATIONAL,
        phonenumbers.PhoneNumberFormat.RFC3966,
    )
)
POSTAL = sorted((c, e) for c in ALPHA2 for e in rules_for(c).examples)


@st.composite
def loosened(draw, value: str) -> str:
    """``value`` as a sender might write it: case, spacing, hyphens, diacritics stripped."""
    text = value
    if draw(st.booleans()):
        text = draw(st.sampled_from([str.upper, str.lower, str.title, str.swapcase]))(text)
    if draw(st.booleans()):
        text = text.replace(" ", draw(st.sampled_from(["", "  ", "-", " - ", "\t"])))
    if draw(st.booleans()):
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    pad = draw(st.sampled_from(["", " ", "  "]))
    return pad + text + pad


def idempotent(normalise, value):
    """normalise(normalise(x)) == normalise(x), for an x normalise accepts."""
    try:
        once = normalise(value)
    except Invalid:
        return
    assert normalise(once) == once, (value, once)


any_text = st.text(st.characters(codec="utf-8"), max_size=40)


@PROPERTY
@given(st.one_of(st.sampled_from(COUNTRY_VALUES).flatmap(loosened), any_text))
def test_country(value):
    idempotent(lambda v: find_country(v).alpha3, value)


@PROPERTY
@given(
    st.sampled_from(SUBDIVISIONS).flatmap(
        lambda s: st.tuples(st.just(s[0]), st.one_of(loosened(s[2]), loosened(s[1]), st.just(s[1].split("-", 1)[1])))
    )
)
def test_state(pair):
    alpha2, value = pair
    country = find_country(alpha2)
    try:
        state_id, name, code = resolve_state(country, value, {})
    except Invalid:
        return
    assert resolve_state(country, state_id, {}) == (state_id, name, code)
    assert resolve_state(country, code, {}) == (state_id, name, code)


@PROPERTY
@given(
    st.sampled_from(PHONES).flatmap(
        lambda p: st.tuples(
            st.just(p[0]), st.sampled_from(["", " ext. 7", " x 42", ";ext=0012"]).map(lambda e: p[1] + e)
        )
    ),
    st.booleans(),
)
def test_phone(pair, hint):
    region, value = pair
    idempotent(lambda v: normalise_phone(v if isinstance(v, str) else v.text, region if hint else None), value)


@PROPERTY
@given(st.one_of(st.from_regex(r"\A(ext\.? ?|x|#)?[0-9]{1,10}\Z"), any_text))
def test_phone_extension(value):
    idempotent(normalise_extension, value)


@PROPERTY
@given(
    st.sampled_from(POSTAL).flatmap(lambda p: st.tuples(st.just(p[0]), loosened(p[1]))),
    st.sampled_from(["", "LV-", "AD", "FL-", "NL ", "-"]),
)
def test_postal_code(pair, prefix):
    alpha2, value = pair
    idempotent(lambda v: normalise_postal_code(alpha2, v), prefix + value)


@PROPERTY
@given(
    st.sampled_from(ALPHA2), st.text(st.sampled_from("ABCDEFGHJKLMNPRSTUVWXYZ0123456789 -"), min_size=1, max_size=12)
)
def test_postal_code_of_any_shape(alpha2, value):
    idempotent(lambda v: normalise_postal_code(alpha2, v), value)


@PROPERTY
@given(any_text)
def test_fold(value):
    assert fold(fold(value)) == fold(value)


@PROPERTY
@given(st.one_of(st.emails(), any_text))
def test_email(value):
    idempotent(lambda v: normalise_email(v)[0], value)


@PROPERTY
@given(any_text)
def test_text(value):
    idempotent(lambda v: clean_text(v, 60) if v is not None else None, value)


@PROPERTY
@given(st.one_of(st.sampled_from(["usd", " Eur ", "DKK", "xyz"]), any_text))
def test_currency(value):
    idempotent(normalise_currency, value)


@PROPERTY
@given(
    st.one_of(
        st.sampled_from(["en-US", "EN_us", "da", "zh-Hans", "nb-NO", "de-CH", "sr-Latn"]),
        st.from_regex(r"\A[a-zA-Z]{2,3}([-_][a-zA-Z0-9]{2,4})?\Z"),
    )
)
def test_language(value):
    idempotent(normalise_language, value)


@PROPERTY
@given(st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2026, 1, 1), timezones=st.timezones()))
def test_datetime(moment):
    once = parse_aware(moment.isoformat())
    assert parse_aware(once.isoformat()) == once


# --- a whole event sent again in its normalised form -------------------------------------------


def _contract(event) -> dict:
    """The normalised event written back as a contract event."""
    customer: dict = {"email": event.email}
    for attr, name in (
        ("first_name", "firstName"),
        ("middle_name", "middleName"),
        ("last_name", "lastName"),
        ("language", "language"),
        ("currency_code", "currencyCode"),
        ("is_opted_in_marketing", "isOptedInMarketing"),
    ):
        if event.has(name):
            customer[name] = getattr(event, attr)
    if event.has("phone"):
        customer["phone"] = event.phone
    if event.has("phoneExtension"):
        customer["phoneExtension"] = event.phone_extension
    if event.address is not None:
        a = event.address
        address = {"country": a.country}
        for attr, name in (("street", "street"), ("city", "city"), ("state", "state"), ("postal_code", "postalCode")):
            if a.has(name):
                address[name] = getattr(a, attr)
        customer["address"] = address
    return {"eventId": event.event_id, "occurredAt": event.occurred_at.isoformat(), "customer": customer}


@st.composite
def events(draw):
    alpha2 = draw(st.sampled_from([c for c, _ in POSTAL]))
    country_value = draw(
        st.sampled_from([alpha2, _DATA["countries"][alpha2][0], _DATA["countries"][alpha2][1]]).flatmap(loosened)
    )
    address = {"country": country_value, "street": draw(st.sampled_from(["1 Main St", " Hauptstraße 5 "]))}
    postal = [e for c, e in POSTAL if c == alpha2]
    if postal and draw(st.booleans()):
        address["postalCode"] = draw(st.sampled_from(postal).flatmap(loosened))
    states = [s for s in SUBDIVISIONS if s[0] == alpha2]
    if states and draw(st.booleans()):
        address["state"] = draw(st.sampled_from(states).flatmap(lambda s: loosened(s[2])))
    customer = {
        "email": draw(st.sampled_from(["ada@example.com", " Ada.Lovelace@EXAMPLE.com"])),
        "firstName": draw(st.sampled_from(["Ada", " José ", "𠮷田"])),
        "address": address,
    }
    region, phone = draw(st.sampled_from(PHONES))
    if draw(st.booleans()):
        customer["phone"] = phone + draw(st.sampled_from(["", " ext. 12", ";ext=7"]))
        if region != alpha2:
            customer["phone"] = phonenumbers.format_number(
                phonenumbers.parse(phone if not phone.startswith("tel:") else phone[4:], region),
                phonenumbers.PhoneNumberFormat.INTERNATIONAL,
            )
    if draw(st.booleans()):
        customer["language"] = draw(st.sampled_from(["en-US", "DA", "de_ch"]))
    return {"eventId": "evt-1", "occurredAt": "2026-11-26T11:00:00+01:00", "customer": customer}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events())
def test_an_event_sent_again_normalised_is_the_same_event(raw):
    first = validate_event(raw, now=NOW, settings=SETTINGS, hash_key=KEY)
    assume(first.event is not None)
    again = validate_event(_contract(first.event), now=NOW, settings=SETTINGS, hash_key=KEY)
    assert again.event == first.event
    assert again.warnings == []


@pytest.mark.parametrize(
    "raw",
    [
        {
            "email": "ada@example.com",
            "phone": "tel:+1-202-555-0142;ext=12",
            "address": {"country": "Vereinigte Staaten", "state": "washington", "postalCode": "98052 6399"},
        },
        {
            "email": "ada@example.com",
            "phone": "+356 2123 4567 x9",
            "address": {"country": "malta", "postalCode": "vlt1117"},
        },
        {"email": "ada@example.com", "address": {"country": "Lettland", "postalCode": "1050"}},
    ],
)
def test_examples_sent_again_normalised(raw):
    first = validate_event(
        {"eventId": "e", "occurredAt": "2026-11-26T11:00:00Z", "customer": raw},
        now=NOW,
        settings=SETTINGS,
        hash_key=KEY,
    )
    assert first.event is not None, first.errors
    again = validate_event(_contract(first.event), now=NOW, settings=SETTINGS, hash_key=KEY)
    assert again.event == first.event
