"""The client over a scripted in-memory transport: URLs, headers, bodies, paging, retries, records."""

from __future__ import annotations

import http.client
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from shared.adapters.commerce import (
    CallRecord,
    CommerceClient,
    CommerceConnectionError,
    CommerceNotFoundError,
    CommercePermanentError,
    CommerceServerError,
    StaticTokenProvider,
)
from shared.adapters.commerce.auth import CachedTokenProvider
from shared.adapters.commerce.client import odata_key
from tests.support.commerce_client_fakes import CountingCredential, make_settings, scripted_session

BASE = "http://commerce.test/Commerce"


def gc(email: str, account: str, **extra) -> dict:
    """A GlobalCustomer search result."""
    return {"AccountNumber": account, "Email": email, "FullName": "X", "IsAsyncCustomer": False, **extra}


def client_for(handler, *, token="tok-abc", records=None, **settings):
    session, adapter = scripted_session(handler)
    client = CommerceClient(
        make_settings(**settings),
        StaticTokenProvider(token),
        session=session,
        on_call=records.append if records is not None else None,
    )
    return client, adapter


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


# --- search ----------------------------------------------------------------------------------------
def test_search_request_shape():
    client, adapter = client_for(lambda s: (200, {"value": []}, {}))
    assert client.search_customers_by_email(" Ann@X.com ") == []
    (sent,) = adapter.sent
    assert sent.method == "POST"
    assert sent.url.startswith(BASE + "/Customers/SearchByFields?")
    assert "$top=50" in sent.url and "$skip=0" in sent.url  # '$' kept literal, as in the samples
    assert query_of(sent.url) == {"$top": "50", "$skip": "0", "api-version": "7.3"}
    assert sent.body == {
        "CustomerSearchByFieldCriteria": {
            "Criteria": [{"SearchTerm": "Ann@X.com", "SearchField": {"Name": "Email", "Value": 3}}],
            "DataLevelValue": 1,
        }
    }
    assert sent.headers["OUN"] == "052"
    assert sent.headers["Authorization"] == "id_token tok-abc"
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers["Content-Type"] == "application/json"


def test_bearer_scheme_and_no_api_version():
    client, adapter = client_for(lambda s: (200, {"value": []}, {}), auth_scheme="Bearer", api_version="")
    client.search_customers_by_email("ann@x.com")
    assert adapter.sent[0].headers["Authorization"] == "Bearer tok-abc"
    assert "api-version" not in adapter.sent[0].url


def test_search_returns_only_exact_matches_case_insensitively():
    results = [
        gc("ann@x.com.au", "1"),
        gc("ANN@X.COM", "2"),
        gc("anna@x.com", "3"),
        gc("ann@x.community", "4"),
        {"AccountNumber": "5"},
        gc("ann@x.com", "6", IsAsyncCustomer=True),
    ]
    client, _ = client_for(lambda s: (200, {"value": results}, {}))
    found = client.search_customers_by_email("Ann@x.com")
    assert [c["AccountNumber"] for c in found] == ["2", "6"]


def test_search_pages_until_short_page_and_finds_match_on_last_page():
    # 7 prefix matches, $top=3: pages of 3, 3, 1; the exact match is the last row of the last page.
    rows = [gc(f"ann@x.com.{i}", str(i)) for i in range(6)] + [gc("ann@x.com", "exact")]

    def handler(sent):
        q = query_of(sent.url)
        skip, top = int(q["$skip"]), int(q["$top"])
        return 200, {"value": rows[skip : skip + top]}, {}

    client, adapter = client_for(handler, search_page_size=3)
    assert [c["AccountNumber"] for c in client.search_customers_by_email("ann@x.com")] == ["exact"]
    assert [query_of(s.url)["$skip"] for s in adapter.sent] == ["0", "3", "6"]


def test_search_full_last_page_needs_one_more_empty_page():
    rows = [gc("ann@x.com.au", "1"), gc("ann@x.com", "2")]
    client, adapter = client_for(
        lambda s: (200, {"value": rows if query_of(s.url)["$skip"] == "0" else []}, {}), search_page_size=2
    )
    assert [c["AccountNumber"] for c in client.search_customers_by_email("ann@x.com")] == ["2"]
    assert len(adapter.sent) == 2


