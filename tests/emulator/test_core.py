"""The emulator's pure core, without sockets: key literals, paging, search rule, validation, documents, faults."""

from __future__ import annotations

import pytest

from commerce_emulator import api_errors as errors
from commerce_emulator import documents
from commerce_emulator.api_errors import ApiError
from commerce_emulator.config import DEFAULT_CONFIG, ConfigError, merge_config, parse_faults
from commerce_emulator.faults import FaultInjector
from commerce_emulator.odata import customer_key, key_literal, paging
from commerce_emulator.schema import ADDRESS, CONTACT, CUSTOMER, check_entity, complete
from commerce_emulator.search import matches, search_terms
from tests.support.emulator_client import search_body


class FixedIds:
    def __init__(self):
        self.n = 100

    def record_id(self):
        self.n += 1
        return self.n

    def account_number(self):
        return "004001"

    def async_account_number(self):
        return "5d0f8f8e-0000-4000-8000-000000000001"

    def party_number(self):
        return "000001001"

    def now(self):
        return "2026-01-02T03:04:05Z"


# --- OData keys and paging ---------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["004075", "O'Brien", "a''b", "x/y (z)", "ünï", "'"])
def test_key_literal_round_trips(key):
    assert customer_key(f"/Commerce/Customers({key_literal(key)})") == key


def test_key_must_be_a_quoted_literal():
    assert customer_key("/Commerce/Customers('O''Brien')") == "O'Brien"
    for bad in ("/Commerce/Customers(004075)", "/Commerce/Customers('O'Brien')", "/Commerce/Customers('abc)"):
        with pytest.raises(ApiError) as info:
            customer_key(bad)
        assert info.value.status == 400
    assert customer_key("/Commerce/Customers") is None


def test_paging_defaults_cap_and_junk():
    assert paging({}, 1000) == (50, 0)
    assert paging({"$top": "5", "$skip": "10"}, 1000) == (5, 10)
    assert paging({"$top": "5000"}, 1000) == (1000, 0)
    for junk in ({"$top": "-1"}, {"$skip": "x"}, {"$top": ""}):
        with pytest.raises(ApiError):
            paging(junk, 1000)


# --- search ---------------------------------------------------------------------------------------------
def test_search_rule_prefix_from_seven_characters_exact_below():
    assert matches("ann@x.com", "ann@x.com.au")
    assert matches("ann@x.c", "ann@x.com")  # 7 characters: a prefix
    assert not matches("a@b.co", "a@b.com")  # 6 characters: exact only
    assert matches("a@b.co", "a@b.co")
    assert not matches("ann@x.com", "bob@x.com") and not matches("ann@x.com", "ann@y.com")


def test_search_rule_is_a_full_text_phrase_of_word_prefixes():
    # docs/commerce-api.md ("Search: SearchByFields"): ann@x.com finds anna@x.com: each word of the term a prefix.
    assert matches("ann@x.com", "anna@x.com")
    assert matches("ann@x.com", "ann@xy.community")
    assert matches("ann@x.com", "jo.ann@x.com")  # the phrase can start at any word
    assert not matches("ann@x.com", "ann.lee@x.com")  # but its words are consecutive
    assert not matches("a@b.co", "a@bc.co") and matches("a@b.co", "x.a@b.co")  # short: whole words
    assert not matches("@@@@@@@", "ann@x.com")  # no words at all: nothing
    # the switch: the whole address as one string prefix
    assert matches("ann@x.com", "ann@x.com.au", "email_prefix")
    assert not matches("ann@x.com", "anna@x.com", "email_prefix")
    assert not matches("ann@x.com", "jo.ann@x.com", "email_prefix")


def test_search_terms_lower_cased_and_validated():
    assert search_terms(search_body("  Ann@X.com ")) == ["ann@x.com"]
    for bad in (
        None,
        {},
        {"CustomerSearchByFieldCriteria": {"Criteria": []}},
        search_body("a@b.com", {"Name": "Phone", "Value": 1}),
        search_body(""),
        {
            "CustomerSearchByFieldCriteria": {
                "Criteria": [{"SearchTerm": 1, "SearchField": {"Name": "Email", "Value": 3}}]
            }
        },
    ):
        with pytest.raises(ApiError) as info:
            search_terms(bad)
        assert info.value.status == 400


# --- schema and validation ----------------------------------------------------------------------------------
def test_property_lists_are_complete_copies_of_the_reference():
    assert len(CUSTOMER) == 36 + 13 + 13 + 1 + 6
    assert len(ADDRESS) == 29 + 17 + 4 + 1
    assert len(CONTACT) == 16
    assert "IsOptedInMarketing" in CONTACT and "IsOptedInMarketing" not in CUSTOMER and "Phones" not in CUSTOMER


