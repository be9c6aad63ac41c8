"""build_create_body: a Commerce Customer create body per docs/commerce-api.md ("Create", "Entities")."""

from __future__ import annotations

from shared.core.commerce_bodies.create import build_create_body, compose_full_address
from tests.support.builders import FULL, mapping, normalised
from tests.support.commerce_documents import assert_only_reference_properties


def test_full_create_body():
    body = build_create_body(normalised(**FULL), mapping())
    assert_only_reference_properties(body)
    assert body["AccountNumber"] == ""
    assert (body["FirstName"], body["MiddleName"], body["LastName"], body["Name"]) == (
        "Ada",
        "King",
        "Lovelace",
        "Ada King Lovelace",
    )
    assert body["Email"] == body["ReceiptEmail"] == "ada@example.com"
    assert body["Phone"] == "+12025550142"
    assert (body["CustomerTypeValue"], body["Language"], body["CurrencyCode"], body["CustomerGroup"]) == (
        1,
        "en-gb",
        "GBP",
        "40",
    )
    assert body["IsAsyncCustomer"] is False and body["ExtensionProperties"] == []
    assert body["Addresses"] == [
        {
            "Name": "Home",
            "Street": "Example Avenue",
            "StreetNumber": "12",
            "City": "Seattle",
            "County": "KING",
            "State": "WA",
            "StateName": "Washington",
            "ZipCode": "98101",
            "ThreeLetterISORegionName": "USA",
            "FullAddress": "Example Avenue 12\nSeattle, WA 98101\nUSA",
            "IsPrimary": True,
            "AddressTypeValue": 7,
        }
    ]
    assert body["Contacts"] == [
        {"Value": "ada@example.com", "AddressTypeValue": 2, "IsPrimary": True, "IsOptedInMarketing": True},
        {"Value": "+12025550142", "AddressTypeValue": 1, "IsPrimary": True, "IsOptedInMarketing": True},
    ]


def test_customer_account_and_created_date_time_are_never_sent():
    body = build_create_body(normalised(**FULL), mapping())
    text = repr(body)
    assert "C-9" not in text and "CreatedDateTime" not in body and "2026-01-01" not in text


def test_defaults_apply_when_the_event_has_none_and_empty_defaults_are_omitted():
    body = build_create_body(normalised(), mapping(address_type=2))
    assert (body["Language"], body["CurrencyCode"], body["CustomerGroup"]) == ("en-us", "USD", "30")
    assert body["Addresses"] == [] and "Phone" not in body and "Name" not in body
    assert body["Contacts"] == [
        {"Value": "ada@example.com", "AddressTypeValue": 2, "IsPrimary": True, "IsOptedInMarketing": False}
    ]
    bare = build_create_body(normalised(), mapping(group="", currency="", language=""))
    assert not {"Language", "CurrencyCode", "CustomerGroup"} & set(bare)
    assert_only_reference_properties(bare)


def test_address_type_comes_from_settings():
    body = build_create_body(normalised(address={"country": "DK", "city": "Aarhus"}), mapping(address_type=2))
    assert body["Addresses"][0]["AddressTypeValue"] == 2
    assert body["Addresses"][0]["ThreeLetterISORegionName"] == "DNK"


def test_full_address_composition_skips_empty_parts():
    assert compose_full_address({"City": "Aarhus", "ThreeLetterISORegionName": "DNK"}) == "Aarhus\nDNK"
    assert compose_full_address({"Street": "S", "ZipCode": "8000", "ThreeLetterISORegionName": "DNK"}) == "S\n8000\nDNK"
