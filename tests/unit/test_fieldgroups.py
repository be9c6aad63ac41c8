"""Field groups: keyed hashes of what was applied, and the PATCH of just the changed groups (no read)."""

from __future__ import annotations

import copy
import random
import re

import pytest

from shared.core.commerce_bodies.groups import GROUPS, blind_patch, changed_groups, group_hashes
from shared.core.commerce_bodies.patch import build_patch
from tests.support.builders import FULL, KEY, event, known_entry, mapping
from tests.support.commerce_documents import stored_customer
from tests.support.patches import patch_for, same_result

_HEX32 = re.compile(r"^[0-9a-f]{32}$")


# --- group_hashes --------------------------------------------------------------------------------------


def test_absent_groups_have_no_hash():
    assert set(group_hashes(event(), KEY)) == {"email"}  # the email is always there
    assert set(group_hashes(event(middleName=None), KEY)) == {"email", "name"}
    assert set(group_hashes(event(language="en-GB", isOptedInMarketing=False), KEY)) == {"email", "profile", "consent"}
    assert set(group_hashes(event(**FULL), KEY)) == set(GROUPS)


def test_same_data_gives_the_same_hashes_whatever_the_event():
    a = group_hashes(event("evt-1", **FULL), KEY)
    b = group_hashes(event("evt-2", email="ADA@Example.com", **FULL), KEY)  # same match key
    assert a == b
    assert all(_HEX32.match(h) for h in a.values())
    assert len(set(a.values())) == len(a)  # the group name is hashed too: no two groups collide


def test_a_changed_phone_changes_only_the_phone_group():
    a = group_hashes(event(**FULL), KEY)
    b = group_hashes(event(**{**FULL, "phone": "+1 202 555 0199"}), KEY)
    assert {g for g in a if a[g] != b[g]} == {"phone"}
    assert changed_groups(a, b) == ["phone"]


def test_a_changed_postal_code_changes_only_the_address_group():
    a = group_hashes(event(**FULL), KEY)
    b = group_hashes(event(**{**FULL, "address": {**FULL["address"], "postalCode": "98102"}}), KEY)
    assert changed_groups(a, b) == ["address"]


def test_null_and_absent_are_different_data():
    absent = group_hashes(event(firstName="Ada", lastName="L"), KEY)
    cleared = group_hashes(event(firstName="Ada", lastName="L", middleName=None), KEY)
    assert absent["name"] != cleared["name"]


def test_the_key_matters():
    a = group_hashes(event(**FULL), KEY)
    b = group_hashes(event(**FULL), KEY + b"x")
    assert set(a) == set(b) and all(a[g] != b[g] for g in a)


def test_no_raw_value_appears_in_the_hashes():
    hashes = group_hashes(event(**FULL), KEY)
    text = repr(hashes).lower()
    for value in (
        "ada",
        "lovelace",
        "king",
        "example",
        "2025550142",
        "555",
        "seattle",
        "98101",
        "en-gb",
        "gbp",
        "home",
    ):
        assert value not in text
    assert all(_HEX32.match(h) for h in hashes.values())


def test_changed_groups():
    assert changed_groups({}, {"email": "1", "name": "2"}) == ["email", "name"]
    assert changed_groups({"email": "1", "name": "2", "phone": "3"}, {"email": "1", "name": "9"}) == ["name"]
    assert changed_groups({"email": "1"}, {"email": "1"}) == []


# --- blind_patch ---------------------------------------------------------------------------------------


def test_name_change_with_all_parts():
    patch, _, groups = patch_for(FULL, {**FULL, "firstName": "Grace", "middleName": "B", "lastName": "Hopper"})
    assert groups == ["name"]
    assert patch == {"FirstName": "Grace", "MiddleName": "B", "LastName": "Hopper", "Name": "Grace B Hopper"}


def test_name_change_with_the_middle_name_missing_but_known_empty():
    before = {"firstName": "Ada", "lastName": "Lovelace"}
    patch, customer, _ = patch_for(before, {"firstName": "Grace", "lastName": "Hopper"})
    assert customer["MiddleName"] == ""
    assert patch == {"FirstName": "Grace", "LastName": "Hopper", "Name": "Grace Hopper"}


