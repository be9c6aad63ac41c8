"""The free-text masker: every encoding a value can arrive in, the values an event sent, what must stay
readable, and linear time on adversarial input."""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest

from shared.commerce.errors import mask_text
from shared.privacy import (ADDRESS, EMAIL, NAME, PHONE, Sensitive, mask_free_text, sensitive,
                            sensitive_values, sensitive_values_from_envelope)
from tests.unit.test_ledger import event

ADDR = "ada@example.com"


def _json_escaped(text: str) -> str:
    return "".join(c if c.isalnum() else f"\\u{ord(c):04x}" for c in text)


def _entities(text: str) -> str:
    return "".join(c if c.isalnum() else f"&#{ord(c)};" for c in text)


# --- generic patterns, every encoding --------------------------------------------------------------
EMAIL_FORMS = {
    "plain": ADDR,
    "upper": ADDR.upper(),
    "mixed case": "Ada@Example.COM",
    "url-encoded": "ada%40example.com",
    "url-encoded lower hex": "ada%40example%2ecom",
    "double url-encoded": "ada%2540example.com",
    "triple url-encoded": "ada%252540example.com",
    "url-encoded plus": "ada%2Bnews%40example.com",
    "every char url-encoded": "".join(f"%{b:02X}" for b in ADDR.encode()),
    "json escaped": "ada\\u0040example.com",
    "json double escaped": "ada\\\\u0040example.com",
    "json upper hex": "ADA\\u0040EXAMPLE.COM",
    "every char json escaped": "".join(f"\\u{ord(c):04x}" for c in ADDR),
    "js hex escape": "ada\\x40example.com",
    "js escape()": "ada%u0040example.com",
    "html decimal": "ada&#64;example.com",
    "html hex": "ada&#x40;example.com",
    "html named": "ada&commat;example.com",
    "html double": "ada&amp;#64;example.com",
    "url then html": "ada%26%2364%3Bexample.com",
    "utf-8 local part": "zo%C3%AB%40example.com",
}


@pytest.mark.parametrize("form", EMAIL_FORMS.values(), ids=EMAIL_FORMS.keys())
def test_an_email_is_masked_in_every_encoding(form):
    text = f"Customer with email '{form}' is not valid."
    masked = mask_text(text)
    assert masked == "Customer with email '<email>' is not valid.", masked


PHONE_FORMS = ["+12065550142", "(206) 555-0142", "206 555 0142", "206.555.0142", "206-555-0142",
               "+1 206 555 0142", "+1.206.555.0142", "%2B12065550142", "%252B12065550142", "+1%20206%20555%200142",
               "\\u002b12065550142", "&#43;12065550142", "+49 30 1234567", "0049 (30) 123-4567", "555-0142"]


@pytest.mark.parametrize("form", PHONE_FORMS)
def test_a_phone_is_masked_in_spaced_dotted_e164_and_encoded_forms(form):
    masked = mask_text(f"Phone {form} is invalid")
    assert masked in ("Phone <digits> is invalid",), masked


def test_tokens_and_given_secrets_are_masked_also_encoded():
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJhcGk6Ly9yZXRhaWwifQ.c2lnbmF0dXJl"
    text = f"token {jwt}; key sk-local%2Dvalue and sk-local-value; opaque {'a1' * 25}"
    masked = mask_text(text, secrets=["sk-local-value"])
    assert "eyJ" not in masked and "sk-local" not in masked and "a1a1" not in masked
    assert masked.count("<redacted>") == 4


KEPT = [
    "Microsoft_Dynamics_Commerce_Runtime_RequiredValueNotFound",
    "Microsoft.Dynamics.Commerce.Runtime.DataValidationException",
    "A value for 'Email' is required.",
    "The property 'FirstName' does not exist on this type. (members: Email, Addresses[0].ZipCode)",
    "customer 004075 not found",
    "HTTP 400 create: 3 validation errors occurred.",
    "Customers('004075')?api-version=7.3&$top=50",
    "100% done & more; a \\ b",
]


@pytest.mark.parametrize("text", KEPT)
def test_identifiers_codes_and_member_names_stay_readable(text):
    assert mask_text(text) == text
    assert mask_free_text(text, SENT) == text


def test_only_the_matched_span_is_replaced_and_the_rest_is_untouched():
    text = "create HTTP 400 Microsoft_Dynamics_Commerce_Runtime_InvalidEmailAddress: 'ada%40example.com' (members: Email)"
    assert mask_text(text) == ("create HTTP 400 Microsoft_Dynamics_Commerce_Runtime_InvalidEmailAddress: '<email>' "
                               "(members: Email)")


# --- the values an event sent ----------------------------------------------------------------------
SENT = sensitive([(EMAIL, "zoë.o'brien+news@example.com"), (NAME, "Zoë"), (NAME, "O'Brien"),
                  (NAME, "Mary Ann"), (PHONE, "+12065550142"), (ADDRESS, "1 Main St"), (ADDRESS, "Seattle"),
                  (ADDRESS, "98101")])


