"""The client over real HTTP against the Commerce emulator process: every operation, both error
envelopes, each error class and each fault mode over a real socket."""

from __future__ import annotations

import logging
import threading
import uuid

import pytest

from shared.adapters.commerce import (
    CallRecord,
    CommerceAuthError,
    CommerceClient,
    CommerceConnectionError,
    CommerceNotFoundError,
    CommerceServerError,
    CommerceThrottledError,
    CommerceTimeoutError,
    CommerceValidationError,
    StaticTokenProvider,
)
from shared.core.commerce_errors import RUNTIME_PREFIX
from tests.support.commerce_client_fakes import make_settings

pytestmark = pytest.mark.integration

EMAIL = "ann.obrien@example.com"
PHONE = "+16135551111"


def make_client(emulator, *, token=None, records=None, **settings) -> CommerceClient:
    settings = make_settings(base_url=emulator.base_url, static_dev_token=token or emulator.token, **settings)
    return CommerceClient(
        settings, StaticTokenProvider(token or emulator.token), on_call=records.append if records is not None else None
    )


@pytest.fixture
def client(emulator):
    c = make_client(emulator)
    yield c
    c.close()


def new_customer(email=EMAIL, **extra) -> dict:
    return {
        "Email": email,
        "FirstName": "Ann",
        "LastName": "O'Brien",
        "Phone": PHONE,
        "CustomerTypeValue": 1,
        "Addresses": [
            {
                "Street": "1 Main St",
                "City": "Ottawa",
                "State": "ON",
                "ZipCode": "K1A 0B1",
                "ThreeLetterISORegionName": "CAN",
                "AddressTypeValue": 7,
            }
        ],
        **extra,
    }


# --- every operation -------------------------------------------------------------------------------
def test_create_get_update_search_round_trip(emulator, client):
    created = client.create_customer({**new_customer(), "AccountNumber": "ignored"})
    account = created["AccountNumber"]
    assert account and account != "ignored" and created["Email"] == EMAIL
    assert emulator.customer(account)["FirstName"] == "Ann"

    assert client.get_customer(account)["LastName"] == "O'Brien"

    updated = client.update_customer(account, {"FirstName": "Anne"})
    assert updated["FirstName"] == "Anne" and updated["LastName"] == "O'Brien"  # partial: rest unchanged
    assert emulator.customer(account)["FirstName"] == "Anne"

    found = client.search_customers_by_email(EMAIL.upper())
    assert [c["AccountNumber"] for c in found] == [account]
    assert emulator.calls()["search"] == 1


@pytest.mark.parametrize("status", [200, 201])
def test_create_accepts_200_and_201(emulator, client, status):
    emulator.configure(create_status=status)
    assert client.create_customer(new_customer())["AccountNumber"]


def test_async_customers_are_found(emulator, client):
    guid = str(uuid.uuid4())
    emulator.seed([{"Email": EMAIL, "AccountNumber": guid, "IsAsyncCustomer": True}])
    found = client.search_customers_by_email(EMAIL)
    assert [(c["AccountNumber"], c["IsAsyncCustomer"]) for c in found] == [(guid, True)]


def test_async_mode_create_returns_guid(emulator, client):
    emulator.configure(async_mode=True)
    created = client.create_customer(new_customer())
    assert created["IsAsyncCustomer"] is True and uuid.UUID(created["AccountNumber"])


def test_key_escaping_o_brien(emulator, client):
    emulator.seed([{"Email": EMAIL, "AccountNumber": "O'Brien"}, {"Email": "x@example.com", "AccountNumber": "O"}])
    assert client.get_customer("O'Brien")["Email"] == EMAIL
    assert client.update_customer("O'Brien", {"FirstName": "Q"})["FirstName"] == "Q"
    assert emulator.customer("O'Brien")["FirstName"] == "Q" and emulator.customer("O")["FirstName"] == ""