def test_search_dedupes_rows_shifted_between_pages():
    pages = {"0": [gc("ann@x.com", "1"), gc("ann@x.com.au", "2")], "2": [gc("ann@x.com", "1")]}
    client, _ = client_for(lambda s: (200, {"value": pages[query_of(s.url)["$skip"]]}, {}), search_page_size=2)
    assert [c["AccountNumber"] for c in client.search_customers_by_email("ann@x.com")] == ["1"]


def test_search_stops_when_server_ignores_top():
    rows = [gc(f"ann@x.com.{i}", str(i)) for i in range(5)] + [gc("ann@x.com", "exact")]
    client, adapter = client_for(lambda s: (200, {"value": rows}, {}), search_page_size=3)
    assert [c["AccountNumber"] for c in client.search_customers_by_email("ann@x.com")] == ["exact"]
    assert len(adapter.sent) == 1


def test_search_follows_server_driven_paging_below_its_top():
    # The server caps pages at 2 (below our $top=50) and says so with @odata.nextLink: a short page is
    # then not the end, and the exact match on a later page must still be found.
    rows = [gc(f"ann@x.com.{i}", str(i)) for i in range(4)] + [gc("ann@x.com", "exact")]

    def handler(sent):
        skip = int(query_of(sent.url)["$skip"])
        page = {"value": rows[skip : skip + 2]}
        if skip + 2 < len(rows):
            page["@odata.nextLink"] = f"{BASE}/Customers/SearchByFields?$top=2&$skip={skip + 2}"
        return 200, page, {}

    client, adapter = client_for(handler)
    assert [c["AccountNumber"] for c in client.search_customers_by_email("ann@x.com")] == ["exact"]
    assert [query_of(s.url)["$skip"] for s in adapter.sent] == ["0", "2", "4"]
    assert {query_of(s.url)["$top"] for s in adapter.sent} == {"50"}


def test_search_empty_page_ends_even_with_next_link():
    client, adapter = client_for(lambda s: (200, {"value": [], "@odata.nextLink": "x"}, {}))
    assert client.search_customers_by_email("ann@x.com") == [] and len(adapter.sent) == 1


def test_search_page_cap_raises_instead_of_looping():
    client, adapter = client_for(lambda s: (200, {"value": [gc("ann@x.com.au", "1")]}, {}), search_page_size=1)
    with pytest.raises(CommercePermanentError, match="pages"):
        client.search_customers_by_email("ann@x.com")
    assert len(adapter.sent) == 20


@pytest.mark.parametrize("body", [{"value": None}, {"nothing": []}, {"value": ["x"]}, "<html/>", b""])
def test_search_unusable_success_body_is_permanent(body):
    client, _ = client_for(lambda s: (200, body, {}))
    with pytest.raises(CommercePermanentError):
        client.search_customers_by_email("ann@x.com")


def test_search_rejects_empty_email():
    client, adapter = client_for(lambda s: (200, {"value": []}, {}))
    with pytest.raises(ValueError):
        client.search_customers_by_email("  ")
    assert adapter.sent == []


# --- get / create / update -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key,literal", [("004075", "('004075')"), ("O'Brien", "('O%27%27Brien')"), ("a b/c", "('a%20b%2Fc')"), ("", "('')")]
)
def test_odata_key(key, literal):
    assert odata_key(key) == literal
    inner = unquote(literal[2:-2])
    assert inner.replace("''", "'") == key


def test_get_customer_escapes_key():
    client, adapter = client_for(lambda s: (200, {"AccountNumber": "O'Brien"}, {}))
    assert client.get_customer("O'Brien") == {"AccountNumber": "O'Brien"}
    sent = adapter.sent[0]
    assert sent.method == "GET"
    assert sent.url == BASE + "/Customers('O%27%27Brien')?api-version=7.3"


def test_get_not_found():
    client, _ = client_for(
        lambda s: (
            404,
            {"error": {"code": "Microsoft_Dynamics_Commerce_Runtime_CustomerNotFound", "message": "not found"}},
            {},
        )
    )
    with pytest.raises(CommerceNotFoundError):
        client.get_customer("404404")


