"""The normalisers, one kind of value at a time."""

from __future__ import annotations

from datetime import timezone

import pytest

from shared.normalise.codes import normalise_currency, normalise_language
from shared.normalise.country import find_country, resolve_state
from shared.normalise.datetimes import parse_aware
from shared.normalise.email import normalise_email
from shared.normalise.errors import Invalid
from shared.normalise.phone import normalise_phone
from shared.normalise.postal import normalise_postal_code, rules_for
from shared.normalise.text import clean_text, printable, utf16_length


# --- email ------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, email", [
    ("  ada@example.com ", "ada@example.com"),
    ("Ada.Lovelace@EXAMPLE.com", "Ada.Lovelace@example.com"),
    ("o'brien@example.com", "o'brien@example.com"),
    ("100%sure@example.com", "100%sure@example.com"),
    ("a/b@example.com", "a/b@example.com"),
    ("ada+news@example.com", "ada+news@example.com"),
    ("user@bücher.example", "user@xn--bcher-kva.example"),
])
def test_email_keeps_local_part_and_asciifies_domain(raw, email):
    normalised, key = normalise_email(raw)
    assert normalised == email
    assert key == email.lower()


def test_email_match_key_does_no_plus_or_dot_folding():
    assert normalise_email("a.b+x@example.com")[1] != normalise_email("ab@example.com")[1]


def test_email_is_nfc_normalised():
    decomposed = "jose\u0301@example.com"
    assert normalise_email(decomposed)[0] == "jos\u00e9@example.com"


@pytest.mark.parametrize("raw", ["", "   ", "no-at-sign", "a@@example.com", "a@", "@example.com",
                                 "a b@example.com", "a@example..com", "Ada <ada@example.com>",
                                 "a\x00b@example.com", 42, None, "x" * 70 + "@example.com"])
def test_invalid_emails_are_refused_without_quoting_them(raw):
    with pytest.raises(Invalid) as info:
        normalise_email(raw)
    if isinstance(raw, str) and raw.strip():
        assert raw.strip() not in info.value.message


# --- phone ------------------------------------------------------------------------------------

def test_national_number_uses_the_region_hint():
    assert normalise_phone("(202) 555-0142", "US") == "+12025550142"
    assert normalise_phone("020 7946 0123", "GB") == "+442079460123"


def test_plus_numbers_are_international_whatever_the_hint():
    # The peers' bug: a US-only normaliser stamping +49 numbers as US.
    assert normalise_phone("+49 30 901820", "US") == "+4930901820"
    assert normalise_phone("+44 20 7946 0123", "US") == "+442079460123"


def test_national_number_without_any_region_is_an_error_not_a_guess():
    with pytest.raises(Invalid) as info:
        normalise_phone("202 555 0142", None)
    assert info.value.code == "phone_region_unknown"


@pytest.mark.parametrize("raw, region", [
    ("+1 555 0100", "US"),  # too short
    ("(202) 555-0142", "GB"),  # a US national number is not valid in GB
    ("1-800-FLOWERS", "US"),  # letters are never converted
    ("+1 202 555 0142 ext. 12", "US"),
    ("+999 1234", None),
    ("12", "US"),
    ("", "US"),
    (2025550142, "US"),
])
def test_invalid_phones_are_errors(raw, region):
    with pytest.raises(Invalid):
        normalise_phone(raw, region)


# --- country and state ------------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["US", "us", "USA", "usa", "United States", "united  states"])
def test_country_from_codes_and_names(raw):
    assert find_country(raw).alpha3 == "USA"


@pytest.mark.parametrize("raw", ["Narnia", "U", "", "XX", 1])
def test_unknown_countries(raw):
    with pytest.raises(Invalid):
        find_country(raw)


@pytest.mark.parametrize("raw", ["WA", "wa", "US-WA", "us-wa", "Washington", "WASHINGTON"])
def test_state_by_code_or_name(raw):
    assert resolve_state(find_country("US"), raw, {}) == ("WA", "Washington", "US-WA")


