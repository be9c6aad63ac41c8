"""Fault injection over real sockets: every mode, which operations it hits, and seeded repeatability."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest
import requests

from tests.support.emulator_client import error_id, new_customer

pytestmark = pytest.mark.integration


def test_throttle_with_retry_after_seconds(api, emulator):
    emulator.set_faults(script=[{"operation": "search", "fault": "throttle"}], retry_after_seconds=3)
    response = api.search("a@b.com")
    assert response.status_code == 429 and response.headers["Retry-After"] == "3"
    assert api.search("a@b.com").status_code == 200  # one-shot
    assert emulator.calls() == {"search": 2, "get": 0, "create": 0, "update": 0, "total": 2, "faulted": 1}


def test_throttle_without_retry_after(api, emulator):
    emulator.set_faults(script=[{"operation": "any", "fault": "throttle_no_retry_after"}])
    response = api.get("004001")
    assert response.status_code == 429 and "Retry-After" not in response.headers
    emulator.set_faults(rates={"throttle": 1.0}, throttle_retry_after_ratio=0.0)
    response = api.get("004001")
    assert response.status_code == 429 and "Retry-After" not in response.headers


def test_throttle_with_retry_after_http_date(api, emulator):
    emulator.set_faults(script=[{"operation": "get", "fault": "throttle_http_date"}], retry_after_seconds=120)
    response = api.get("004001")
    assert response.status_code == 429
    when = parsedate_to_datetime(response.headers["Retry-After"])
    assert 100 <= (when - datetime.now(UTC)).total_seconds() <= 121


@pytest.mark.parametrize("fault,status", [("server_error", 500), ("unavailable", 503), ("not_found", 404)])
def test_status_faults(api, emulator, fault, status):
    emulator.set_faults(script=[{"operation": "create", "fault": fault}])
    response = api.create(new_customer())
    assert response.status_code == status and error_id(response)
    assert emulator.customers() == []  # nothing applied
    assert api.create(new_customer()).status_code == 201


def test_rates_only_hit_the_chosen_operations(api, emulator):
    emulator.set_faults(rates={"server_error": 1.0}, operations=["create", "update"])
    assert api.search("a@b.com").status_code == 200
    assert api.get("x").status_code == 404
    assert api.create(new_customer()).status_code == 500
    emulator.clear_faults()
    assert api.create(new_customer()).status_code == 201


def test_drop_closes_without_answer_and_applies_nothing(api, emulator):
    emulator.set_faults(script=[{"operation": "create", "fault": "drop"}])
    with pytest.raises(requests.ConnectionError):
        api.create(new_customer())
    assert emulator.customers() == []
    assert emulator.calls()["create"] == 1 and emulator.calls()["faulted"] == 1
    assert api.create(new_customer()).status_code == 201  # the client reconnects


def test_commit_then_fail_applies_the_write(api, emulator):
    emulator.set_faults(
        script=[
            {"operation": "create", "fault": "commit_then_fail"},
            {"operation": "update", "fault": "commit_then_fail"},
            {"operation": "search", "fault": "commit_then_fail"},
        ]
    )
    assert api.create(new_customer()).status_code == 500
    [stored] = emulator.customers()
    account = stored["AccountNumber"]
    assert api.update(account, {"AccountNumber": account, "LastName": "Applied"}).status_code == 500
    assert emulator.customer(account)["LastName"] == "Applied"
    assert api.search("ann@example.com").status_code == 500
    assert [c["AccountNumber"] for c in api.search("ann@example.com").json()["value"]] == [account]


def test_commit_then_hang_applies_the_write_and_never_answers(api, emulator):
    emulator.set_faults(
        script=[
            {"operation": "create", "fault": "commit_then_hang"},
            {"operation": "get", "fault": "commit_then_hang"},
        ],
        hang_seconds=30,
    )
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.create(new_customer(), timeout=(3, 0.5))
    [stored] = emulator.customers()  # applied although the client saw only a timeout
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.get(stored["AccountNumber"], timeout=(3, 0.5))  # a read just hangs
    assert emulator.calls()["faulted"] == 2 and len(emulator.customers()) == 1
    emulator.clear_faults()  # releases the hanging handlers


def test_hang_outlasts_a_client_read_timeout_without_blocking_others(api, emulator):
    emulator.set_faults(script=[{"operation": "get", "fault": "hang"}], hang_seconds=30)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.get("004001", timeout=(3, 0.5))
    # while that handler hangs, other requests (new connections) are served
    other = requests.post(
        f"{emulator.base_url}/Customers/SearchByFields",
        json={
            "CustomerSearchByFieldCriteria": {
                "Criteria": [{"SearchTerm": "a@b.com", "SearchField": {"Name": "Email", "Value": 3}}]
            }
        },
        headers=api.headers,
        timeout=5,
    )
    assert other.status_code == 200
    assert emulator.calls()["faulted"] == 1
    assert time.monotonic() - started < 5
    # the fixture's reset releases the hanging handler; the session's emulator must still answer afterwards


def test_hang_ends_by_closing_the_connection(api, emulator):
    emulator.set_faults(script=[{"operation": "get", "fault": "hang"}], hang_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        api.get("004001", timeout=10)
    assert 0.25 <= time.monotonic() - started < 5


def test_latency_and_jitter(api, emulator):
    emulator.set_faults(latency_ms=150, latency_jitter_ms=50, operations=["get"])
    started = time.monotonic()
    assert api.get("x").status_code == 404
    assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    assert api.search("a@b.com").status_code == 200
    assert time.monotonic() - started < 0.15


def _statuses(api, emulator, seed: int) -> list[int]:
    emulator.set_faults(seed=seed, rates={"server_error": 0.3, "throttle": 0.2, "unavailable": 0.1})
    return [api.get("004001").status_code for _ in range(40)]


def test_seeded_faults_are_repeatable(api, emulator):
    first = _statuses(api, emulator, seed=42)
    assert set(first) == {404, 429, 500, 503}
    assert _statuses(api, emulator, seed=42) == first
    assert _statuses(api, emulator, seed=43) != first


def test_bad_faults_are_refused(emulator):
    with pytest.raises(RuntimeError, match="rate"):
        emulator.set_faults(rates={"throttle": 1.5})
    assert emulator.faults()["rates"]["throttle"] == 0.0
