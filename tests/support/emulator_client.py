"""A small Commerce client over requests for the emulator tests (the product's client is tested elsewhere)."""

from __future__ import annotations

from typing import Any

import requests

from commerce_emulator.odata import key_literal


def search_body(term: str, field: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "CustomerSearchByFieldCriteria": {
            "Criteria": [{"SearchTerm": term, "SearchField": field or {"Name": "Email", "Value": 3}}],
            "DataLevelValue": 1,
        }
    }


def new_customer(email: str = "ann@example.com", **extra: Any) -> dict[str, Any]:
    body = {"AccountNumber": "", "FirstName": "Ann", "LastName": "Lee", "Email": email}
    body.update(extra)
    return body


def us_address(**extra: Any) -> dict[str, Any]:
    address = {
        "Street": "1 Main St",
        "City": "Albany",
        "State": "NY",
        "ZipCode": "12207",
        "ThreeLetterISORegionName": "USA",
        "AddressTypeValue": 7,
        "IsPrimary": True,
    }
    address.update(extra)
    return address


class CommerceApi:
    """Calls the emulator the way the product does: OUN + id_token headers, api-version, quoted keys."""

    def __init__(self, base_url: str, token: str):
        self.base_url = base_url
        self.session = requests.Session()
        self.headers = {"OUN": "052", "Authorization": f"id_token {token}"}

    def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, timeout: Any = 10, **kwargs: Any
    ) -> requests.Response:
        merged = {**self.headers, **(headers or {})}
        merged = {k: v for k, v in merged.items() if v is not None}  # None removes a default header
        separator = "&" if "?" in path else "?"
        return self.session.request(
            method, f"{self.base_url}{path}{separator}api-version=7.3", headers=merged, timeout=timeout, **kwargs
        )

    def search(self, term: str, query: str = "", **kwargs: Any) -> requests.Response:
        return self.request(
            "POST", "/Customers/SearchByFields" + (f"?{query}" if query else ""), json=search_body(term), **kwargs
        )

    def get(self, account: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", f"/Customers({key_literal(account)})", **kwargs)

    def create(self, body: dict[str, Any], **kwargs: Any) -> requests.Response:
        return self.request("POST", "/Customers", json=body, **kwargs)

    def update(self, account: str, body: dict[str, Any], **kwargs: Any) -> requests.Response:
        return self.request("PATCH", f"/Customers({key_literal(account)})", json=body, **kwargs)


def error_id(response: requests.Response) -> str:
    """The ErrorResourceId of an error body in either envelope."""
    body = response.json()
    return body["error"]["innererror"]["ErrorResourceId"] if "error" in body else body["ErrorResourceId"]