def test_exact_match_filtering_and_paging_over_prefix_results(emulator):
    # 8 prefix matches of the term, the exact one seeded last (highest RecordId): with $top=3 it is on
    # the third and last page. "anna.obrienne@..." is a full-text near miss (every word a prefix).
    near = [f"{EMAIL}.{tld}" for tld in ("au", "uk", "nz", "ie", "za")] + [
        "ANN.OBRIEN@EXAMPLE.COMMUNITY",
        "anna.obrienne@example.com",
    ]
    emulator.seed([{"Email": e} for e in near] + [{"Email": "other@example.com"}, {"Email": EMAIL}])
    emulator.reset_calls()
    client = make_client(emulator, search_page_size=3)
    found = client.search_customers_by_email(EMAIL)
    assert [c["Email"] for c in found] == [EMAIL]
    assert emulator.calls()["search"] == 3
    assert len(emulator.customers()) == 9  # nothing created or lost on the way


def test_exact_match_found_when_the_server_caps_pages_below_our_top(emulator, client):
    # A CSU maximum page size below COMMERCE_SEARCH_PAGE_SIZE: short pages with @odata.nextLink.
    emulator.seed([{"Email": f"{EMAIL}.{tld}"} for tld in ("au", "uk", "nz")] + [{"Email": EMAIL}])
    emulator.configure(max_top=2)
    emulator.reset_calls()
    assert [c["Email"] for c in client.search_customers_by_email(EMAIL)] == [EMAIL]
    assert emulator.calls()["search"] == 2


def test_search_finds_nothing(emulator, client):
    emulator.seed([{"Email": EMAIL + ".au"}])
    assert client.search_customers_by_email(EMAIL) == []


def test_search_returns_every_exact_duplicate(emulator, client):
    seeded = emulator.seed([{"Email": EMAIL}, {"Email": EMAIL.upper()}])
    found = client.search_customers_by_email(EMAIL)
    assert sorted(c["AccountNumber"] for c in found) == sorted(c["AccountNumber"] for c in seeded)


# --- error envelopes and classes -------------------------------------------------------------------
@pytest.mark.parametrize("envelope", ["odata", "flat"])
def test_validation_error_in_both_envelopes(emulator, client, envelope):
    emulator.configure(envelope=envelope)
    with pytest.raises(CommerceValidationError) as error:
        client.create_customer(new_customer(email="ann.obrien at example.com"))
    assert error.value.status == 400
    assert error.value.error_resource_id == RUNTIME_PREFIX + "InvalidEmailAddress"
    assert "Email" in error.value.member_names
    assert emulator.customers() == []


@pytest.mark.parametrize("envelope", ["odata", "flat"])
def test_aggregate_validation_error(emulator, client, envelope):
    emulator.configure(envelope=envelope)
    body = new_customer(email="bad")
    body["Addresses"][0]["ThreeLetterISORegionName"] = "XXX"
    with pytest.raises(CommerceValidationError) as error:
        client.create_customer(body)
    assert error.value.error_resource_id == RUNTIME_PREFIX + "AggregateValidationError"


@pytest.mark.parametrize("envelope", ["odata", "flat"])
def test_not_found_in_both_envelopes(emulator, client, envelope):
    emulator.configure(envelope=envelope)
    with pytest.raises(CommerceNotFoundError) as error:
        client.get_customer("999999")
    assert error.value.error_resource_id == RUNTIME_PREFIX + "CustomerNotFound"
    with pytest.raises(CommerceNotFoundError):
        client.update_customer("999999", {"FirstName": "X"})


def test_async_guid_not_found_after_sync(emulator, client):
    emulator.configure(async_mode=True)
    guid = client.create_customer(new_customer())["AccountNumber"]
    real = emulator.sync_async_customers()[guid]
    with pytest.raises(CommerceNotFoundError):
        client.update_customer(guid, {"FirstName": "X"})
    assert [c["AccountNumber"] for c in client.search_customers_by_email(EMAIL)] == [real]


@pytest.mark.parametrize("envelope", ["odata", "flat"])
def test_wrong_token_is_auth_error(emulator, envelope):
    emulator.configure(envelope=envelope)
    client = make_client(emulator, token="not-the-token")
    with pytest.raises(CommerceAuthError) as error:
        client.get_customer("1")
    assert error.value.status == 401 and "not-the-token" not in str(error.value)


