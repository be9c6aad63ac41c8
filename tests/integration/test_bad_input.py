"""Bad input over real HTTP: each answered with its status, nothing queued for it, never a 500."""

from __future__ import annotations

import json

import pytest

from tests.support.stack import event

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
    (
        "unknown country",
        event(1, address={"street": "x", "city": "y", "country": "Atlantis"}),
        None,
        422,
        "/customer/address/country",
    ),
    (
        "postal code of another country",
        event(1, address={"street": "1 Main", "city": "Ottawa", "postalCode": "98101", "country": "CA"}),
        None,
        422,
        "/customer/address/postalCode",
    ),
    ("control characters in a name", event(1, firstName="Ada\u0007\u0000"), None, 422, "/customer/firstName"),
    ("occurredAt in 2099", event(1, occurred="2099-01-01T00:00:00+00:00"), None, 422, "/occurredAt"),
    ("10,000 events (over the count limit)", [{"eventId": str(i)} for i in range(10_000)], None, 413, None),
    ("10,000 full events (over the size limit too)", [event(i) for i in range(10_000)], None, 413, None),
    ("a 5 MB body", b'{"pad": "' + b"x" * (5 * 1024 * 1024) + b'"}', "application/json", 413, None),
    ("deeply nested JSON", deep(5000).encode(), "application/json", 400, None),
]


@pytest.fixture
def ingest_only(stack_factory):
    """HTTP only: no queue trigger consumes messages, so an empty queue proves nothing was queued."""
    return stack_factory(queues=False)


@pytest.mark.parametrize("name, body, content_type, status, pointer", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_answered_and_nothing_is_queued(ingest_only, name, body, content_type, status, pointer):
    stack = ingest_only
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
    if "count limit" in name:
        assert "500" in problem["detail"]  # INGEST_MAX_EVENTS, not the body-size limit


def test_the_count_limit_is_one_past_the_setting(ingest_only):
    stack = ingest_only
    at_limit = [event(i) for i in range(500)]
    assert stack.post(at_limit).status_code == 202
    assert stack.queue().get_queue_properties().approximate_message_count == 500
    over = [{"eventId": str(i)} for i in range(501)]
    assert stack.post(over).status_code == 413


def test_an_unknown_property_named_like_an_email_is_not_echoed(ingest_only):
    body = event(1)
    body["customer"]["ada.lovelace@example.com"] = "x"
    response = ingest_only.post(body)
    assert response.status_code == 422
    assert "ada.lovelace" not in response.text