def test_check_entity_unknown_wrong_type_annotations_nested():
    body = {
        "IsB2b": "yes",
        "RecordId": True,
        "Foo": 1,
        "@odata.type": "#x",
        "Email@odata.type": "x",
        "Addresses": [{"Bar": 1, "IsPrimary": 1}],
        "Contacts": "no",
        "CreditLimit": 1.5,
        "Name": None,
    }
    found = {(p.kind, p.member) for p in check_entity(body, CUSTOMER, "", strict=True)}
    assert found == {
        ("invalid_format", "IsB2b"),
        ("invalid_format", "RecordId"),
        ("unknown_property", "Foo"),
        ("unknown_property", "Addresses[0].Bar"),
        ("invalid_format", "Addresses[0].IsPrimary"),
        ("invalid_format", "Contacts"),
    }
    assert ("unknown_property", "Foo") not in {(p.kind, p.member) for p in check_entity(body, CUSTOMER, "", False)}


def test_validate_create_rules():
    config = DEFAULT_CONFIG

    def kinds(body, mode="create"):
        return sorted((p.kind, p.member) for p in documents.validate(body, mode, config))

    assert kinds({"Email": "ann@example.com", "Addresses": [{"ThreeLetterISORegionName": "DNK"}]}) == []
    assert kinds({"FirstName": "Ann"}) == [("required", "Email")]
    assert kinds({"Email": "not-an-email"}) == [("invalid_email", "Email")]
    assert kinds({"Email": "a@b.com", "Addresses": [{"ThreeLetterISORegionName": "US"}, {}]}) == [
        ("invalid_country", "Addresses[0].ThreeLetterISORegionName"),
        ("invalid_country", "Addresses[1].ThreeLetterISORegionName"),
    ]
    assert kinds({"Email": "a@b.com", "Contacts": [{"AddressTypeValue": 2, "Value": "x@"}]}) == [
        ("invalid_email", "Contacts[0].Value")
    ]
    # update: only what is sent; an existing address need not resend its country
    assert kinds({"LastName": "Lee", "Addresses": [{"RecordId": 5, "City": "X"}]}, "update") == []
    assert kinds({"Email": ""}, "update") == [("required", "Email")]
    assert kinds({"Email": "x"}, "seed") == []


@pytest.mark.parametrize(
    "email,ok",
    [
        ("ann@example.com", True),
        ("a.b+c@sub.example.co.uk", True),
        ("o'brien@example.ie", True),
        ("ann@example", False),
        ("ann@@x.com", False),
        ("ann x@y.com", False),
        (".ann@x.com", False),
        ("ann@-x.com", False),
    ],
)
def test_email_syntax(email, ok):
    assert documents.email_ok(email) is ok


def test_full_address_and_name_composition():
    assert (
        documents.compose_full_address(
            {
                "Street": "1 Main St",
                "City": "Albany",
                "State": "NY",
                "ZipCode": "12207",
                "ThreeLetterISORegionName": "USA",
            }
        )
        == "1 Main St\nAlbany, NY 12207\nUSA"
    )
    assert (
        documents.compose_full_address({"City": "Aarhus", "ZipCode": "8000", "ThreeLetterISORegionName": "DNK"})
        == "Aarhus, 8000\nDNK"
    )
    assert documents.compose_name({"FirstName": "Ann", "MiddleName": "", "LastName": "Lee"}) == "Ann Lee"


def test_build_customer_is_complete_and_assigns_server_values():
    doc = documents.build_customer(
        {
            "AccountNumber": "",
            "FirstName": "Ann",
            "LastName": "Lee",
            "Email": "a@b.com",
            "RecordId": 7,
            "Addresses": [{"City": "Aarhus", "ThreeLetterISORegionName": "DNK"}],
        },
        DEFAULT_CONFIG,
        FixedIds(),
    )
    assert set(doc) == set(CUSTOMER)
    assert (doc["AccountNumber"], doc["RecordId"], doc["PartyNumber"], doc["CreatedDateTime"]) == (
        "004001",
        101,
        "000001001",
        "2026-01-02T03:04:05Z",
    )
    assert (doc["Name"], doc["CustomerGroup"], doc["CustomerTypeValue"], doc["Phone"], doc["IsB2b"]) == (
        "Ann Lee",
        "30",
        1,
        "",
        False,
    )
    assert set(doc["Addresses"][0]) == set(ADDRESS) and doc["Addresses"][0]["RecordId"] == 102
    assert doc["Addresses"][0]["FullAddress"] == "Aarhus\nDNK"


