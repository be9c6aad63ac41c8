"""Strictness switches (OUN, auth, unknown properties, JSON types), both envelopes, required fields, control API."""

from __future__ import annotations

import pytest

from commerce_emulator.testing import start_emulator_process
from tests.support.emulator_client import CommerceApi, error_id, new_customer, us_address

pytestmark = pytest.mark.integration

RUNTIME = "Microsoft_Dynamics_Commerce_Runtime_"


def test_oun_header_is_required_in_any_case(api, emulator):
    missing = api.search("ann@example.com", headers={"OUN": None})
    assert missing.status_code == 400 and error_id(missing) == "Microsoft_Dynamics_RetailServer_MissingRequiredArgument"
    assert api.search("ann@example.com", headers={"OUN": ""}).status_code == 400
    assert api.search("ann@example.com", headers={"OUN": None, "oun": "052"}).status_code == 200
    emulator.configure(require_oun=False)
    assert api.search("ann@example.com", headers={"OUN": None}).status_code == 200


@pytest.mark.parametrize(
    "authorization,status",
    [
        ("id_token local-dev-emulator-token", 200),
        ("Bearer local-dev-emulator-token", 200),
        ("bearer local-dev-emulator-token", 200),
        ("Bearer wrong", 401),
        ("Basic local-dev-emulator-token", 401),
        ("local-dev-emulator-token", 401),
        (None, 401),
    ],
)
def test_authorization_schemes_and_token(api, authorization, status):
    response = api.get("004001", headers={"Authorization": authorization})
    expected = status if status == 401 else 404  # authorised: the (unknown) customer is looked up
    assert response.status_code == expected
    if status == 401:
        assert error_id(response) == RUNTIME + "AuthenticationFailed"


def test_auth_switch_and_token_change(api, emulator):
    emulator.configure(token="rotated")
    assert api.search("ann@example.com").status_code == 401
    assert api.search("ann@example.com", headers={"Authorization": "id_token rotated"}).status_code == 200
    emulator.configure(require_auth=False)
    assert api.search("ann@example.com", headers={"Authorization": None}).status_code == 200


def test_auth_is_checked_before_the_oun(api):
    assert api.search("a@b.com", headers={"Authorization": None, "OUN": None}).status_code == 401


def test_unknown_properties_are_rejected_unless_switched_off(api, emulator):
    response = api.create(new_customer(IsOptedInMarketing=True))
    assert response.status_code == 400 and error_id(response) == "Microsoft_Dynamics_RetailServer_BadRequest"
    assert "IsOptedInMarketing" in response.json()["error"]["message"]
    nested = api.create(new_customer(Addresses=[us_address(Province_Code="NY")]))
    assert nested.json()["error"]["innererror"]["MemberNames"] == ["Addresses[0].Province_Code"]
    annotated = api.create(new_customer(**{"@odata.type": "#Microsoft.Dynamics.Commerce.Runtime.DataModel.Customer"}))
    assert annotated.status_code == 201
    emulator.configure(strict_properties=False)
    lenient = api.create(new_customer("l@example.com", IsOptedInMarketing=True))
    assert lenient.status_code == 201 and "IsOptedInMarketing" not in emulator.customer(lenient.json()["AccountNumber"])
    assert emulator.calls()["create"] == 4


@pytest.mark.parametrize(
    "body",
    [
        {"IsB2b": "true"},
        {"CustomerTypeValue": "1"},
        {"Email": 5},
        {"Addresses": {"City": "x"}},
        {"Addresses": [us_address(IsPrimary="yes")]},
        {"CreditLimit": "10"},
    ],
)
def test_wrong_json_types_are_invalid_format(api, emulator, body):
    response = api.create(new_customer(**body))
    assert response.status_code == 400 and error_id(response) == RUNTIME + "InvalidFormat"
    assert emulator.customers() == []


def test_flat_envelope(api, emulator):
    emulator.configure(envelope="flat")
    response = api.create(new_customer("not-an-email"))
    assert response.status_code == 400
    assert response.json() == {
        "TypeName": "Microsoft.Dynamics.Commerce.Runtime.DataValidationException",
        "ErrorResourceId": RUNTIME + "InvalidEmailAddress",
        "LocalizedMessage": "The email address is not valid.",
        "MemberNames": ["Email"],
    }
    assert set(api.get("nobody").json()) == {"TypeName", "ErrorResourceId", "LocalizedMessage", "MemberNames"}


def test_odata_envelope(api):
    body = api.get("nobody").json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == RUNTIME + "CustomerNotFound" == body["error"]["innererror"]["ErrorResourceId"]
    assert body["error"]["message"] == body["error"]["innererror"]["LocalizedMessage"]


def test_required_on_create_and_aggregates(api, emulator):
    missing = api.create({"AccountNumber": "", "FirstName": "Ann"})
    assert missing.status_code == 400 and error_id(missing) == RUNTIME + "RequiredValueNotFound"
    assert missing.json()["error"]["innererror"]["MemberNames"] == ["Email"]
    emulator.configure(required_on_create=["Email", "Phone", "Addresses"])
    several = api.create(new_customer(Addresses=[]))
    assert error_id(several) == RUNTIME + "AggregateValidationError"
    inner = several.json()["error"]["innererror"]
    assert inner["MemberNames"] == ["Phone", "Addresses"]
    assert [r["ErrorResourceId"] for r in inner["ValidationResults"]] == [RUNTIME + "RequiredValueNotFound"] * 2
    emulator.configure(required_on_create=[])
    assert api.create({"AccountNumber": "", "FirstName": "No Email"}).status_code == 201


def test_bad_country_and_email_are_rejected_with_nothing_stored(api, emulator):
    country = api.create(new_customer(Addresses=[us_address(ThreeLetterISORegionName="US")]))
    assert error_id(country) == RUNTIME + "InvalidCountryRegion"
    assert error_id(api.create(new_customer("ann@@example.com"))) == RUNTIME + "InvalidEmailAddress"
    assert emulator.customers() == []


def test_unknown_routes_and_methods(api):
    assert api.request("GET", "/Products").status_code == 404
    assert api.request("PUT", "/Customers('004001')", json={}).status_code == 405
    assert api.request("DELETE", "/Customers('004001')").status_code == 405


def test_control_api_counts_resets_and_rejects_bad_config(api, emulator):
    api.search("a@b.com")
    api.get("x")
    api.create(new_customer())
    api.search("a@b.com", headers={"OUN": None})
    assert emulator.calls() == {"search": 2, "get": 1, "create": 1, "update": 0, "total": 4, "faulted": 0}
    emulator.reset_calls()
    assert emulator.calls()["total"] == 0
    with pytest.raises(RuntimeError, match="envelope"):
        emulator.configure(envelope="xml")
    emulator.configure(envelope="flat", max_top=5)
    emulator.reset()
    assert emulator.config()["envelope"] == "odata" and emulator.customers() == []
    assert emulator.customer("004001") is None


def test_process_start_config_token_and_failures():
    handle = start_emulator_process(token="other-token", config={"envelope": "flat", "require_oun": False})
    try:
        api = CommerceApi(handle.base_url, "other-token")
        response = api.get("x", headers={"OUN": None})
        assert response.status_code == 404 and "ErrorResourceId" in response.json()
        handle.configure(envelope="odata")
        handle.reset()  # back to the process's start config, not the defaults
        assert handle.config()["envelope"] == "flat" and handle.config()["token"] == "other-token"
    finally:
        handle.stop()
    assert handle.process.returncode == 0
    with pytest.raises(RuntimeError, match="bad --config"):
        start_emulator_process(config={"envelope": "xml"})
