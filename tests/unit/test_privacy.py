"""The free-text masker: every encoding a value can arrive in, the values an event sent, what must stay
readable, and linear time on adversarial input."""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest

from shared.core.commerce_errors import mask_text
from shared.core.privacy import (
    ADDRESS,
    EMAIL,
    NAME,
    PHONE,
    Sensitive,
    mask_free_text,
    mask_pointer,
    sensitive,
    sensitive_values,
    sensitive_values_from_envelope,
)
from tests.support.builders import event
from tests.support.ingest import event as ingest_event
from tests.support.ingest import ingest

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
    # every RFC 5322 atext character is part of the local part
    "slash in local part": "a/b@example.com",
    "equals in local part": "a=b@example.com",
    "ampersand in local part": "a&b@example.com",
    "question mark in local part": "a?b@example.com",
    "braces around local part": "{ab}@example.com",
    "pipe in local part": "a|b@example.com",
    "all atext specials": "!#$%&*+-/=?^_`{|}~ada@example.com",
    "json pointer escaped slash": "a~1b@example.com",
    "quoted local part": '"john smith"@example.com',
}


@pytest.mark.parametrize("form", EMAIL_FORMS.values(), ids=EMAIL_FORMS.keys())
def test_an_email_is_masked_in_every_encoding(form):
    text = f"Customer with email '{form}' is not valid."
    masked = mask_text(text)
    assert masked == "Customer with email '<email>' is not valid.", masked


PHONE_FORMS = [
    "+12065550142",
    "(206) 555-0142",
    "206 555 0142",
    "206.555.0142",
    "206-555-0142",
    "+1 206 555 0142",
    "+1.206.555.0142",
    "%2B12065550142",
    "%252B12065550142",
    "+1%20206%20555%200142",
    "\\u002b12065550142",
    "&#43;12065550142",
    "+49 30 1234567",
    "0049 (30) 123-4567",
    "555-0142",
]


@pytest.mark.parametrize("form", PHONE_FORMS)
def test_a_phone_is_masked_in_spaced_dotted_e164_and_encoded_forms(form):
    masked = mask_text(f"Phone {form} is invalid")
    assert masked in ("Phone <digits> is invalid",), masked


def test_an_address_glued_to_a_key_or_path_is_masked_with_it():
    # atext includes = ? & /: what precedes an address without a space cannot be told from its local part,
    # so it is masked too (over-masking, never a leak); a leading separator is kept, and so is an OData key.
    assert mask_text("see ?email=ada@example.com now") == "see ?<email> now"
    assert mask_text("GET /customers/ada@example.com") == "GET /<email>"
    assert mask_text("Customers(Email='ada@example.com')") == "Customers(Email='<email>')"
    assert mask_text("Customers(Email='o'brien@example.com')") == "Customers(Email='<email>')"


def test_json_with_odata_annotations_stays_readable():
    text = '{"value":[{"@odata.type":"#Customer","Name":"x"}],"@odata.context":"$metadata"}'
    assert mask_text(text) == text


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
    text = (
        "create HTTP 400 Microsoft_Dynamics_Commerce_Runtime_InvalidEmailAddress: 'ada%40example.com' (members: Email)"
    )
    assert mask_text(text) == (
        "create HTTP 400 Microsoft_Dynamics_Commerce_Runtime_InvalidEmailAddress: '<email>' (members: Email)"
    )


# --- the values an event sent ----------------------------------------------------------------------
SENT = sensitive(
    [
        (EMAIL, "zoë.o'brien+news@example.com"),
        (NAME, "Zoë"),
        (NAME, "O'Brien"),
        (NAME, "Mary Ann"),
        (PHONE, "+12065550142"),
        (ADDRESS, "1 Main St"),
        (ADDRESS, "Seattle"),
        (ADDRESS, "98101"),
    ]
)


def value_forms(value: str) -> list[str]:
    once = [urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)]
    return [
        value,
        value.upper(),
        value.lower(),
        value.title(),
        *once,
        *(urllib.parse.quote(x, safe="") for x in once),
        _json_escaped(value),
        _json_escaped(value).replace("\\", "\\\\"),
        json.dumps(value)[1:-1],
        _entities(value),
        value.replace("'", "&apos;"),
    ]


