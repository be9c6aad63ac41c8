"""build_patch: the minimal PATCH, or None when Commerce already matches the event."""

from __future__ import annotations

import copy

import pytest

from shared.core.commerce_bodies.create import build_create_body
from shared.core.commerce_bodies.patch import build_patch
from tests.support.builders import FULL, mapping, normalised
from tests.support.commerce_documents import check, stored


@pytest.mark.parametrize(
    "customer",
    [
        FULL,
        {},
        {"firstName": "Ada"},
        {"address": {"country": "GB", "postalCode": "sw1a1aa"}},
        {"phone": "+44 20 7946 0123", "isOptedInMarketing": False},
    ],
)
def test_create_then_same_event_gives_none(customer):
    existing = stored(build_create_body(normalised(**customer), mapping()))
    assert check(existing, **customer) is None


def test_defaults_are_never_applied_on_update():
    existing = stored(build_create_body(normalised(), mapping(group="", currency="", language="")))
    assert check(existing) is None


def test_only_changed_fields_are_sent():
    existing = stored(build_create_body(normalised(**FULL), mapping()))
    patch = check(existing, firstName="Augusta", lastName="Lovelace", language="EN-gb")
    assert patch == {"AccountNumber": "004075", "FirstName": "Augusta", "Name": "Augusta King Lovelace"}


def test_explicit_null_clears_and_absent_keeps():
    existing = stored(build_create_body(normalised(**FULL), mapping()))
    patch = check(existing, middleName=None, phone=None)
    assert patch == {"AccountNumber": "004075", "MiddleName": "", "Phone": "", "Name": "Ada Lovelace"}


def test_phone_change_updates_phone_and_its_contact_in_place():
    existing = stored(build_create_body(normalised(**FULL), mapping()))
    phone_id = existing["Contacts"][1]["RecordId"]
    patch = check(existing, phone="+44 20 7946 0123")
    assert patch == {
        "AccountNumber": "004075",
        "Phone": "+442079460123",
        "Contacts": [{"RecordId": phone_id, "Value": "+442079460123"}],
    }


def test_stored_phone_in_another_format_is_equal():
    existing = stored(build_create_body(normalised(**FULL), mapping()))
    existing["Phone"] = "+1 (202) 555-0142"
    existing["Contacts"][1]["Value"] = "+1 202-555-0142"
    assert check(existing, phone="202.555.0142") is None


def test_marketing_consent_updates_both_contacts_by_record_id():
    existing = stored(build_create_body(normalised(**FULL), mapping()))
    ids = [c["RecordId"] for c in existing["Contacts"]]
    patch = check(existing, isOptedInMarketing=False)
    assert patch == {
        "AccountNumber": "004075",
        "Contacts": [
            {"RecordId": ids[0], "IsOptedInMarketing": False},
            {"RecordId": ids[1], "IsOptedInMarketing": False},
        ],
    }


def test_missing_contacts_are_added():
    existing = stored(build_create_body(normalised(), mapping()))
    existing["Contacts"] = []
    patch = check(existing, phone="(202) 555-0142", isOptedInMarketing=True)
    assert patch["Phone"] == "+12025550142"
    assert patch["Contacts"] == [
        {"Value": "ada@example.com", "AddressTypeValue": 2, "IsPrimary": True, "IsOptedInMarketing": True},
        {"Value": "+12025550142", "AddressTypeValue": 1, "IsPrimary": True, "IsOptedInMarketing": True},
    ]


def test_primary_address_is_updated_in_place_with_only_changed_properties():
    existing = stored(build_create_body(normalised(**FULL), mapping()))
    existing["Addresses"].insert(
        0, {**copy.deepcopy(existing["Addresses"][0]), "IsPrimary": False, "RecordId": 1, "City": "Elsewhere"}
    )
    primary_id = existing["Addresses"][1]["RecordId"]
    patch = check(existing, address={"country": "US", "city": "Redmond", "postalCode": "98052"})
    assert patch == {
        "AccountNumber": "004075",
        "Addresses": [
            {
                "RecordId": primary_id,
                "City": "Redmond",
                "ZipCode": "98052",
                "FullAddress": "Example Avenue 12\nRedmond, WA 98052\nUSA",
            }
        ],
    }


def test_address_null_components_clear_and_country_change_is_sent():
    existing = stored(build_create_body(normalised(**FULL), mapping()))
    primary_id = existing["Addresses"][0]["RecordId"]
    patch = check(existing, address={"country": "CA", "state": "ON", "county": None, "postalCode": "K1A0B1"})
    assert patch["Addresses"] == [
        {
            "RecordId": primary_id,
            "County": "",
            "State": "ON",
            "StateName": "Ontario",
            "ZipCode": "K1A 0B1",
            "ThreeLetterISORegionName": "CAN",
            "FullAddress": "Example Avenue 12\nSeattle, ON K1A 0B1\nCAN",
        }
    ]


def test_address_is_added_without_record_id_when_there_is_no_primary():
    existing = stored(build_create_body(normalised(), mapping()))
    patch = check(existing, address={"country": "DK", "city": "Aarhus"})
    assert patch["Addresses"] == [
        {
            "City": "Aarhus",
            "ThreeLetterISORegionName": "DNK",
            "FullAddress": "Aarhus\nDNK",
            "IsPrimary": True,
            "AddressTypeValue": 7,
        }
    ]


def test_codes_compare_case_insensitively():
    existing = stored(build_create_body(normalised(**FULL), mapping()))
    existing["Addresses"][0]["State"] = "wa"
    existing["Addresses"][0]["ThreeLetterISORegionName"] = "usa"
    existing["CurrencyCode"] = "gbp"
    assert check(existing, address=FULL["address"], currencyCode="GBP") is None


def test_email_change_updates_email_receipt_email_and_contact():
    """The diff is ready for email changes; validation refuses them until the sync ledger exists,
    so this event is built from a valid one rather than validated."""
    existing = stored(build_create_body(normalised(), mapping()))
    email_id = existing["Contacts"][0]["RecordId"]
    new = normalised(email="new@example.com")
    changed = new.model_copy(
        update={"previous_email": "ada@example.com", "previous_email_match_key": "ada@example.com"}
    )
    patch = build_patch(existing, changed, mapping())
    assert patch == {
        "AccountNumber": "004075",
        "Email": "new@example.com",
        "ReceiptEmail": "new@example.com",
        "Contacts": [{"RecordId": email_id, "Value": "new@example.com"}],
    }


def test_email_differing_in_case_only_is_unchanged():
    existing = stored(build_create_body(normalised(), mapping()))
    assert check(existing, email="ADA@Example.com") is None


def test_customer_account_and_created_date_time_are_never_sent():
    existing = stored(build_create_body(normalised(), mapping()))
    assert check(existing, customerAccount="X-1", createdDateTime="2020-01-01T00:00:00Z") is None
