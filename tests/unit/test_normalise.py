"""The normalisers, one kind of value at a time."""

from __future__ import annotations

from datetime import UTC

import pytest

from shared.core.normalise.codes import normalise_currency, normalise_language
from shared.core.normalise.country import find_country, resolve_state
from shared.core.normalise.datetimes import parse_aware
from shared.core.normalise.email import normalise_email
from shared.core.normalise.invalid import Invalid
from shared.core.normalise.phone import Phone, normalise_extension, normalise_phone
from shared.core.normalise.postal import normalise_postal_code, rules_for
from shared.core.normalise.text import clean_text, printable, utf16_length

# --- email ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, email",
    [
        ("  ada@example.com ", "ada@example.com"),
        ("Ada.Lovelace@EXAMPLE.com", "Ada.Lovelace@example.com"),
        ("o'brien@example.com", "o'brien@example.com"),
        ("100%sure@example.com", "100%sure@example.com"),
        ("a/b@example.com", "a/b@example.com"),
        ("ada+news@example.com", "ada+news@example.com"),
        ("user@bücher.example", "user@xn--bcher-kva.example"),
    ],
)
def test_email_keeps_local_part_and_asciifies_domain(raw, email):
    normalised, key = normalise_email(raw)
    assert normalised == email
    assert key == email.lower()


def test_email_match_key_does_no_plus_or_dot_folding():
    assert normalise_email("a.b+x@example.com")[1] != normalise_email("ab@example.com")[1]


def test_email_is_nfc_normalised():
    decomposed = "jose\u0301@example.com"
    assert normalise_email(decomposed)[0] == "jos\u00e9@example.com"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "no-at-sign",
        "a@@example.com",
        "a@",
        "@example.com",
        "a b@example.com",
        "a@example..com",
        "Ada <ada@example.com>",
        "a\x00b@example.com",
        42,
        None,
        "x" * 70 + "@example.com",
    ],
)
def test_invalid_emails_are_refused_without_quoting_them(raw):
    with pytest.raises(Invalid) as info:
        normalise_email(raw)
    if isinstance(raw, str) and raw.strip():
        assert raw.strip() not in info.value.message


# --- phone ------------------------------------------------------------------------------------


def test_national_number_uses_the_region_hint():
    assert normalise_phone("(202) 555-0142", "US") == Phone("+12025550142")
    assert normalise_phone("020 7946 0123", "GB") == Phone("+442079460123")


def test_plus_numbers_are_international_whatever_the_hint():
    # The peers' bug: a US-only normaliser stamping +49 numbers as US.
    assert normalise_phone("+49 30 901820", "US").number == "+4930901820"
    assert normalise_phone("+44 20 7946 0123", "US").number == "+442079460123"


def test_international_prefixes_are_read_by_the_region():
    assert normalise_phone("0049 30 901820", "DE").number == "+4930901820"
    assert normalise_phone("011 44 20 7946 0123", "US").number == "+442079460123"


def test_national_number_without_any_region_is_an_error_not_a_guess():
    with pytest.raises(Invalid) as info:
        normalise_phone("202 555 0142", None)
    assert info.value.code == "phone_region_unknown"


@pytest.mark.parametrize(
    "raw, region",
    [
        ("+1 202 555 0142 ext. 12", None),
        ("+1 202 555 0142 ext 12", None),
        ("+1 202 555 0142 EXT.12", None),
        ("+1 202 555 0142 extension 12", None),
        ("+1 202 555 0142 x12", None),
        ("+1 202 555 0142 x 12", None),
        ("(202) 555-0142 #12", "US"),
        ("+1 202 555 0142;ext=12", None),
        ("tel:+1-202-555-0142;ext=12", None),
        ("+1 202 555 0142, ext. 12", None),
    ],
)
def test_an_extension_is_returned_apart(raw, region):
    assert normalise_phone(raw, region) == Phone("+12025550142", "12")


@pytest.mark.parametrize(
    "raw, region",
    [
        ("tel:+1-202-555-0142", None),
        ("TEL:+1.202.555.0142", None),
        ("tel:555-0142;phone-context=+1-202", None),  # a local number with a global prefix
        ("tel:(202) 555-0142;phone-context=example.com", "US"),  # a domain context: read by the hint
        ("tel:+1-202-555-0142;isub=1411", None),  # parameters Commerce has no place for are ignored
    ],
)
def test_tel_uris(raw, region):
    assert normalise_phone(raw, region) == Phone("+12025550142")