def test_name_change_with_a_part_missing_and_unknown_needs_a_read():
    patch, customer, groups = patch_for(FULL, {"firstName": "Grace", "lastName": "Lovelace"})
    assert customer["MiddleName"] == "King" and "name" in groups
    assert patch is None


def test_clearing_the_middle_name():
    patch, _, _ = patch_for(FULL, {"middleName": None, "firstName": "Ada", "lastName": "Lovelace"})
    assert patch == {"FirstName": "Ada", "MiddleName": "", "LastName": "Lovelace", "Name": "Ada Lovelace"}


def test_address_change_by_record_id_with_full_address_composed():
    new = {
        **FULL,
        "address": {
            **FULL["address"],
            "street": "Pine St",
            "streetNumber": "7",
            "city": "Portland",
            "state": "OR",
            "postalCode": "97201",
        },
    }
    patch, customer, groups = patch_for(FULL, new)
    assert groups == ["address"]
    [address] = patch["Addresses"]
    assert set(patch) == {"Addresses"}
    assert address["RecordId"] == customer["Addresses"][0]["RecordId"]
    assert isinstance(address["RecordId"], int)  # Int64 in Commerce, text in the ledger
    assert address["FullAddress"] == "Pine St 7\nPortland, OR 97201\nUSA"
    assert (address["Street"], address["City"], address["State"], address["StateName"], address["ZipCode"]) == (
        "Pine St",
        "Portland",
        "OR",
        "Oregon",
        "97201",
    )
    assert address["ThreeLetterISORegionName"] == "USA"


def test_partial_address_with_a_missing_part_unknown_needs_a_read():
    before = {"address": {"street": "Main St", "city": "Aarhus", "country": "DK"}}
    patch, _, _ = patch_for(before, {"address": {"street": "Nørregade", "country": "DK"}})
    assert patch is None  # City is set in Commerce, absent from the event: unknown to the ledger


def test_partial_address_with_missing_parts_all_known_empty():
    before = {"address": {"street": "Main St", "country": "DK"}}
    patch, customer, _ = patch_for(before, {"address": {"street": "Nørregade", "country": "DK"}})
    [address] = patch["Addresses"]
    assert address == {
        "RecordId": customer["Addresses"][0]["RecordId"],
        "Street": "Nørregade",
        "ThreeLetterISORegionName": "DNK",
        "FullAddress": "Nørregade\nDNK",
    }


def test_a_new_address_when_the_ledger_knows_no_record_id():
    patch, customer, groups = patch_for(
        {"firstName": "Ada"}, {"firstName": "Ada", "address": {"city": "Aarhus", "country": "DK"}}
    )
    assert customer["Addresses"] == [] and groups == ["address"]
    assert patch == {
        "Addresses": [
            {
                "City": "Aarhus",
                "ThreeLetterISORegionName": "DNK",
                "FullAddress": "Aarhus\nDNK",
                "IsPrimary": True,
                "AddressTypeValue": 7,
            }
        ]
    }


def test_phone_change_updates_the_known_contact_by_record_id():
    patch, customer, _ = patch_for(FULL, {**FULL, "phone": "+1 202 555 0199"})
    phone_contact = customer["Contacts"][1]
    assert phone_contact["AddressTypeValue"] == 1
    assert patch == {
        "Phone": "+12025550199",
        "Contacts": [{"RecordId": phone_contact["RecordId"], "Value": "+12025550199"}],
    }


def test_a_first_phone_is_a_new_contact():
    patch, customer, _ = patch_for(
        {"isOptedInMarketing": True}, {"isOptedInMarketing": True, "phone": "+1 202 555 0199"}
    )
    assert len(customer["Contacts"]) == 1
    assert patch == {
        "Phone": "+12025550199",
        "Contacts": [{"Value": "+12025550199", "AddressTypeValue": 1, "IsPrimary": True, "IsOptedInMarketing": True}],
    }


def test_clearing_the_phone_sends_an_empty_phone_and_keeps_the_contact():
    patch, _, _ = patch_for(FULL, {**FULL, "phone": None})
    assert patch == {"Phone": ""}


def test_consent_goes_to_the_email_and_phone_contacts_by_record_id():
    patch, customer, groups = patch_for(FULL, {**FULL, "isOptedInMarketing": False})
    email_contact, phone_contact = customer["Contacts"]
    assert groups == ["consent"]
    assert patch == {
        "Contacts": [
            {"RecordId": email_contact["RecordId"], "IsOptedInMarketing": False},
            {"RecordId": phone_contact["RecordId"], "IsOptedInMarketing": False},
        ]
    }