@pytest.mark.parametrize("scheme", ["id_token", "Bearer"])
def test_authorization_scheme(emulator, scheme):
    seeded = emulator.seed([{"Email": EMAIL}])
    client = make_client(emulator, auth_scheme=scheme)
    assert client.get_customer(seeded[0]["AccountNumber"])["Email"] == EMAIL


def test_unknown_property_is_permanent_not_validation(emulator, client):
    from shared.adapters.commerce import CommercePermanentError

    with pytest.raises(CommercePermanentError) as error:
        client.create_customer({**new_customer(), "IsOptedInMarketing": True})  # a ContactInfo property
    assert type(error.value) is CommercePermanentError and error.value.status == 400


# --- faults over a real socket ---------------------------------------------------------------------
def seeded_account(emulator) -> str:
    return emulator.seed([{"Email": EMAIL, "FirstName": "Ann"}])[0]["AccountNumber"]


def test_hang_longer_than_read_timeout_is_timeout(emulator):
    account = seeded_account(emulator)
    emulator.set_faults(hang_seconds=20, script=[{"operation": "get", "fault": "hang"}])
    client = make_client(emulator, read_timeout=0.5)
    with pytest.raises(CommerceTimeoutError):
        client.get_customer(account)
    emulator.clear_faults()  # ends the hang in the emulator
    assert emulator.calls()["get"] == 1  # a timeout is not retried inside the client
    assert client.get_customer(account)["Email"] == EMAIL  # the pool recovers


@pytest.mark.parametrize("operation", ["get", "search"])
def test_drop_on_idempotent_call_is_retried_once(emulator, operation):
    account = seeded_account(emulator)
    records: list[CallRecord] = []
    client = make_client(emulator, records=records)
    emulator.set_faults(script=[{"operation": operation, "fault": "drop"}])
    if operation == "get":
        assert client.get_customer(account)["AccountNumber"] == account
    else:
        assert [c["AccountNumber"] for c in client.search_customers_by_email(EMAIL)] == [account]
    assert emulator.calls()[operation] == 2
    assert [r.error for r in records] == ["CommerceConnectionError", None]


@pytest.mark.parametrize("operation", ["get", "search"])
def test_two_drops_on_idempotent_call_raise(emulator, operation):
    account = seeded_account(emulator)
    client = make_client(emulator)
    emulator.set_faults(script=[{"operation": operation, "fault": "drop"}] * 3)
    with pytest.raises(CommerceConnectionError):
        client.get_customer(account) if operation == "get" else client.search_customers_by_email(EMAIL)
    assert emulator.calls()[operation] == 2  # one retry, not more


def test_drop_on_create_is_not_retried(emulator, client):
    emulator.set_faults(script=[{"operation": "create", "fault": "drop"}])
    with pytest.raises(CommerceConnectionError):
        client.create_customer(new_customer())
    assert emulator.calls()["create"] == 1 and emulator.customers() == []


def test_drop_on_update_is_not_retried(emulator, client):
    account = seeded_account(emulator)
    emulator.set_faults(script=[{"operation": "update", "fault": "drop"}])
    with pytest.raises(CommerceConnectionError):
        client.update_customer(account, {"FirstName": "Zed"})
    assert emulator.calls()["update"] == 1 and emulator.customer(account)["FirstName"] == "Ann"


def test_connection_refused(emulator):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = CommerceClient(make_settings(base_url=f"http://127.0.0.1:{port}/Commerce"), StaticTokenProvider("t"))
    with pytest.raises(CommerceConnectionError) as error:
        client.get_customer("1")
    assert not error.value.dropped


@pytest.mark.parametrize(
    "fault,expected", [("throttle", 1.0), ("throttle_no_retry_after", None), ("throttle_http_date", "date")]
)
def test_throttled(emulator, client, fault, expected):
    emulator.set_faults(script=[{"operation": "search", "fault": fault}])
    with pytest.raises(CommerceThrottledError) as error:
        client.search_customers_by_email(EMAIL)
    assert error.value.status == 429
    if expected == "date":  # an HTTP-date one second ahead, with one-second resolution
        assert error.value.retry_after is not None and 0.0 <= error.value.retry_after <= 2.0
    else:
        assert error.value.retry_after == expected
    assert emulator.calls()["search"] == 1