def test_state_override_from_settings():
    overrides = {"GBR": {"GB-ENG": "EN"}}
    assert resolve_state(find_country("GB"), "England", overrides) == ("EN", "England", "GB-ENG")
    assert resolve_state(find_country("GB"), "Wales", overrides)[0] == "WLS"


def test_unknown_state_of_a_country_with_subdivisions():
    with pytest.raises(Invalid):
        resolve_state(find_country("US"), "Ontario", {})


def test_state_for_country_without_subdivisions_is_kept():
    # Pick a country pycountry lists without subdivisions, whatever the data version.
    from shared.normalise.country import COUNTRIES, SUBDIVISIONS
    country = next(c for c in COUNTRIES.values() if c.alpha2 not in SUBDIVISIONS)
    assert resolve_state(country, "North", {}) == ("North", None, None)


# --- postal codes -----------------------------------------------------------------------------

@pytest.mark.parametrize("alpha2, raw, expected", [
    ("CA", "k1a0b1", "K1A 0B1"),
    ("CA", "K1A 0B1", "K1A 0B1"),
    ("US", "98052", "98052"),
    ("US", "98052-6399", "98052-6399"),
    ("US", "98052 6399", "98052-6399"),
    ("GB", "sw1a1aa", "SW1A 1AA"),
    ("GB", " SW1A  1AA ", "SW1A 1AA"),
    ("NL", "1234ab", "1234 AB"),
    ("JP", "1540023", "154-0023"),
    ("DE", "10115", "10115"),
])
def test_postal_codes_in_canonical_form(alpha2, raw, expected):
    assert normalise_postal_code(alpha2, raw) == expected


@pytest.mark.parametrize("alpha2, raw", [("CA", "12345"), ("US", "9805"), ("US", "ABCDE"),
                                         ("GB", "12345"), ("DE", "1011"), ("US", 98052)])
def test_invalid_postal_codes(alpha2, raw):
    with pytest.raises(Invalid):
        normalise_postal_code(alpha2, raw)


def test_postal_rules_are_cached_per_country():
    assert rules_for("CA") is rules_for("CA")


# --- codes ------------------------------------------------------------------------------------

def test_currency():
    assert normalise_currency(" usd ") == "USD"
    with pytest.raises(Invalid):
        normalise_currency("XYZ")


@pytest.mark.parametrize("raw, expected", [("en-US", "en-us"), ("EN_us", "en-us"), ("da", "da"),
                                           ("zh-Hans", "zh-hans"), ("nb-NO", "nb-no")])
def test_language(raw, expected):
    assert normalise_language(raw) == expected


@pytest.mark.parametrize("raw", ["english", "xx-zz-yy-qq", "", "en us", 5, "e"])
def test_invalid_language(raw):
    with pytest.raises(Invalid):
        normalise_language(raw)


# --- text and dates ---------------------------------------------------------------------------

def test_astral_characters_round_trip_and_count_as_two_utf16_units():
    assert clean_text(" 𠮷田 😀 ", 25) == "𠮷田 😀"
    assert utf16_length("𠮷") == 2
    with pytest.raises(Invalid):
        clean_text("𠮷" * 13, 25)  # 13 characters, 26 UTF-16 units


def test_zero_width_joiner_emoji_is_allowed_but_controls_are_not():
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467"
    assert clean_text(family, 25) == family
    for bad in ("a\x00b", "a\nb", "a\x7fb", "a\x85b", "a\ud800b"):
        with pytest.raises(Invalid):
            clean_text(bad, 25)


def test_empty_text_is_none():
    assert clean_text("   ", 5) is None


def test_printable_identifier():
    assert printable("evt 1", 10) == "evt 1"
    for bad in ("", "x" * 11, "a\tb", 3):
        with pytest.raises(Invalid):
            printable(bad, 10)


def test_parse_aware_converts_to_utc_and_requires_an_offset():
    parsed = parse_aware("2026-01-15T10:30:00+01:00")
    assert parsed.tzinfo is timezone.utc and parsed.hour == 9
    assert parse_aware("2026-01-15T09:30:00Z").hour == 9
    for bad in ("2026-01-15T09:30:00", "2026-01-15", "yesterday", 1700000000):
        with pytest.raises(Invalid):
            parse_aware(bad)
