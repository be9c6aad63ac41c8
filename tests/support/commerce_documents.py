"""What Commerce holds and accepts: the reference's property lists, checks of a body against them, the
documents the emulator's pure core stores after a create, and complete documents as Commerce returns
them (every property present), for the tests of the create and PATCH bodies."""

from __future__ import annotations

import itertools

from commerce_emulator.config import DEFAULT_CONFIG
from commerce_emulator.documents import build_customer
from shared.core.commerce_bodies.create import build_create_body
from shared.core.commerce_bodies.patch import build_patch
from tests.support.builders import mapping, normalised

# The complete property lists of docs/commerce-api.md ("Entities", each "complete property list"),
# written out independently of shared/core/commerce_bodies/create.py so that a typo there fails a test.
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


def assert_only_reference_properties(body: dict) -> None:
    assert set(body) <= CUSTOMER_PROPERTIES, set(body) - CUSTOMER_PROPERTIES
    for address in body.get("Addresses", []):
        assert set(address) <= ADDRESS_PROPERTIES, set(address) - ADDRESS_PROPERTIES
    for contact in body.get("Contacts", []):
        assert set(contact) <= CONTACT_PROPERTIES, set(contact) - CONTACT_PROPERTIES


class FakeIds:
    """The emulator's id source, deterministic."""

    def __init__(self, start: int = 5637144576):
        self._ids = itertools.count(start)
        self._accounts = itertools.count(4000)

    def record_id(self) -> int:
        return next(self._ids)

    def account_number(self) -> str:
        return f"{next(self._accounts):06d}"

    def async_account_number(self) -> str:
        return f"async-{next(self._accounts)}"

    def party_number(self) -> str:
        return f"P{next(self._ids)}"

    def now(self) -> str:
        return "2026-11-26T12:00:00Z"


def stored_customer(ev, ids: FakeIds | None = None, **config) -> dict:
    """The Customer document Commerce (its emulator's pure core) holds after creating ``ev``."""
    return build_customer(build_create_body(ev, mapping()), {**DEFAULT_CONFIG, **config}, ids or FakeIds())


_ids = itertools.count(5637144576)  # shared by every stored(): no two documents reuse a RecordId
_NUMBERS = {
    "AddressTypeValue",
    "CustomerTypeValue",
    "BlockedType",
    "ReceiptSettings",
    "CreditLimit",
    "Balance",
    "SortOrder",
    "RoleCount",
}
_COLLECTIONS = {"CustomerAffiliations", "Addresses", "Attributes", "Images", "Contacts", "ExtensionProperties"}
_BOOLEANS = {
    "IsCustomerTaxInclusive",
    "MandatoryCreditLimit",
    "Blocked",
    "UseOrderNumberReference",
    "UsePurchaseRequest",
    "NonChargeableAccount",
    "OptOutPersonalization",
    "OptOutWebActivityTracking",
    "IsAsyncCustomer",
    "IsFloorLimitBlocked",
    "IsB2b",
    "IsB2bAdmin",
    "AllowOnAccountPayment",
    "Deactivate",
    "IsPrimary",
    "IsPrivate",
    "IsAsyncAddress",
    "IsMobilePhone",
    "IsOptedInMarketing",
}


def _complete(item: dict, properties: frozenset[str]) -> dict:
    """What Commerce returns: every property, "" / 0 / false when unset, RecordIds assigned."""
    out = {}
    for prop in sorted(properties):
        if prop in item:
            out[prop] = item[prop]
        elif prop.endswith("RecordId") or prop == "RecordId":
            out[prop] = next(_ids) if prop == "RecordId" else 0
        elif prop in _NUMBERS:
            out[prop] = 0
        elif prop in _BOOLEANS:
            out[prop] = False
        elif prop in _COLLECTIONS:
            out[prop] = []
        else:
            out[prop] = ""
    return out


def stored(create_body: dict) -> dict:
    """The customer Commerce returns after ``create_body``: every property present, RecordIds assigned."""
    doc = _complete(
        {**create_body, "AccountNumber": "004075", "CreatedDateTime": "2026-11-26T12:00:00Z"}, CUSTOMER_PROPERTIES
    )
    doc["Addresses"] = [_complete(a, ADDRESS_PROPERTIES) for a in create_body["Addresses"]]
    doc["Contacts"] = [_complete(c, CONTACT_PROPERTIES) for c in create_body["Contacts"]]
    return doc


def check(existing: dict, **customer):
    """build_patch over ``existing`` for an event carrying ``customer``; a PATCH names reference
    properties only, and the account of ``stored``."""
    patch = build_patch(existing, normalised(**customer), mapping())
    if patch is not None:
        assert_only_reference_properties(patch)
        assert patch["AccountNumber"] == "004075"
    return patch
