"""The Customer API over real HTTP: create, read, partial update, search, keys, async mode, seeding."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

import pytest

from commerce_emulator.odata import key_literal
from commerce_emulator.schema import ADDRESS, CONTACT, CUSTOMER, GLOBAL_CUSTOMER_KEYS
from tests.support.emulator_client import error_id, new_customer, us_address

pytestmark = pytest.mark.integration

NOT_FOUND = "Microsoft_Dynamics_Commerce_Runtime_CustomerNotFound"


def test_create_assigns_server_values_and_stores_a_complete_customer(api, emulator):
    response = api.create(
        new_customer(
            Addresses=[us_address()],
            Contacts=[
                {"Value": "ann@example.com", "IsPrimary": True, "IsOptedInMarketing": False, "AddressTypeValue": 2}
            ],
        )
    )
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    doc = response.json()
    assert re.fullmatch(r"\d{6}", doc["AccountNumber"]) and doc["IsAsyncCustomer"] is False
    assert response.headers["Location"].endswith(f"/Customers({key_literal(doc['AccountNumber'])})")
    assert doc["@odata.context"] == f"{emulator.base_url}/$metadata#Customers/$entity"
    assert datetime.strptime(doc["CreatedDateTime"], "%Y-%m-%dT%H:%M:%SZ")
    assert doc["Name"] == "Ann Lee" and doc["PartyNumber"] and doc["RecordId"] > 0
    assert (doc["CustomerTypeValue"], doc["CustomerGroup"], doc["CurrencyCode"], doc["Language"]) == (
        1,
        "30",
        "USD",
        "en-us",
    )
    stored = emulator.customer(doc["AccountNumber"])
    assert set(stored) == set(CUSTOMER)
    assert {k: v for k, v in doc.items() if not k.startswith("@odata.")} == stored
    assert (stored["Phone"], stored["IsB2b"], stored["CreditLimit"], stored["Images"]) == ("", False, 0, [])
    address, contact = stored["Addresses"][0], stored["Contacts"][0]
    assert set(address) == set(ADDRESS) and set(contact) == set(CONTACT)
    assert address["FullAddress"] == "1 Main St\nAlbany, NY 12207\nUSA"
    assert len({stored["RecordId"], address["RecordId"], contact["RecordId"]}) == 3
    assert api.get(doc["AccountNumber"]).json() == doc


def test_create_keeps_sent_values_over_defaults_and_config_changes_defaults(api, emulator):
    doc = api.create(new_customer(Name="Dr Ann", CustomerGroup="10", Language="da")).json()
    assert (doc["Name"], doc["CustomerGroup"], doc["Language"], doc["CurrencyCode"]) == ("Dr Ann", "10", "da", "USD")
    emulator.configure(create_defaults={"CurrencyCode": "DKK"}, create_status=200)
    response = api.create(new_customer("b@example.com"))
    assert response.status_code == 200
    assert (response.json()["CurrencyCode"], response.json()["CustomerGroup"]) == ("DKK", "30")


def test_create_refuses_a_client_account_number(api):
    response = api.create(new_customer(AccountNumber="C0001"))
    assert response.status_code == 400 and error_id(response) == "Microsoft_Dynamics_RetailServer_BadRequest"


def test_get_unknown_is_404_customer_not_found(api):
    response = api.get("999999")
    assert response.status_code == 404 and error_id(response) == NOT_FOUND


def test_patch_is_partial(api, emulator):
    created = api.create(new_customer(Phone="+16135551111", MiddleName="Q")).json()
    account = created["AccountNumber"]
    response = api.update(account, {"AccountNumber": account, "LastName": "Smith", "IsB2b": True})
    assert response.status_code == 200
    doc = emulator.customer(account)
    assert (doc["LastName"], doc["IsB2b"], doc["Phone"], doc["MiddleName"], doc["FirstName"]) == (
        "Smith",
        True,
        "+16135551111",
        "Q",
        "Ann",
    )
    assert doc["Name"] == "Ann Q Lee"  # composed at create; a stored Name is not recomposed
    assert {k: v for k, v in response.json().items() if not k.startswith("@odata.")} == doc


def test_patch_needs_the_key_in_the_body_and_a_known_key(api):
    account = api.create(new_customer()).json()["AccountNumber"]
    assert api.update(account, {"LastName": "X"}).status_code == 400
    assert api.update(account, {"AccountNumber": "004999", "LastName": "X"}).status_code == 400
    missing = api.update("004999", {"AccountNumber": "004999", "LastName": "X"})
    assert missing.status_code == 404 and error_id(missing) == NOT_FOUND


def test_patch_merges_addresses_and_contacts_by_record_id_and_adds_the_rest(api, emulator):
    created = api.create(
        new_customer(
            Addresses=[us_address()], Contacts=[{"Value": "+16135551111", "AddressTypeValue": 1, "IsPrimary": True}]
        )
    ).json()
    account, address, contact = created["AccountNumber"], created["Addresses"][0], created["Contacts"][0]
    response = api.update(
        account,
        {
            "AccountNumber": account,
            "Addresses": [
                {"RecordId": address["RecordId"], "City": "Troy", "ZipCode": "12180"},
                {"Street": "9 Side Rd", "City": "Aarhus", "ZipCode": "8000", "ThreeLetterISORegionName": "DNK"},
            ],
            "Contacts": [
                {"RecordId": contact["RecordId"], "IsMobilePhone": True},
                {"Value": "ann@example.com", "AddressTypeValue": 2},
            ],
        },
    )
    assert response.status_code == 200
    doc = emulator.customer(account)
    updated, added = doc["Addresses"]
    assert updated["RecordId"] == address["RecordId"]
    assert (updated["Street"], updated["City"], updated["State"], updated["IsPrimary"]) == (
        "1 Main St",
        "Troy",
        "NY",
        True,
    )
    assert updated["FullAddress"] == "1 Main St\nTroy, NY 12180\nUSA"
    assert added["RecordId"] not in (0, address["RecordId"]) and added["FullAddress"] == "9 Side Rd\nAarhus, 8000\nDNK"
    assert [(c["Value"], c["IsMobilePhone"]) for c in doc["Contacts"]] == [
        ("+16135551111", True),
        ("ann@example.com", False),
    ]
    unknown = api.update(account, {"AccountNumber": account, "Addresses": [{"RecordId": 1, "City": "X"}]})
    assert unknown.status_code == 400 and error_id(unknown) == "Microsoft_Dynamics_Commerce_Runtime_ObjectNotFound"
    assert emulator.customer(account) == doc


def test_patch_validates_what_is_sent(api, emulator):
    account = api.create(new_customer(Addresses=[us_address()])).json()["AccountNumber"]
    before = emulator.customer(account)
    bad_email = api.update(account, {"AccountNumber": account, "Email": "nope"})
    assert (
        bad_email.status_code == 400
        and error_id(bad_email) == "Microsoft_Dynamics_Commerce_Runtime_InvalidEmailAddress"
    )
    bad_country = api.update(
        account, {"AccountNumber": account, "Addresses": [{"City": "X", "ThreeLetterISORegionName": "ZZZ"}]}
    )
    assert error_id(bad_country) == "Microsoft_Dynamics_Commerce_Runtime_InvalidCountryRegion"
    assert emulator.customer(account) == before


def _seed_emails(emulator, emails):
    return emulator.seed([{"FirstName": "S", "Email": e, "Addresses": [us_address()]} for e in emails])


def test_search_is_a_case_insensitive_prefix_match_from_seven_characters(api, emulator):
    _seed_emails(
        emulator,
        ["ann@x.com", "Ann@X.com.au", "anna@x.com", "bob@x.com", "a@b.co", "a@b.com", "jo.ann@x.com", "ann.lee@x.com"],
    )

    def found(term):
        return sorted(c["Email"] for c in api.search(term).json()["value"])

    # full-text: each word of the term is a prefix of a word of the email (ann* x* com*)
    assert found("ANN@x.com") == ["Ann@X.com.au", "ann@x.com", "anna@x.com", "jo.ann@x.com"]
    assert found("ann@x.c") == ["Ann@X.com.au", "ann@x.com", "anna@x.com", "jo.ann@x.com"]
    assert found("a@b.co") == ["a@b.co"]  # 6 characters: exact words, not a prefix of a@b.com
    assert found("nobody@x.com") == []
    emulator.configure(search_match="email_prefix")  # the switch: one string prefix of the whole address
    assert found("ANN@x.com") == ["Ann@X.com.au", "ann@x.com"]
    assert found("a@b.co") == ["a@b.co"]
    with pytest.raises(RuntimeError, match="search_match"):
        emulator.configure(search_match="exact")


def test_search_index_follows_updates_syncs_and_failed_seeds(api, emulator):
    account = api.create(new_customer("first.last@example.com")).json()["AccountNumber"]
    assert api.update(account, {"AccountNumber": account, "Email": "other.name@example.org"}).status_code == 200

    def found(term):
        return [c["AccountNumber"] for c in api.search(term).json()["value"]]

    assert found("first.last@example.com") == [] and found("last@example.com") == []
    assert found("name@example.org") == [account]  # a phrase inside the address
    with pytest.raises(RuntimeError):
        emulator.seed([{"Email": "rolled.back@example.com"}, {"Email": "x@example.com", "Nope": 1}])
    assert found("rolled.back@example.com") == []


def test_search_returns_global_customers_ordered_by_record_id(api, emulator):
    emulator.seed(
        [
            {
                "Email": "zed@example.com",
                "RecordId": 9000002,
                "FirstName": "Zed",
                "Addresses": [us_address(IsPrimary=False, Street="2 Other"), us_address(Street="3 Primary")],
            },
            {"Email": "zed@example.com.au", "RecordId": 9000001, "Name": "Z Two"},
        ]
    )
    response = api.search("zed@example.com")
    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"] == f"{emulator.base_url}/$metadata#GlobalCustomers"
    first, second = body["value"]
    assert list(first) == list(GLOBAL_CUSTOMER_KEYS)
    assert (first["RecordId"], first["FullName"], first["FullAddress"]) == (9000001, "Z Two", "")
    assert (second["RecordId"], second["FullName"]) == (9000002, "Zed")
    assert second["FullAddress"] == "3 Primary\nAlbany, NY 12207\nUSA"


def test_search_paging(api, emulator):
    _seed_emails(emulator, [f"paging-{n:02d}@example.com" for n in range(55)])

    def page(query):
        return [c["Email"] for c in api.search("paging-", query).json()["value"]]

    everything = page("$top=100")
    assert everything == [f"paging-{n:02d}@example.com" for n in range(55)]  # seeded in order: RecordId order
    assert page("") == everything[:50]
    assert page("$top=3") == everything[:3]
    assert page("$top=3&$skip=3") == everything[3:6]
    assert page("%24top=3&%24skip=54") == everything[54:]
    emulator.configure(max_top=2)
    assert page("$top=10") == everything[:2]
    assert api.search("paging-", "$top=abc").status_code == 400


def test_search_next_link_only_for_server_driven_pages(api, emulator):
    _seed_emails(emulator, [f"paging-{n:02d}@example.com" for n in range(55)])

    def body(query):
        return api.search("paging-", query).json()

    assert "@odata.nextLink" not in body("$top=3")  # the client's own $top: no server paging
    assert body("")["@odata.nextLink"].endswith("/Customers/SearchByFields?$top=50&$skip=50")  # default page
    assert "@odata.nextLink" not in body("$skip=50")  # the last page
    emulator.configure(max_top=2)
    capped = body("$top=10&$skip=4")
    assert len(capped["value"]) == 2 and capped["@odata.nextLink"].endswith("?$top=2&$skip=6")
    assert "@odata.nextLink" not in body("$top=10&$skip=53")


def test_search_rejects_malformed_bodies_and_other_fields(api):
    path = "/Customers/SearchByFields"
    assert api.request("POST", path, data="{not json", headers={"Content-Type": "application/json"}).status_code == 400
    assert api.request("POST", path, json={"Criteria": []}).status_code == 400
    other = api.request(
        "POST",
        path,
        json={
            "CustomerSearchByFieldCriteria": {
                "Criteria": [{"SearchTerm": "+1613", "SearchField": {"Name": "Phone", "Value": 1}}],
                "DataLevelValue": 1,
            }
        },
    )
    assert other.status_code == 400 and "error" in other.json()


def test_keys_are_odata_string_literals(api, emulator):
    emulator.seed(
        [
            {"AccountNumber": "O'Brien", "Email": "ob@example.com"},
            {"AccountNumber": "A/B (1)", "Email": "ab@example.com"},
        ]
    )
    assert api.get("O'Brien").json()["Email"] == "ob@example.com"
    assert api.request("GET", "/Customers('O''Brien')").status_code == 200  # requests URL-encodes the quotes
    assert api.get("A/B (1)").json()["Email"] == "ab@example.com"
    assert api.request("GET", "/Customers(O'Brien)").status_code == 400  # not quoted
    assert api.request("GET", "/Customers('O'Brien')").status_code == 400  # inner quote not doubled
    response = api.update("O'Brien", {"AccountNumber": "O'Brien", "Phone": "+353123"})
    assert response.status_code == 200 and emulator.customer("O'Brien")["Phone"] == "+353123"


def test_async_mode_and_sync(api, emulator):
    emulator.configure(async_mode=True)
    created = api.create(new_customer("async@example.com")).json()
    guid = created["AccountNumber"]
    assert uuid.UUID(guid) and created["IsAsyncCustomer"] is True
    assert api.get(guid).status_code == 200
    assert api.search("async@example.com").json()["value"][0]["IsAsyncCustomer"] is True
    renumbered = emulator.sync_async_customers()
    assert list(renumbered) == [guid] and re.fullmatch(r"\d{6}", renumbered[guid])
    assert api.get(guid).status_code == 404
    synced = api.get(renumbered[guid]).json()
    assert synced["IsAsyncCustomer"] is False and synced["RecordId"] == created["RecordId"]
    assert [c["AccountNumber"] for c in api.search("async@example.com").json()["value"]] == [renumbered[guid]]
    assert emulator.sync_async_customers() == {}


def test_seed_keeps_given_values_and_assigns_the_rest(emulator):
    guid = str(uuid.uuid4())
    seeded = emulator.seed(
        [
            {
                "AccountNumber": "004001",
                "RecordId": 7000000001,
                "Email": "one@example.com",
                "Addresses": [{"RecordId": 7000000002, "City": "Oslo", "ThreeLetterISORegionName": "NOR"}],
            },
            {"AccountNumber": guid, "IsAsyncCustomer": True, "Email": "two@example.com"},
            {"Email": "three@example.com"},
        ]
    )
    assert [(c["AccountNumber"], c["IsAsyncCustomer"]) for c in seeded[:2]] == [("004001", False), (guid, True)]
    assert seeded[0]["RecordId"] == 7000000001 and seeded[0]["Addresses"][0]["RecordId"] == 7000000002
    assert seeded[0]["Addresses"][0]["FullAddress"] == "Oslo\nNOR"
    assert seeded[2]["AccountNumber"] == "004002"  # the sequence skips numbers already taken
    assert seeded[2]["RecordId"] > 7000000002 and set(seeded[2]) == set(CUSTOMER)
    assert emulator.customers() == seeded
    with pytest.raises(RuntimeError, match="DuplicateObject"):
        emulator.seed([{"AccountNumber": "004001", "Email": "x@example.com"}])
    with pytest.raises(RuntimeError, match="BadRequest"):
        emulator.seed([{"Email": "x@example.com", "Nope": 1}])
    assert len(emulator.customers()) == 3


def test_search_follows_an_email_change(api):
    account = api.create(new_customer("before@example.com")).json()["AccountNumber"]
    assert api.update(account, {"AccountNumber": account, "Email": "after@example.com"}).status_code == 200
    assert api.search("before@example.com").json()["value"] == []
    assert [c["AccountNumber"] for c in api.search("AFTER@example.com").json()["value"]] == [account]