def value_forms(value: str) -> list[str]:
    once = [urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)]
    return [value, value.upper(), value.lower(), value.title(), *once,
            *(urllib.parse.quote(x, safe="") for x in once), _json_escaped(value),
            _json_escaped(value).replace("\\", "\\\\"), json.dumps(value)[1:-1], _entities(value),
            value.replace("'", "&apos;")]


@pytest.mark.parametrize("value,label", [("Zoë", NAME), ("O'Brien", NAME), ("Mary Ann", NAME),
                                         ("1 Main St", ADDRESS), ("Seattle", ADDRESS), ("98101", ADDRESS),
                                         ("zoë.o'brien+news@example.com", EMAIL)])
def test_a_sent_value_is_masked_in_every_encoding_and_case(value, label):
    for form in value_forms(value):
        masked = mask_free_text(f"The value '{form}' of the member FirstName is invalid.", SENT)
        assert masked == f"The value '{label}' of the member FirstName is invalid.", (form, masked)


def test_sent_values_are_whole_words_only():
    text = "Zoëlle O'Briens lives in Seattleite 981012, Name 'Zoë'"
    assert mask_free_text(text, SENT) == "Zoëlle O'Briens lives in Seattleite 981012, Name '<name>'"


def test_the_email_local_part_and_words_of_names_are_masked_too():
    text = "account zoë.o'brien+news, holder Ann; MARY, Anne"
    assert mask_free_text(text, SENT) == "account <email>, holder <name>; <name>, Anne"


def test_a_sent_phone_is_masked_with_any_separators_and_prefix():
    for form in ("+1 - 206 - 555 - 0142", "001 206 555 0142", "2065 55", "%2B1%20%28206%29%20555-0142"):
        masked = mask_free_text(f"tel {form}.", SENT)
        assert masked == "tel <phone>.", (form, masked)
    assert mask_free_text("tel 0142.", SENT) == "tel 0142."  # four digits tell nothing


@pytest.mark.parametrize("cut", ["Zo%C3%AB.O%27Bri", "zoë.o'brien+ne", "Seatt", "Mary A", "O%27Br",
                                 "zo%C3%AB.o%27brien%2Bnews%4", "O\\u0027Bri\\u00"])
def test_a_text_cut_inside_a_value_masks_the_cut_value(cut):
    masked = mask_free_text("refused: " + cut, SENT)
    assert masked.startswith("refused: <") and masked.endswith(">"), masked


def test_sensitive_values_of_an_event_and_of_its_queue_message():
    ev = event("evt-1", email="Zoë.O'Brien@Example.com", firstName="Zoë", lastName="O'Brien",
               phone="(206) 555-0142", address={"street": "1 Main St", "city": "Seattle", "postalCode": "98101",
                                                "country": "US"})
    values = sensitive_values(ev)
    texts = {text for text, _ in values.texts}
    assert {"zoë.o'brien@example.com", "zoë", "o'brien", "1 main st", "seattle", "98101"} <= texts
    assert values.phones == ("12065550142",)
    message = json.dumps({"v": 1, "event": json.loads(ev.to_json())})
    assert sensitive_values_from_envelope(message) == values
    assert sensitive_values_from_envelope("not json") == Sensitive()
    assert sensitive_values_from_envelope(None) == Sensitive()
    assert not sensitive_values(None)


def test_short_and_empty_values_are_ignored():
    few = sensitive([(NAME, "A"), (NAME, ""), (NAME, None), (ADDRESS, "123"), (PHONE, "12")])
    assert few == Sensitive()
    assert mask_free_text("", SENT) == ""


# --- linear time -----------------------------------------------------------------------------------
def _repeat(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


ADVERSARIAL = {
    "a@ runs": "a@",
    "no @ at all": "a",  # a naive [^@]+@ pattern scans to the end from every position
    "eyJ without a dot": "eyJ",
    "dangling percent": "%4",
    "layered percent": "%25",
    "percent-encoded bytes": "%C3%AB",
    "backslashes": "\\",
    "cut json escapes": "\\u004",
    "cut html entities": "&#6",
    "digits and separators": "1-",
    "digit groups too short": "1.1.1.1.1.x ",
    "39-char token runs": "a1" * 19 + "b ",
    "prefixes of a sent value": "zo",
    "@ and dots": "@.",
    "encoded emails": "zo%C3%AB.o%27brien%2Bnews%40example.com ",
}


def _best_time(text: str, values: Sensitive, runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        mask_free_text(text, values)
        best = min(best, time.process_time() - started)
    return best


@pytest.mark.parametrize("unit", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_masking_time_grows_linearly_on_adversarial_input(unit):
    small, large = _repeat(unit, 64 * 1024), _repeat(unit, 256 * 1024)
    t_small, t_large = _best_time(small, SENT), _best_time(large, SENT)
    assert t_large < 2.0, f"{t_large:.2f} s for 256 KB"
    # 4x the input: about 4x the time (a quadratic pattern would take 16x); a floor absorbs timer noise
    assert t_large / max(t_small, 0.002) < 8, (t_small, t_large)