def test_consent_and_phone_together_touch_the_phone_contact_once():
    patch, customer, _ = patch_for(FULL, {**FULL, "phone": "+1 202 555 0199", "isOptedInMarketing": False})
    phone_id = customer["Contacts"][1]["RecordId"]
    phone_changes = [c for c in patch["Contacts"] if c.get("RecordId") == phone_id]
    assert phone_changes == [{"RecordId": phone_id, "Value": "+12025550199", "IsOptedInMarketing": False}]


def test_consent_needs_the_email_contact_record_id():
    patch, _, _ = patch_for(FULL, {**FULL, "isOptedInMarketing": False}, email_contact_record_id=None)
    assert patch is None


def test_an_email_change_needs_a_read():
    ev = event("evt-1", **FULL)
    entry = known_entry(stored_customer(ev), ev)
    assert blind_patch(ev, entry, ["email"], mapping()) is None
    assert blind_patch(ev, entry, ["phone", "email"], mapping()) is None


def test_profile_change():
    patch, _, groups = patch_for(FULL, {**FULL, "language": "da-DK", "currencyCode": "DKK", "customerGroup": "50"})
    assert groups == ["profile"]
    assert patch == {"Language": "da-dk", "CurrencyCode": "DKK", "CustomerGroup": "50"}


def test_nothing_storable_changed_gives_an_empty_patch():
    ev = event("evt-1", **FULL)
    entry = known_entry(stored_customer(ev), ev)
    assert blind_patch(ev, entry, [], mapping()) == {}
    bare = event("evt-2")  # carries no consent, no profile, no address
    assert blind_patch(bare, entry, ["consent", "profile", "address"], mapping()) == {}


# --- blind_patch against build_patch: the same customer either way --------------------------------------

CROSS_CASES = {
    "name": (FULL, {**FULL, "firstName": "Grace", "middleName": "B", "lastName": "Hopper"}),
    "name, middle known empty": ({"firstName": "Ada", "lastName": "L"}, {"firstName": "Grace", "lastName": "H"}),
    "middle cleared": (FULL, {**FULL, "middleName": None}),
    "phone": (FULL, {**FULL, "phone": "+1 202 555 0199"}),
    "phone cleared": (FULL, {**FULL, "phone": None}),
    "first phone": ({"isOptedInMarketing": True}, {"isOptedInMarketing": True, "phone": "+45 32 12 34 56"}),
    "consent": (FULL, {**FULL, "isOptedInMarketing": False}),
    "phone and consent": (FULL, {**FULL, "phone": "+1 202 555 0199", "isOptedInMarketing": False}),
    "profile": (FULL, {**FULL, "language": "da-DK", "currencyCode": "DKK", "customerGroup": "50"}),
    "opt out of personalisation": (FULL, {**FULL, "optOutPersonalization": True}),
    "opt in to personalisation": ({**FULL, "optOutPersonalization": True}, {**FULL, "optOutPersonalization": False}),
    "both consents, first contact": ({"firstName": "Ada"}, {"optOutPersonalization": True, "isOptedInMarketing": True}),
    "address": (
        FULL,
        {
            **FULL,
            "address": {
                **FULL["address"],
                "street": "Pine St",
                "state": "OR",
                "postalCode": "97201",
                "city": "Portland",
            },
        },
    ),
    "address part cleared": (FULL, {**FULL, "address": {**FULL["address"], "streetNumber": None}}),
    "partial address, rest empty": (
        {"address": {"street": "Main St", "country": "DK"}},
        {"address": {"street": "Nørregade", "country": "DK"}},
    ),
    "first address": ({"firstName": "Ada"}, {"firstName": "Ada", "address": {"city": "Aarhus", "country": "DK"}}),
}


@pytest.mark.parametrize("before, after", CROSS_CASES.values(), ids=CROSS_CASES.keys())
def test_blind_patch_gives_the_customer_build_patch_gives(before, after):
    blind, read = same_result(before, after)
    assert blind and read, (blind, read)  # every case here is a real change, patchable without a read