@pytest.mark.parametrize(
    "value,label",
    [
        ("Zoë", NAME),
        ("O'Brien", NAME),
        ("Mary Ann", NAME),
        ("1 Main St", ADDRESS),
        ("Seattle", ADDRESS),
        ("98101", ADDRESS),
        ("zoë.o'brien+news@example.com", EMAIL),
    ],
)
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


def _utf16_escaped(text: str, form: str) -> str:
    units = text.encode("utf-16-be")
    return "".join(form.format(int.from_bytes(units[i : i + 2], "big")) for i in range(0, len(units), 2))


ASTRAL = sensitive([(NAME, "𠮷田"), (NAME, "Zoë😀")])


@pytest.mark.parametrize("form", ["\\u{:04x}", "\\u{:04X}", "\\\\u{:04x}", "%u{:04X}", "&#{};", "&#x{:x};"])
@pytest.mark.parametrize("value", ["𠮷田", "Zoë😀"])
def test_characters_outside_the_bmp_escaped_as_surrogate_pairs_are_masked(value, form):
    # .NET's System.Text.Json (and JSON.stringify's callers, JavaScript escape()) write one escape per
    # UTF-16 unit: a high and a low surrogate together stand for one character.
    escaped = _utf16_escaped(value, form)
    masked = mask_free_text(f'entity {{"FirstName":"{escaped}"}} refused', ASTRAL)
    assert masked == 'entity {"FirstName":"<name>"} refused', (escaped, masked)


def test_surrogate_pairs_in_json_and_utf8_forms_are_one_character():
    assert mask_free_text('{"FirstName":"\\ud842\\udfb7\\u7530"}', ASTRAL) == '{"FirstName":"<name>"}'
    assert mask_free_text("n=%5Cud842%5Cudfb7%5Cu7530!", ASTRAL) == "n=<name>!"  # escapes, percent-encoded
    assert mask_free_text("n=%ED%A1%82%ED%BE%B7%E7%94%B0!", ASTRAL) == "n=<name>!"  # CESU-8
    assert mask_free_text("n=\\ud842%uDFB7\\u7530!", ASTRAL) == "n=<name>!"  # mixed escapes
    # a lone surrogate, or a pair in the wrong order, stays as it is
    assert mask_free_text("x \\udfb7\\ud842 \\ud842", ASTRAL) == "x \\udfb7\\ud842 \\ud842"


@pytest.mark.parametrize("form", ["O''Brien", "O''BRIEN", "O%27%27Brien", "O&#39;&#39;Brien"])
def test_sql_and_odata_doubled_quotes_are_masked(form):
    text = f"$filter=LastName eq '{form}' and Email eq 'zoë.o''brien+news@example.com'"
    assert mask_free_text(text, SENT) == "$filter=LastName eq '<name>' and Email eq '<email>'"


FOLDED = sensitive([(ADDRESS, "Straße 1"), (NAME, "Işık"), (NAME, "İlker"), (NAME, "Zoë")])


@pytest.mark.parametrize(
    "form,label",
    [
        ("STRASSE 1", ADDRESS),
        ("strasse 1", ADDRESS),
        ("STRAẞE 1", ADDRESS),
        ("IŞIK", NAME),
        ("ışık", NAME),
        ("ILKER", NAME),
        ("ilker", NAME),
        ("Zoe\u0308", NAME),
        ("ZOE\u0308", NAME),
    ],
)
def test_case_mappings_that_change_letters_and_decomposed_accents_are_masked(form, label):
    assert mask_free_text(f"value '{form}' refused", FOLDED) == f"value '{label}' refused", form


def test_a_decomposed_value_is_still_a_whole_word():
    assert mask_free_text("Zoe\u0308lle and Zoe\u0308", FOLDED) == "Zoe\u0308lle and <name>"


TRUNCATED = sensitive(
    [
        (NAME, "Christopher"),
        (NAME, "O'Sullivan-Smythe"),
        (ADDRESS, "1234 Long Street Name"),
        (EMAIL, "christopher.o'sullivan@example.com"),
    ]
)


