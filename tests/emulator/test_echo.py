"""echo_input_in_errors: validation errors quote the submitted personal data, as a careless server might."""

from __future__ import annotations

import urllib.parse

import pytest

from tests.support.emulator_client import new_customer, us_address

pytestmark = pytest.mark.integration

EMAIL = "Zoë.O'Brien+news@Example.com"


def _messages(body: dict) -> str:
    error = body["error"] if "error" in body else body
    inner = error.get("innererror", error)
    texts = [error.get("message", ""), inner.get("LocalizedMessage", "")]
    texts += [part.get("LocalizedMessage", "") for part in inner.get("ValidationResults") or []]
    return "\n".join(texts)


def _refused_create(api, emulator):
    emulator.configure(required_on_create=["Email", "TaxGroup"])
    response = api.create(
        new_customer(
            EMAIL,
            FirstName="Zoë",
            LastName="O'Brien",
            Phone="+12065550142",
            Addresses=[us_address(Street="9 Elm Rd", City="Seattle", ZipCode="98101")],
        )
    )
    assert response.status_code == 400
    return response


def test_off_by_default_no_submitted_value_in_errors(api, emulator):
    assert emulator.config()["echo_input_in_errors"] is False
    text = _messages(_refused_create(api, emulator).json())
    assert "TaxGroup" in text
    for value in (EMAIL, "Zoë", "O'Brien", "2065550142", "Seattle"):
        assert value not in text


@pytest.mark.parametrize("envelope", ["odata", "flat"])
def test_on_quotes_email_raw_and_encoded_names_phone_and_address(api, emulator, envelope):
    emulator.configure(echo_input_in_errors=True, envelope=envelope)
    body = _refused_create(api, emulator).json()
    text = _messages(body)
    assert "'TaxGroup' is required" in text  # the error itself is unchanged
    assert EMAIL in text and urllib.parse.quote(EMAIL, safe="") in text
    assert "\\u0040" in text and "&#64;" in text
    for value in ("Zoë", "O'Brien", "+12065550142", "%2B12065550142", "9 Elm Rd", "Seattle", "98101"):
        assert value in text, value


def test_on_aggregate_and_update_errors_echo_too(api, emulator):
    emulator.configure(echo_input_in_errors=True, required_on_create=["Email", "TaxGroup", "CustomerGroup"])
    created = api.create(new_customer(EMAIL, TaxGroup="T", CustomerGroup="10"))
    assert created.status_code == 201
    account = created.json()["AccountNumber"]
    refused = api.update(
        account, {"AccountNumber": account, "Email": "not an email", "LastName": "O'Brien", "TaxGroup": ""}
    )
    assert refused.status_code == 400
    text = _messages(refused.json())
    assert "not an email" in text and "O'Brien" in text
    assert text.count("Submitted:") >= 3  # the aggregate message and each of its parts