def test_a_tel_uri_local_number_needs_a_region_like_any_national_number():
    with pytest.raises(Invalid) as info:
        normalise_phone("tel:555-0142;phone-context=example.com", None)
    assert info.value.code == "phone_region_unknown"


@pytest.mark.parametrize(
    "raw, region",
    [
        ("+1 555 0100", "US"),  # too short
        ("(202) 555-0142", "GB"),  # a US national number is not valid in GB
        ("1-800-FLOWERS", "US"),  # letters are never converted
        ("tel:1-800-FLOWERS", "US"),
        ("1-800-FLOWERS ext. 12", "US"),
        ("+1 202 555 0142 ext. 12345678901", None),  # longer than Commerce's extension
        ("+1 202 555 0142;ext=12 ext. 13", None),  # two extensions
        ("ext. 12", "US"),  # an extension without a number
        ("+999 1234", None),
        ("12", "US"),
        ("", "US"),
        (2025550142, "US"),
    ],
)
def test_invalid_phones_are_errors(raw, region):
    with pytest.raises(Invalid):
        normalise_phone(raw, region)


@pytest.mark.parametrize(
    "raw, expected", [("12", "12"), (" ext. 12 ", "12"), ("x7", "7"), ("#0042", "0042"), (";ext=99", "99")]
)
def test_a_phone_extension_on_its_own(raw, expected):
    assert normalise_extension(raw) == expected


@pytest.mark.parametrize("raw", ["twelve", "12a", "1 2", "12345678901", "", 12, "١٢"])
def test_invalid_phone_extensions(raw):
    with pytest.raises(Invalid):
        normalise_extension(raw)


# --- country and state ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "US",
        "us",
        "USA",
        "usa",
        "United States",
        "united  states",
        "United States of America",
        "Vereinigte Staaten",
        "États-Unis",
        "Estados Unidos",
        "EE. UU.",
        "the United States",
        "アメリカ合衆国",
    ],
)
def test_country_from_codes_and_names(raw):
    assert find_country(raw).alpha3 == "USA"


@pytest.mark.parametrize(
    "raw, alpha3",
    [
        # the shop's language
        ("Deutschland", "DEU"),
        ("Österreich", "AUT"),
        ("osterreich", "AUT"),
        ("Oesterreich", "AUT"),
        ("Espagne", "ESP"),
        ("Nederland", "NLD"),
        ("Suisse", "CHE"),
        ("Schweiz", "CHE"),
        ("Danmark", "DNK"),
        ("Sverige", "SWE"),
        ("Polska", "POL"),
        ("Italia", "ITA"),
        ("Россия", "RUS"),
        ("Türkei", "TUR"),
        ("Tuerkei", "TUR"),
        ("Færøerne", "FRO"),
        ("Faeroerne", "FRO"),
        # everyday English names, alternatives and former names
        ("UK", "GBR"),
        ("Great Britain", "GBR"),
        ("Holland", "NLD"),
        ("The Netherlands", "NLD"),
        ("Russia", "RUS"),
        ("Turkey", "TUR"),
        ("Ivory Coast", "CIV"),
        ("Cote d'Ivoire", "CIV"),
        ("CÔTE D’IVOIRE", "CIV"),
        ("Cape Verde", "CPV"),
        ("Cabo Verde", "CPV"),
        ("Swaziland", "SWZ"),
        ("Macedonia", "MKD"),
        ("Czech Republic", "CZE"),
        ("Burma", "MMR"),
        ("Zaire", "COD"),
        ("East Timor", "TLS"),
        ("UAE", "ARE"),
        ("South Korea", "KOR"),
        ("Malawi", "MWI"),
        # ma Lawi is Toki Pona's Latvia: told apart from Malawi by its spacing only
        ("ma Lawi", "LVA"),
    ],
)
def test_country_names_as_senders_write_them(raw, alpha3):
    assert find_country(raw).alpha3 == alpha3


@pytest.mark.parametrize(
    "raw, candidates", [("Kongo", ["COD", "COG"]), ("toga", ["TGO", "TON"]), ("Nga", ["NGA", "RUS"])]
)
def test_a_name_two_countries_share_is_refused_naming_both(raw, candidates):
    with pytest.raises(Invalid) as info:
        find_country(raw)
    assert info.value.code == "ambiguous_country"
    assert all(c in info.value.message for c in candidates) and raw not in info.value.message


def test_codes_keep_their_iso_meaning():
    assert find_country("NGA").alpha3 == "NGA" and find_country("nga").alpha3 == "NGA"
    assert find_country("RU").alpha3 == "RUS"  # although Spanish abbreviates Reino Unido "RU"
    assert find_country("R. U.").alpha3 == "GBR"  # which, written with dots, is no code