@pytest.mark.parametrize("fault,status", [("server_error", 500), ("unavailable", 503)])
def test_server_errors(emulator, client, fault, status):
    emulator.set_faults(script=[{"operation": "any", "fault": fault}])
    with pytest.raises(CommerceServerError) as error:
        client.get_customer("1")
    assert error.value.status == status and emulator.calls()["get"] == 1


def test_commit_then_fail_on_create_leaves_the_write(emulator, client):
    emulator.set_faults(script=[{"operation": "create", "fault": "commit_then_fail"}])
    with pytest.raises(CommerceServerError) as error:
        client.create_customer(new_customer())
    assert error.value.status == 500
    assert [c["Email"] for c in emulator.customers()] == [EMAIL]
    assert len(client.search_customers_by_email(EMAIL)) == 1  # how a caller finds out


def test_commit_then_fail_on_update_leaves_the_write(emulator, client):
    account = seeded_account(emulator)
    emulator.set_faults(script=[{"operation": "update", "fault": "commit_then_fail"}])
    with pytest.raises(CommerceServerError):
        client.update_customer(account, {"FirstName": "Zed"})
    assert emulator.customer(account)["FirstName"] == "Zed"


def test_commit_then_hang_on_create_is_a_timeout_with_the_write_applied(emulator):
    emulator.set_faults(hang_seconds=20, script=[{"operation": "create", "fault": "commit_then_hang"}])
    client = make_client(emulator, read_timeout=0.5)
    with pytest.raises(CommerceTimeoutError):
        client.create_customer(new_customer())
    emulator.clear_faults()
    assert emulator.calls()["create"] == 1  # a write is never retried inside the client
    assert [c["Email"] for c in client.search_customers_by_email(EMAIL)] == [EMAIL]  # how a caller finds out


def test_scripted_not_found(emulator, client):
    account = seeded_account(emulator)
    emulator.set_faults(script=[{"operation": "update", "fault": "not_found"}])
    with pytest.raises(CommerceNotFoundError):
        client.update_customer(account, {"FirstName": "Zed"})


def test_shared_client_under_32_threads(emulator, client):
    account = seeded_account(emulator)
    errors: list[BaseException] = []
    barrier = threading.Barrier(32)

    def worker():
        try:
            barrier.wait()
            for _ in range(5):
                assert client.get_customer(account)["AccountNumber"] == account
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and emulator.calls()["get"] == 160


# --- no personal data or token in any log record ---------------------------------------------------
def test_no_email_phone_or_token_in_logs(emulator, caplog):
    caplog.set_level(logging.DEBUG)
    token = emulator.token
    client = make_client(emulator)
    created = client.create_customer(new_customer())
    account = created["AccountNumber"]
    client.search_customers_by_email(EMAIL)
    client.get_customer(account)
    client.update_customer(account, {"Phone": "+4530123456", "Email": "ann.new@example.org"})
    for fault, call in [
        ("drop", lambda: client.get_customer(account)),
        ("throttle", lambda: client.search_customers_by_email(EMAIL)),
        ("commit_then_fail", lambda: client.update_customer(account, {"FirstName": "Z"})),
    ]:
        emulator.set_faults(script=[{"operation": "any", "fault": fault}])
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - logged as a caller would
            logging.getLogger("test.caller").warning("call failed: %s", exc)
    for bad_call in (
        lambda: client.create_customer(new_customer(email="ann.obrien at example.com")),
        lambda: make_client(emulator, token="secret-wrong-token").get_customer(account),
    ):
        with pytest.raises(Exception) as error:
            bad_call()
        logging.getLogger("test.caller").warning("call failed: %s", error.value)

    assert caplog.records, "expected DEBUG records (client and urllib3)"
    assert any(r.name.startswith("shared.adapters.commerce") for r in caplog.records)
    text = "\n".join(f"{r.name} {r.getMessage()} {r.args!r} {getattr(r, '__dict__', {})!r}" for r in caplog.records)
    for secret in (
        EMAIL,
        "ann.obrien",
        "example.com",
        "ann.new@example.org",
        PHONE,
        "6135551111",
        "+4530123456",
        token,
        "secret-wrong-token",
    ):
        assert secret.lower() not in text.lower(), secret