@pytest.mark.parametrize("status", [200, 201])
def test_create_forces_empty_account_number_and_accepts_200_or_201(status):
    client, adapter = client_for(lambda s: (status, {**s.body, "AccountNumber": "004075"}, {}))
    created = client.create_customer({"AccountNumber": "mine", "Email": "ann@x.com", "FirstName": "Ann"})
    assert created["AccountNumber"] == "004075"
    sent = adapter.sent[0]
    assert sent.method == "POST" and sent.url == BASE + "/Customers?api-version=7.3"
    assert sent.body == {"AccountNumber": "", "Email": "ann@x.com", "FirstName": "Ann"}


@pytest.mark.parametrize("status,body", [(202, {"AccountNumber": "1"}), (204, None), (201, "<html/>"), (201, [1])])
def test_create_unusable_success_is_permanent(status, body):
    client, _ = client_for(lambda s: (status, body, {}))
    with pytest.raises(CommercePermanentError):
        client.create_customer({"Email": "ann@x.com"})


def test_update_patches_changes_plus_key():
    client, adapter = client_for(lambda s: (200, {"AccountNumber": "004075", "FirstName": "Anne"}, {}))
    result = client.update_customer("004075", {"FirstName": "Anne", "AccountNumber": "other"})
    assert result["FirstName"] == "Anne"
    sent = adapter.sent[0]
    assert sent.method == "PATCH" and sent.url == BASE + "/Customers('004075')?api-version=7.3"
    assert sent.body == {"FirstName": "Anne", "AccountNumber": "004075"}


def test_update_204_reads_the_customer_back():
    def handler(sent):
        return (204, None, {}) if sent.method == "PATCH" else (200, {"AccountNumber": "7", "FirstName": "Z"}, {})

    client, adapter = client_for(handler)
    assert client.update_customer("7", {"FirstName": "Z"}) == {"AccountNumber": "7", "FirstName": "Z"}
    assert [s.method for s in adapter.sent] == ["PATCH", "GET"]


# --- connection failures and the single retry ------------------------------------------------------
def dropped():
    return requests.exceptions.ConnectionError(
        ProtocolError("Connection aborted.", http.client.RemoteDisconnected("closed without response"))
    )


def refused():
    return requests.exceptions.ConnectionError(
        MaxRetryError(None, "/", NewConnectionError(None, "Failed to establish a new connection: refused"))
    )


def failing_then(exc_factory, failures: int, ok_body):
    state = {"n": 0}

    def handler(sent):
        state["n"] += 1
        if state["n"] <= failures:
            raise exc_factory()
        return 200, ok_body(sent), {}

    return handler


@pytest.mark.parametrize("operation", ["get", "search"])
def test_idempotent_call_retried_once_after_drop(operation):
    records: list[CallRecord] = []
    client, adapter = client_for(
        failing_then(dropped, 1, lambda s: {"value": [], "AccountNumber": "1"}), records=records
    )
    call = client.get_customer if operation == "get" else client.search_customers_by_email
    call("1" if operation == "get" else "ann@x.com")
    assert len(adapter.sent) == 2
    assert [(r.operation, r.status, r.error) for r in records] == [
        (operation, None, "CommerceConnectionError"),
        (operation, 200, None),
    ]


@pytest.mark.parametrize("operation", ["get", "search"])
def test_idempotent_call_gives_up_after_second_drop(operation):
    client, adapter = client_for(failing_then(dropped, 2, lambda s: {}))
    call = client.get_customer if operation == "get" else client.search_customers_by_email
    with pytest.raises(CommerceConnectionError) as error:
        call("1" if operation == "get" else "ann@x.com")
    assert len(adapter.sent) == 2 and error.value.dropped


@pytest.mark.parametrize("operation", ["create", "update"])
def test_writes_never_retried(operation):
    client, adapter = client_for(failing_then(dropped, 1, lambda s: {"AccountNumber": "1"}))
    with pytest.raises(CommerceConnectionError):
        if operation == "create":
            client.create_customer({"Email": "ann@x.com"})
        else:
            client.update_customer("1", {"FirstName": "A"})
    assert len(adapter.sent) == 1


