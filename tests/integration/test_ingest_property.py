"""Property: whatever JSON (or bytes) arrives, the ingest function answers one of the documented
statuses and never a 500. Only the outermost handler in function_app may catch Exception; this test
fails if it ever had to."""

from __future__ import annotations

import json
import logging

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import function_app
from devhost.bindings import indexed_functions
from shared.core import telemetry_names as names

pytestmark = pytest.mark.integration

ALLOWED = {202, 207, 400, 413, 415, 422}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
field_values = json_values | st.sampled_from(
    [
        "",
        " ",
        "ada@example.com",
        "+1 206 555 0100",
        "US",
        "USA",
        "Washington",
        "98101",
        "K1A0B1",
        "2026-11-26T10:00:00+00:00",
        "2099-01-01T00:00:00Z",
        "not-a-date",
        "en-US",
        "EUR",
        "\u0000",
        "𠮷😀",
    ]
)
addresses = st.fixed_dictionaries(
    {},
    optional={
        k: field_values
        for k in ("name", "street", "streetNumber", "city", "county", "state", "postalCode", "country", "isPrimary")
    },
)
customers = st.fixed_dictionaries(
    {},
    optional={
        **{
            k: field_values
            for k in (
                "email",
                "firstName",
                "middleName",
                "lastName",
                "phone",
                "isOptedInMarketing",
                "language",
                "currencyCode",
                "customerGroup",
                "customerAccount",
                "createdDateTime",
                "previousEmail",
            )
        },
        "address": addresses | field_values,
    },
)
events = st.fixed_dictionaries(
    {},
    optional={
        "specVersion": st.sampled_from(["1.0", "2.0"]) | field_values,
        "eventId": st.text(max_size=20) | field_values,
        "eventType": field_values,
        "occurredAt": field_values,
        "source": field_values,
        "customer": customers | field_values,
        "extra": field_values,
    },
)
bodies = (
    json_values.map(lambda v: json.dumps(v).encode())
    | events.map(lambda e: json.dumps(e).encode())
    | st.lists(events, max_size=5).map(lambda e: json.dumps(e).encode())
    | st.lists(events, max_size=5).map(lambda e: json.dumps({"events": e}).encode())
    | st.binary(max_size=200)
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/cloudevents+json",
        "text/plain",
        "",
        "APPLICATION/JSON",
    ]
)


@pytest.fixture
def ingest_function(stack):
    fns = {f.get_function_name(): f.get_user_function() for f in indexed_functions(function_app.app)}
    return fns[names.FUNCTION_INGEST]


class NoExceptionLogged(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.unexpected = []

    def emit(self, record):
        if "failed unexpectedly" in record.getMessage():
            self.unexpected.append(record)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, content_type=content_types)
def test_any_input_gets_a_documented_status(ingest_function, body, content_type):
    guard = NoExceptionLogged()
    logging.getLogger("customer_sync").addHandler(guard)
    try:
        request = func.HttpRequest(
            method="POST",
            url="http://localhost/api/customers/events",
            headers={"content-type": content_type} if content_type else {},
            params={},
            route_params={},
            body=body,
        )
        response = ingest_function(request)
    finally:
        logging.getLogger("customer_sync").removeHandler(guard)
    assert response.status_code in ALLOWED, response.get_body()[:300]
    assert guard.unexpected == []
    json.loads(response.get_body())