@pytest.mark.parametrize(
    "quoted",
    [
        "'Christop'",
        '"CHRISTOP"',
        "'Chri'",
        "`Christophe`",
        "\u2018Christop\u2019",
        "'O'Sulli'",
        "'O''Sulli'",
        "'1234 Long Str'",
        "%27Christop%27",
        "'christopher.o'sulliv'",
    ],
)
def test_a_quoted_prefix_of_a_value_is_masked_anywhere(quoted):
    # SQL Server error 2628 quotes the cut value in the middle of the message.
    text = (
        f"String or binary data would be truncated in table 'crt.dbo.CUSTTABLE', column 'NAME'. "
        f"Truncated value: {quoted}. The statement has been terminated."
    )
    masked = mask_free_text(text, TRUNCATED)
    assert masked.startswith(
        "String or binary data would be truncated in table 'crt.dbo.CUSTTABLE', column 'NAME'. Truncated value: "
    ) and masked.endswith(". The statement has been terminated."), masked
    assert "chri" not in masked.lower() and "sulli" not in masked.lower() and "long" not in masked.lower(), masked


def test_short_or_unquoted_prefixes_stay_readable():
    # three characters, an unquoted prefix mid-text, a prefix not at the value's start, a quoted word
    # that merely starts like a value: left as they are
    text = "'Chr' Christop is 'topher' 'Christmas' 'NAME'"
    assert mask_free_text(text, TRUNCATED) == text


def test_two_letter_words_of_a_name_are_not_masked_alone():
    # "Jo" of "Jo Ann" (and "Le" of "Le Roux", "Do" of "Do Van") would mask ordinary words everywhere;
    # the whole value, its longer words and a two-letter name on its own are masked.
    values = sensitive([(NAME, "Jo Ann"), (NAME, "Le Roux"), (NAME, "Li")])
    text = "Jo Ann: do not retry; Le Roux, Roux, Le, Jo, Li"
    assert mask_free_text(text, values) == "<name>: do not retry; <name>, <name>, Le, Jo, <name>"


@pytest.mark.parametrize(
    "cut",
    [
        "Zo%C3%AB.O%27Bri",
        "zoë.o'brien+ne",
        "Seatt",
        "Mary A",
        "O%27Br",
        "zo%C3%AB.o%27brien%2Bnews%4",
        "O\\u0027Bri\\u00",
    ],
)
def test_a_text_cut_inside_a_value_masks_the_cut_value(cut):
    masked = mask_free_text("refused: " + cut, SENT)
    assert masked.startswith("refused: <") and masked.endswith(">"), masked


def test_sensitive_values_of_an_event_and_of_its_queue_message():
    ev = event(
        "evt-1",
        email="Zoë.O'Brien@Example.com",
        firstName="Zoë",
        lastName="O'Brien",
        phone="(206) 555-0142",
        address={"street": "1 Main St", "city": "Seattle", "postalCode": "98101", "country": "US"},
    )
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
    "atext before @": "a{|}=?&/",
    "atext and @": "{=?&/|}@",
    "quoted local parts": '"a"@',
    "quotes before @": '"a@',
    "surrogate escapes": "\\ud842",
    "surrogate pairs": "\\ud842\\udfb7",
    "high surrogates in %u": "%uD842",
    "surrogate entities": "&#55362;",
    "doubled quotes": "o''",
    "quoted prefixes": "'zoë.",
    "quoted prefixes with inner quotes": "'zoë.o'",
    "unclosed typographic quotes": "\u2018mary",
    "long quoted runs": "'" + "seattle" * 40,
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


# --- JSON pointers -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "pointer,masked",
    [
        ("/customer/address/sessionToken" + "a1" * 20, "/customer/address/<redacted>"),
        ("/customer/ada@example.com", "/customer/<email>"),
        ("/customer/a~1b@example.com/x", "/customer/<email>/x"),
        ("/customer/phones/0/+1 206 555 0142", "/customer/phones/0/<digits>"),
        ("/customer/address/zip", "/customer/address/zip"),
        ("", ""),
        ("/", "/"),
    ],
)
def test_a_pointer_is_masked_token_by_token(pointer, masked):
    assert mask_pointer(pointer) == masked


def test_ingest_answers_show_where_a_masked_unknown_key_is():
    bad = ingest_event(1)
    bad["customer"]["address"] = {"country": "US", "sessionToken" + "a1" * 20: 1}
    bad["customer"]["ada@example.com"] = 1
    result, _ = ingest([bad])
    pointers = {e["pointer"] for e in result.body["errors"]}
    assert pointers == {"/customer/<email>", "/customer/address/<redacted>"}, pointers
