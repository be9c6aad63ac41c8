"""build_create_body: a Commerce Customer create body per docs/commerce-api.md ("Create", "Entities")."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.core.commerce_bodies.create import build_create_body, compose_full_address
from shared.core.settings import InvalidFieldPolicy, MappingSettings
from shared.core.validation import validate_event

# The complete property lists of docs/commerce-api.md ("Entities", each "complete property list"),
# written out independently of shared/core/commerce_bodies/create.py so that a typo there fails here.
CUSTOMER_PROPERTIES = frozenset(
    """
AccountNumber Name FirstName MiddleName LastName PartyNumber NewCustomerPartyNumber OrganizationId
IdentificationNumber CNPJCPFNumber Phone PhoneExt Cellphone Email Url ReceiptEmail ChargeGroup PriceGroup
Language CustomerGroup CurrencyCode InvoiceAccount CreditRating MultilineDiscountGroup TotalDiscountGroup
LineDiscountGroup TaxGroup SalesTaxGroup CommissionSalesGroupId TaxExemptNumber VatNumber TaxOffice Tag
OfflineImage BusinessPartnerId DefaultPaymentMethod
RecordId PhoneRecordId EmailRecordId UrlRecordId PersonNameId DirectoryPartyRecordId
RetailCustomerTableRecordId TitleRecordId CustomerTypeValue BlockedType ReceiptSettings CreditLimit Balance
IsCustomerTaxInclusive MandatoryCreditLimit Blocked UseOrderNumberReference UsePurchaseRequest
NonChargeableAccount OptOutPersonalization OptOutWebActivityTracking IsAsyncCustomer IsFloorLimitBlocked
IsB2b IsB2bAdmin AllowOnAccountPayment CreatedDateTime
CustomerAffiliations Addresses Attributes Images Contacts ExtensionProperties
""".split()
)
ADDRESS_PROPERTIES = frozenset(
    """
Name Id FullAddress Street StreetNumber County CountyName City DistrictName State StateName ZipCode
ThreeLetterISORegionName TwoLetterISORegionName Phone PhoneExt Email EmailContent Url AttentionTo
BuildingCompliment Postbox TaxGroup PartyNumber LogisticsLocationId PhoneLogisticsLocationId
EmailLogisticsLocationId UrlLogisticsLocationId DataAreaId
RecordId PhoneRecordId EmailRecordId UrlRecordId AddressTypeValue DirectoryPartyTableRecordId
DirectoryPartyLocationRecordId DirectoryPartyLocationRoleRecordId LogisticsLocationRecordId
LogisticsLocationExtRecordId LogisticsLocationRoleRecordId PhoneLogisticsLocationRecordId
EmailLogisticsLocationRecordId UrlLogisticsLocationRecordId ExpireRecordId SortOrder RoleCount
Deactivate IsPrimary IsPrivate IsAsyncAddress ExtensionProperties
""".split()
)
CONTACT_PROPERTIES = frozenset(
    """
AddressTypeValue RecordId PartyLocationRecordId PartyRecordId PartyNumber Description Value
ValueExtension LogisticsLocationId LogisticsLocationRecordId ParentLocation IsPrimary IsMobilePhone
IsPrivate IsOptedInMarketing ExtensionProperties
""".split()
)

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
KEY = b"test-hash-key-0123456789"


def mapping(group="30", currency="USD", language="en-us", address_type=7) -> MappingSettings:
    return MappingSettings(
        default_customer_type=1,
        default_group=group,
        default_currency=currency,
        default_language=language,
        address_type=address_type,
        default_country="US",
        state_id_overrides={},
        invalid_field_policy=InvalidFieldPolicy.REJECT,
    )


def normalised(**customer):
    raw = {
        "eventId": "evt-1",
        "occurredAt": "2026-11-26T11:00:00Z",
        "customer": {"email": "ada@example.com", **customer},
    }
    result = validate_event(raw, now=NOW, settings=mapping(), hash_key=KEY)
    assert result.errors == []
    return result.event


FULL = dict(
    firstName="Ada",
    middleName="King",
    lastName="Lovelace",
    phone="(202) 555-0142",
    isOptedInMarketing=True,
    language="en-GB",
    currencyCode="GBP",
    customerGroup="40",
    customerAccount="C-9",
    createdDateTime="2026-01-01T00:00:00Z",
    address={
        "name": "Home",
        "street": "Example Avenue",
        "streetNumber": "12",
        "city": "Seattle",
        "county": "KING",
        "state": "WA",
        "postalCode": "98101",
        "country": "US",
    },
)


def assert_only_reference_properties(body: dict) -> None:
    assert set(body) <= CUSTOMER_PROPERTIES, set(body) - CUSTOMER_PROPERTIES
    for address in body.get("Addresses", []):
        assert set(address) <= ADDRESS_PROPERTIES, set(address) - ADDRESS_PROPERTIES
    for contact in body.get("Contacts", []):
        assert set(contact) <= CONTACT_PROPERTIES, set(contact) - CONTACT_PROPERTIES


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