def test_apply_patch_is_partial_and_merges_items_by_record_id():
    ids = FixedIds()
    stored = documents.build_customer(
        {
            "FirstName": "Ann",
            "Email": "a@b.com",
            "Phone": "+4512345678",
            "Addresses": [{"Street": "Old 1", "City": "Aarhus", "ZipCode": "8000", "ThreeLetterISORegionName": "DNK"}],
        },
        DEFAULT_CONFIG,
        ids,
    )
    address_id = stored["Addresses"][0]["RecordId"]
    doc, problems = documents.apply_patch(
        stored,
        {
            "AccountNumber": "004001",
            "LastName": "Lee",
            "Addresses": [
                {"RecordId": address_id, "Street": "New 2"},
                {"City": "Oslo", "ThreeLetterISORegionName": "NOR"},
            ],
        },
        ids,
    )
    assert problems == []
    assert (doc["Phone"], doc["LastName"], doc["FirstName"]) == ("+4512345678", "Lee", "Ann")
    assert [a["FullAddress"] for a in doc["Addresses"]] == ["New 2\nAarhus, 8000\nDNK", "Oslo\nNOR"]
    assert doc["Addresses"][0]["ZipCode"] == "8000" and doc["Addresses"][1]["RecordId"] == ids.n
    assert stored["Addresses"][0]["Street"] == "Old 1"  # the stored document is never mutated
    _, problems = documents.apply_patch(stored, {"Contacts": [{"RecordId": 999, "Value": "x"}]}, ids)
    assert [p.kind for p in problems] == ["object_not_found"]


def test_complete_defaults():
    assert complete({"Name": None}, CONTACT)["IsPrimary"] is False
    assert complete({}, ADDRESS)["ExtensionProperties"] == []


# --- errors, config, faults -------------------------------------------------------------------------------
def test_envelopes():
    err = ApiError(400, errors.INVALID_EMAIL, "bad", ["Email"])
    odata = errors.render(err, "odata")
    assert odata["error"]["code"] == errors.INVALID_EMAIL
    assert odata["error"]["innererror"]["MemberNames"] == ["Email"]
    flat = errors.render(err, "flat")
    assert flat["TypeName"] == "Microsoft.Dynamics.Commerce.Runtime.DataValidationException"
    assert (flat["ErrorResourceId"], flat["LocalizedMessage"]) == (errors.INVALID_EMAIL, "bad")


def test_config_merge_and_rejections():
    merged = merge_config(DEFAULT_CONFIG, {"create_defaults": {"CustomerGroup": "40"}, "envelope": "flat"})
    assert merged["create_defaults"]["CurrencyCode"] == "USD" and merged["create_defaults"]["CustomerGroup"] == "40"
    assert DEFAULT_CONFIG["create_defaults"]["CustomerGroup"] == "30"
    for bad in (
        {"nope": 1},
        {"envelope": "xml"},
        {"create_status": 204},
        {"require_oun": "yes"},
        {"create_defaults": {"NotAProperty": 1}},
        {"create_defaults": {"CustomerTypeValue": "1"}},
    ):
        with pytest.raises(ConfigError):
            merge_config(DEFAULT_CONFIG, bad)
    for bad in (
        {"rates": {"throttle": 2}},
        {"rates": {"boom": 0.1}},
        {"script": [{"fault": "explode"}]},
        {"operations": ["delete"]},
        {"latency_ms": -1},
        {"unknown": 1},
    ):
        with pytest.raises(ConfigError):
            parse_faults(bad)


def _sequence(injector: FaultInjector, n: int = 200) -> list:
    return [injector.decide("get") for _ in range(n)]


def test_fault_draws_are_repeatable_with_a_seed():
    faults = parse_faults(
        {
            "seed": 7,
            "rates": {"throttle": 0.2, "server_error": 0.2},
            "latency_jitter_ms": 10,
            "throttle_retry_after_ratio": 0.5,
        }
    )
    first, second = _sequence(FaultInjector(faults)), _sequence(FaultInjector(faults))
    assert first == second
    assert {d.fault for d in first} == {None, "throttle", "throttle_no_retry_after", "server_error"}
    assert first != _sequence(FaultInjector(parse_faults({**faults, "seed": 8, "script": []})))


def test_script_is_consumed_first_in_order_per_operation():
    injector = FaultInjector(
        parse_faults(
            {
                "script": [
                    {"operation": "create", "fault": "drop"},
                    {"operation": "any", "fault": "hang"},
                    {"operation": "create", "fault": "server_error"},
                ]
            }
        )
    )
    assert injector.decide("get").fault == "hang"
    assert [injector.decide("create").fault for _ in range(3)] == ["drop", "server_error", None]


def test_rates_apply_only_to_chosen_operations():
    injector = FaultInjector(parse_faults({"operations": ["create"], "rates": {"unavailable": 1.0}, "latency_ms": 50}))
    assert injector.decide("search").fault is None and injector.decide("search").delay_seconds == 0
    assert injector.decide("create").fault == "unavailable" and injector.decide("create").delay_seconds == 0.05