def test_refused_connection_not_retried():
    client, adapter = client_for(failing_then(refused, 1, lambda s: {}))
    with pytest.raises(CommerceConnectionError) as error:
        client.get_customer("1")
    assert len(adapter.sent) == 1 and not error.value.dropped


def test_server_error_not_retried_and_recorded():
    records: list[CallRecord] = []
    client, adapter = client_for(lambda s: (503, b"", {"Retry-After": "2"}), records=records)
    with pytest.raises(CommerceServerError) as error:
        client.get_customer("1")
    assert error.value.retry_after == 2.0 and len(adapter.sent) == 1
    assert records[0].operation == "get" and records[0].status == 503
    assert records[0].error == "CommerceServerError" and records[0].duration_s >= 0


def test_on_call_failure_does_not_fail_the_call():
    def broken(record):
        raise RuntimeError("telemetry down")

    session, _ = scripted_session(lambda s: (200, {"AccountNumber": "1"}, {}))
    client = CommerceClient(make_settings(), StaticTokenProvider("t"), session=session, on_call=broken)
    assert client.get_customer("1") == {"AccountNumber": "1"}


def test_error_text_never_contains_the_token():
    client, _ = client_for(
        lambda s: (
            401,
            {
                "ErrorResourceId": "Microsoft_Dynamics_Commerce_Runtime_AuthenticationFailed",
                "LocalizedMessage": f"token {s.headers['Authorization']} rejected",
            },
            {},
        ),
        token="plain-secret-token",
    )
    with pytest.raises(Exception) as error:
        client.get_customer("1")
    assert "plain-secret-token" not in str(error.value) and "rejected" in str(error.value)


# --- tokens through the client ---------------------------------------------------------------------
def test_n_calls_one_token_and_expired_token_never_sent(clock):
    """2 s tokens: every request carries a token that is still valid at send time; calls across the
    first token's expiry use exactly two tokens."""
    credential = CountingCredential(clock, lifetime=2)
    sent_at: list[tuple[str, float]] = []

    def handler(sent):
        sent_at.append((sent.headers["Authorization"].split(" ", 1)[1], clock()))
        return 200, {"AccountNumber": "1"}, {}

    session, _ = scripted_session(handler)
    client = CommerceClient(
        make_settings(), CachedTokenProvider(credential, "api://r/.default", clock=clock), session=session
    )
    start = clock.now
    for step in range(8):  # 0.0 .. 2.1 s
        clock.now = start + round(step * 0.3, 1)
        client.get_customer("1")
    assert len(credential.scopes) == 2
    assert {token for token, _ in sent_at} == {"token-1", "token-2"}
    assert all(credential.issued[token] > at for token, at in sent_at)
    assert sent_at[-1][1] > credential.issued["token-1"]  # the calls did cross the first expiry


def test_timeouts_from_settings_and_own_pool():
    client, adapter = client_for(lambda s: (200, {"AccountNumber": "1"}, {}), connect_timeout=1.5, read_timeout=7.0)
    client.get_customer("1")
    assert adapter.sent[0].timeout == (1.5, 7.0)
    own = CommerceClient(make_settings(), StaticTokenProvider("t"))
    pooled = own._session.get_adapter("https://csu.example/Commerce")
    assert pooled._pool_maxsize == 32 and pooled.max_retries.total == 0
    assert own._session.get_adapter("http://127.0.0.1:7075/Commerce") is pooled


def test_redirect_is_not_followed():
    client, adapter = client_for(lambda s: (302, b"", {"Location": "http://elsewhere.test/login"}))
    with pytest.raises(CommercePermanentError) as error:
        client.get_customer("1")
    assert error.value.status == 302 and len(adapter.sent) == 1


def test_call_record_marks_unusable_success_body():
    records: list[CallRecord] = []
    client, _ = client_for(lambda s: (200, "<html/>", {}), records=records)
    with pytest.raises(CommercePermanentError):
        client.get_customer("1")
    assert [(r.status, r.error) for r in records] == [(200, "CommercePermanentError")]
