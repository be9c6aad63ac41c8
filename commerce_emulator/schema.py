"""The Customer, Address and ContactInfo property lists of the Commerce API, with their JSON types.

Copied exactly from docs/commerce-api.md ("Entities", each "complete property list"). The emulator uses them
twice: to reject what a real CSU would reject (unknown property, wrong JSON type) and to store what a real CSU
stores (every known property present, defaulted when not set) so the product's diff sees real documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STRING, INTEGER, DECIMAL, BOOLEAN, DATE, COLLECTION = "string", "integer", "decimal", "boolean", "date", "collection"


def _kinds(**groups: str) -> dict[str, str]:
    """``_kinds(string="A B", integer="C")`` -> {"A": "string", "B": "string", "C": "integer"}."""
    out: dict[str, str] = {}
    for kind, names in groups.items():
        for name in names.split():
            out[name] = kind
    return out


CUSTOMER: dict[str, str] = _kinds(
    string="AccountNumber Name FirstName MiddleName LastName PartyNumber NewCustomerPartyNumber OrganizationId "
    "IdentificationNumber CNPJCPFNumber Phone PhoneExt Cellphone Email Url ReceiptEmail ChargeGroup "
    "PriceGroup Language CustomerGroup CurrencyCode InvoiceAccount CreditRating MultilineDiscountGroup "
    "TotalDiscountGroup LineDiscountGroup TaxGroup SalesTaxGroup CommissionSalesGroupId TaxExemptNumber "
    "VatNumber TaxOffice Tag OfflineImage BusinessPartnerId DefaultPaymentMethod",
    integer="RecordId PhoneRecordId EmailRecordId UrlRecordId PersonNameId DirectoryPartyRecordId "
    "RetailCustomerTableRecordId TitleRecordId CustomerTypeValue BlockedType ReceiptSettings",
    decimal="CreditLimit Balance",
    boolean="IsCustomerTaxInclusive MandatoryCreditLimit Blocked UseOrderNumberReference UsePurchaseRequest "
    "NonChargeableAccount OptOutPersonalization OptOutWebActivityTracking IsAsyncCustomer "
    "IsFloorLimitBlocked IsB2b IsB2bAdmin AllowOnAccountPayment",
    date="CreatedDateTime",
    collection="CustomerAffiliations Addresses Attributes Images Contacts ExtensionProperties",
)

ADDRESS: dict[str, str] = _kinds(
    string="Name Id FullAddress Street StreetNumber County CountyName City DistrictName State StateName ZipCode "
    "ThreeLetterISORegionName TwoLetterISORegionName Phone PhoneExt Email EmailContent Url AttentionTo "
    "BuildingCompliment Postbox TaxGroup PartyNumber LogisticsLocationId PhoneLogisticsLocationId "
    "EmailLogisticsLocationId UrlLogisticsLocationId DataAreaId",
    integer="RecordId PhoneRecordId EmailRecordId UrlRecordId AddressTypeValue DirectoryPartyTableRecordId "
    "DirectoryPartyLocationRecordId DirectoryPartyLocationRoleRecordId LogisticsLocationRecordId "
    "LogisticsLocationExtRecordId LogisticsLocationRoleRecordId PhoneLogisticsLocationRecordId "
    "EmailLogisticsLocationRecordId UrlLogisticsLocationRecordId ExpireRecordId SortOrder RoleCount",
    boolean="Deactivate IsPrimary IsPrivate IsAsyncAddress",
    collection="ExtensionProperties",
)

CONTACT: dict[str, str] = _kinds(
    string="PartyNumber Description Value ValueExtension LogisticsLocationId",
    integer="AddressTypeValue RecordId PartyLocationRecordId PartyRecordId LogisticsLocationRecordId ParentLocation",
    boolean="IsPrimary IsMobilePhone IsPrivate IsOptedInMarketing",
    collection="ExtensionProperties",
)

GLOBAL_CUSTOMER_KEYS = (
    "AccountNumber",
    "PartyNumber",
    "RecordId",
    "FullName",
    "FullAddress",
    "Phone",
    "Email",
    "CustomerTypeValue",
    "IsAsyncCustomer",
    "IsB2b",
    "Images",
    "ExtensionProperties",
)

# Collections whose items are entities docs/commerce-api.md ("Entities") lists completely: checked property by property.
NESTED: dict[str, dict[str, str]] = {"Addresses": ADDRESS, "Contacts": CONTACT}

_DEFAULTS = {STRING: "", INTEGER: 0, DECIMAL: 0, BOOLEAN: False, DATE: None}


@dataclass(frozen=True)
class Problem:
    """One reason to reject a request body. ``kind`` picks the ErrorResourceId (see api_errors.py)."""

    kind: str  # "unknown_property" | "invalid_format" | "required" | "invalid_email" | "invalid_country" | ...
    member: str  # the property path, e.g. "Addresses[0].ThreeLetterISORegionName"
    message: str


def is_annotation(key: str) -> bool:
    return key.startswith("@odata.") or "@odata." in key  # "Prop@odata.type" is an annotation too


def type_ok(kind: str, value: Any) -> bool:
    """Whether ``value`` is a JSON value an OData server accepts for a property of ``kind``.

    Strings and dates are nullable (null is stored as the default); numbers, booleans and collections are not.
    Booleans are not numbers here, unlike in Python.
    """
    if kind in (STRING, DATE):
        return value is None or isinstance(value, str)
    if kind == INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == DECIMAL:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == BOOLEAN:
        return isinstance(value, bool)
    if kind == COLLECTION:
        return isinstance(value, list)
    return False


def check_entity(body: Mapping[str, Any], spec: Mapping[str, str], path: str, strict: bool) -> list[Problem]:
    """Unknown properties (when ``strict``) and wrong JSON types, recursing into Addresses and Contacts."""
    problems: list[Problem] = []
    for key, value in body.items():
        member = f"{path}{key}"
        if is_annotation(key):
            continue
        kind = spec.get(key)
        if kind is None:
            if strict:
                problems.append(
                    Problem("unknown_property", member, f"The property '{key}' does not exist on this type.")
                )
            continue
        if not type_ok(kind, value):
            problems.append(Problem("invalid_format", member, f"The value of '{key}' is not a valid {kind}."))
            continue
        if kind == COLLECTION:
            problems.extend(_check_collection(key, value, member, spec, strict))
    return problems


def _check_collection(key: str, items: list, member: str, spec: Mapping[str, str], strict: bool) -> list[Problem]:
    problems: list[Problem] = []
    nested = NESTED.get(key) if spec is CUSTOMER else None
    for i, item in enumerate(items):
        item_path = f"{member}[{i}]"
        if not isinstance(item, dict):
            problems.append(Problem("invalid_format", item_path, f"The items of '{key}' must be objects."))
        elif nested is not None:
            problems.extend(check_entity(item, nested, item_path + ".", strict))
        elif key == "ExtensionProperties":
            # CommerceProperty: {"Key": str, "Value": CommercePropertyValue object}
            if not isinstance(item.get("Key"), str) or not isinstance(item.get("Value", {}), (dict, type(None))):
                problems.append(
                    Problem(
                        "invalid_format", item_path, "An extension property needs a string Key and an object Value."
                    )
                )
    return problems


def complete(body: Mapping[str, Any], spec: Mapping[str, str]) -> dict[str, Any]:
    """Every known property of ``spec`` present: sent values kept, the rest (and nulls) at the type's default.

    Annotations are dropped: they describe a payload, they are not stored.
    """
    out: dict[str, Any] = {}
    for key, kind in spec.items():
        value = body.get(key)
        if kind == COLLECTION:
            out[key] = [dict(v) if isinstance(v, dict) else v for v in value] if value is not None else []
        else:
            out[key] = _DEFAULTS[kind] if value is None else value
    return out