@pytest.mark.parametrize("raw", ["Narnia", "U", "", "XX", 1, "Kosovo", "European Union", "x" * 101])
def test_unknown_countries(raw):
    with pytest.raises(Invalid) as info:
        find_country(raw)
    assert info.value.code in ("invalid_country", "type")


@pytest.mark.parametrize("raw", ["WA", "wa", "US-WA", "us-wa", "Washington", "WASHINGTON"])
def test_state_by_code_or_name(raw):
    assert resolve_state(find_country("US"), raw, {}) == ("WA", "Washington", "US-WA")


@pytest.mark.parametrize(
    "country, raw, state_id, code",
    [
        ("DE", "Bavaria", "BY", "DE-BY"),
        ("DE", "bayern", "BY", "DE-BY"),
        ("DE", "North Rhine-Westphalia", "NW", "DE-NW"),
        ("DE", "Nordrhein Westfalen", "NW", "DE-NW"),
        ("FR", "Ile-de-France", "IDF", "FR-IDF"),
        ("FR", "ÎLE DE FRANCE", "IDF", "FR-IDF"),
        ("IT", "Tuscany", "52", "IT-52"),
        ("AT", "Vienna", "9", "AT-9"),
        ("CH", "Zurich", "ZH", "CH-ZH"),
        ("ES", "Catalonia", "CT", "ES-CT"),
        ("CA", "Québec", "QC", "CA-QC"),
        ("BE", "Flanders", "VLG", "BE-VLG"),
    ],
)
def test_state_by_english_name_or_without_diacritics(country, raw, state_id, code):
    found = resolve_state(find_country(country), raw, {})
    assert (found[0], found[2]) == (state_id, code)


def test_the_state_name_sent_is_the_iso_name():
    assert resolve_state(find_country("DE"), "Bavaria", {}) == ("BY", "Bayern", "DE-BY")
    assert resolve_state(find_country("FR"), "ile de france", {})[1] == "Île-de-France"


def test_a_state_name_two_subdivisions_share_is_refused_naming_both():
    with pytest.raises(Invalid) as info:
        resolve_state(find_country("EE"), "Viljandi", {})
    assert info.value.code == "ambiguous_state" and "EE-897" in info.value.message


def test_iso_names_win_over_cldr_names_for_subdivisions():
    # CLDR's English name of AR-C (the city) is "Buenos Aires", ISO's name of AR-B (the province).
    assert resolve_state(find_country("AR"), "Buenos Aires", {})[2] == "AR-B"
    # Iran's provinces were renumbered by ISO; CLDR kept the old ids, so only ISO names are used.
    assert resolve_state(find_country("IR"), "Tehran", {})[2] == "IR-23"


def test_state_override_from_settings():
    overrides = {"GBR": {"GB-ENG": "EN"}}
    assert resolve_state(find_country("GB"), "England", overrides) == ("EN", "England", "GB-ENG")
    assert resolve_state(find_country("GB"), "Wales", overrides)[0] == "WLS"


def test_unknown_state_of_a_country_with_subdivisions():
    with pytest.raises(Invalid):
        resolve_state(find_country("US"), "Ontario", {})


def test_state_for_country_without_subdivisions_is_kept():
    # Pick a country pycountry lists without subdivisions, whatever the data version.
    from shared.core.normalise.country import COUNTRIES, SUBDIVISIONS

    country = next(c for c in COUNTRIES.values() if c.alpha2 not in SUBDIVISIONS)
    assert resolve_state(country, "North", {}) == ("North", None, None)


# --- postal codes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "alpha2, raw, expected",
    [
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
    ],
)
def test_postal_codes_in_canonical_form(alpha2, raw, expected):
    assert normalise_postal_code(alpha2, raw) == expected


@pytest.mark.parametrize(
    "alpha2, raw", [("CA", "12345"), ("US", "9805"), ("US", "ABCDE"), ("GB", "12345"), ("DE", "1011"), ("US", 98052)]
)
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


@pytest.mark.parametrize(
    "raw, expected", [("en-US", "en-us"), ("EN_us", "en-us"), ("da", "da"), ("zh-Hans", "zh-hans"), ("nb-NO", "nb-no")]
)
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
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
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
    assert parsed.tzinfo is UTC and parsed.hour == 9
    assert parse_aware("2026-01-15T09:30:00Z").hour == 9
    for bad in ("2026-01-15T09:30:00", "2026-01-15", "yesterday", 1700000000):
        with pytest.raises(Invalid):
            parse_aware(bad)