_NAMES = {
    "firstName": ["Ada", "Grace"],
    "middleName": ["King", None, "B"],
    "lastName": ["Lovelace", "Hopper"],
    "phone": ["+1 202 555 0142", "+1 202 555 0199", None],
    "isOptedInMarketing": [True, False],
    "optOutPersonalization": [True, False],
    "language": ["en-GB", "da-DK"],
    "currencyCode": ["GBP", "DKK"],
    "customerGroup": ["40", "50"],
}
_ADDRESS = {
    "name": ["Home", None],
    "street": ["Main St", "Pine St"],
    "streetNumber": ["12", None],
    "city": ["Seattle", "Portland"],
    "county": ["KING", None],
    "state": ["WA", "OR", None],
    "postalCode": ["98101", "97201", None],
}


def _random_customer(rnd: random.Random) -> dict:
    customer = {k: rnd.choice(v) for k, v in _NAMES.items() if rnd.random() < 0.6}
    if rnd.random() < 0.6:
        customer["address"] = {"country": "US", **{k: rnd.choice(v) for k, v in _ADDRESS.items() if rnd.random() < 0.6}}
    return customer


def test_blind_patch_agrees_with_build_patch_on_random_pairs():
    rnd = random.Random(20261126)
    blind_count = 0
    for _ in range(300):
        blind, _ = same_result(_random_customer(rnd), _random_customer(rnd))
        blind_count += blind is not None
    assert blind_count > 100  # most pairs are patchable blind: the comparison really ran


# --- restrict: an older event narrowed to the groups it may still write -------------------------------


def test_restrict_drops_the_fields_of_the_other_groups():
    from shared.core.commerce_bodies.groups import restrict
    from shared.core.ledger_rules import carried_groups

    ev = event("evt-1", **FULL)
    only = restrict(ev, frozenset({"name", "consent"}))
    assert carried_groups(only) == {"name", "consent"}
    assert (only.phone, only.address, only.language, only.customer_group) == (None, None, None, None)
    assert (only.first_name, only.is_opted_in_marketing) == ("Ada", True)
    assert (only.email, only.event_id, only.customer_account) == (ev.email, ev.event_id, ev.customer_account)
    assert set(group_hashes(only, KEY)) == {"email", "name", "consent"}
    assert {g: h for g, h in group_hashes(ev, KEY).items() if g in {"email", "name", "consent"}} == group_hashes(
        only, KEY
    )
    assert restrict(ev, frozenset(GROUPS) - {"email"}) is ev  # nothing to drop
    bare = restrict(ev, frozenset())
    assert bare.present == ("createdDateTime", "customerAccount")  # not fields of any group


def test_a_new_phone_contact_without_consent_in_the_event_needs_a_read():
    # the contact takes the customer's consent, which the ledger does not hold
    patch, _, groups = patch_for({"isOptedInMarketing": True}, {"phone": "+1 202 555 0199"})
    assert groups == ["phone"] and patch is None
    # with a known phone contact, a phone change alone is still blind
    patch, _, _ = patch_for(FULL, {"phone": "+1 202 555 0199"})
    assert set(patch) == {"Phone", "Contacts"}


def test_a_contact_added_after_a_read_takes_the_customers_consent():
    customer = stored_customer(event("evt-0", isOptedInMarketing=True))
    patch = build_patch(copy.deepcopy(customer), event("evt-1", phone="+1 202 555 0199"), mapping())
    [added] = patch["Contacts"]
    assert added["AddressTypeValue"] == 1 and added["IsOptedInMarketing"] is True
    # the event's own consent, when it carries one, wins and goes to every contact
    patch = build_patch(
        copy.deepcopy(customer), event("evt-1", phone="+1 202 555 0199", isOptedInMarketing=False), mapping()
    )
    assert sorted(c["IsOptedInMarketing"] for c in patch["Contacts"]) == [False, False]
    # an email contact added to a customer with only a phone contact takes that one's consent
    seeded = copy.deepcopy(stored_customer(event("evt-0", phone="+1 202 555 0142", isOptedInMarketing=True)))
    seeded["Contacts"] = [c for c in seeded["Contacts"] if c["AddressTypeValue"] == 1]
    [added] = build_patch(seeded, event("evt-1", firstName="Ada"), mapping())["Contacts"]
    assert added["AddressTypeValue"] == 2 and added["IsOptedInMarketing"] is True
