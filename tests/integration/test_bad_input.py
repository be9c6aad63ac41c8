"""Bad input over real HTTP: each answered with its status, nothing queued for it, never a 500."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import event

pytestmark = pytest.mark.integration


def deep(n: int) -> str:
    return "[" * n + "]" * n


CASES = [
    ("non-JSON", b"{this is not json", "application/json", 400, None),
    ("wrong shape", b'"just a string"', "application/json", 400, None),
    ("wrong content type", json.dumps(event(1)).encode(), "text/plain", 415, None),
    ("wrong types", event(1, firstName=42, isOptedInMarketing="yes"), None, 422, "/customer/firstName"),
    ("missing email", {**event(1), "customer": {"firstName": "Ada"}}, None, 422, "/customer/email"),
    ("invalid email", event(1, email="ada@@example"), None, 422, "/customer/email"),
    ("impossible phone", event(1, phone="+1 000 000 0000"), None, 422, "/customer/phone"),
    ("unknown country", event(1, address={"street": "x", "city": "y", "country": "Atlantis"}), None, 422,
     "/customer/address/country"),
    ("postal code of another country", event(1, address={"street": "1 Main", "city": "Ottawa",
                                                        "postalCode": "98101", "country": "CA"}),
     None, 422, "/customer/address/postalCode"),
    ("control characters in a name", event(1, firstName="Ada\u0007\u0000"), None, 422, "/customer/firstName"),
    ("occurredAt in 2099", event(1, occurred="2099-01-01T00:00:00+00:00"), None, 422, "/occurredAt"),
    ("10,000 events", [event(i) for i in range(10_000)], None, 413, None),
    ("a 5 MB body", b'{"pad": "' + b"x" * (5 * 1024 * 1024) + b'"}', "application/json", 413, None),
    ("deeply nested JSON", deep(5000).encode(), "application/json", 400, None),
]


@pytest.mark.parametrize("name, body, content_type, status, pointer", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_answered_and_nothing_is_queued(stack, name, body, content_type, status, pointer):
    headers = {"Content-Type": content_type} if content_type else {}
    response = stack.post(body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status and problem["correlationId"]
    if pointer:
        assert pointer in {e["pointer"] for e in problem["errors"]}
    assert stack.queue().get_queue_properties().approximate_message_count == 0
    assert "ada.lovelace" not in response.text
