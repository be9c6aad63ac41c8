"""The ledger's direct Table storage requests (``shared.adapters.storage.HttpTableEntities``) against a scripted
local HTTP server: what is sent, how answers and failures map to the SDK's exceptions (and so to the
same failure reasons), token renewal, and kept-alive connections the server closed meanwhile."""

from __future__ import annotations

import base64
import json
import os
import resource
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from azure.core.credentials import AccessToken, AzureNamedKeyCredential, AzureSasCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableClient

from shared.adapters.ledger_table import LedgerStore, to_entity
from shared.adapters.storage import HttpTableEntities, SdkTableEntities, _Bearer, _SharedKeyLite, table_entities
from shared.core.failures import classify_failure
from shared.core.ledger_rules import LedgerConflict, LedgerEntry, OrderKey, take_lease

KEY = "a2V5"  # base64 of "key"


class Script:
    """What the server answers, in order: (status, headers, body) or "drop" (close without answering)."""

    def __init__(self) -> None:
        self.answers: list = []
        self.requests: list[dict] = []
        self.connections: set[int] = set()
        self.close_after_answer = False


def serve(script: Script):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            script.connections.add(self.client_address[1])
            script.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                    "connection": self.client_address[1],
                }
            )
            answer = script.answers.pop(0) if script.answers else (204, {"ETag": 'W/"e"'}, b"")
            if answer == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if answer == "hang":
                time.sleep(1.0)
                self.close_connection = True
                return
            status, headers, payload = answer
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            if script.close_after_answer:
                self.close_connection = True

        do_GET = do_POST = do_PUT = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return server


@pytest.fixture
def script():
    s = Script()
    server = serve(s)
    s.url = f"http://127.0.0.1:{server.server_address[1]}/devstoreaccount1"
    yield s
    server.shutdown()
    server.server_close()


def entities(script: Script, auth=None, timeout: float = 5.0) -> HttpTableEntities:
    return HttpTableEntities(script.url, "syncledger", auth or _SharedKeyLite("devstoreaccount1", KEY), timeout=timeout)


def odata_error(status: int, code: str, reason: str = "x") -> tuple:
    return (
        status,
        {"Content-Type": "application/json", "x-ms-error-code": code},
        json.dumps(
            {"odata.error": {"code": code, "message": {"lang": "en-US", "value": f"{code}: {reason}"}}}
        ).encode(),
    )


# --- the requests ------------------------------------------------------------------------------------------


def test_the_three_requests_are_the_table_services(script):
    client = entities(script)
    script.answers = [
        (
            200,
            {"ETag": 'W/"1"', "Content-Type": "application/json"},
            b'{"PartitionKey":"p","RowKey":"ledger","State":"new"}',
        ),
        (204, {"ETag": 'W/"2"'}, b""),
        (204, {"ETag": 'W/"3"'}, b""),
    ]
    entity, etag = client.get("p'q", "ledger")
    assert entity["State"] == "new" and etag == 'W/"1"'
    assert client.insert({"PartitionKey": "p", "RowKey": "ledger", "Name": "é"}) == 'W/"2"'
    assert client.replace({"PartitionKey": "p", "RowKey": "ledger"}, 'W/"2"') == 'W/"3"'
    get, post, put = script.requests
    assert (
        get["method"] == "GET"
        and get["path"] == "/devstoreaccount1/syncledger(PartitionKey='p%27%27q',RowKey='ledger')"
    )
    assert post["method"] == "POST" and post["path"] == "/devstoreaccount1/syncledger"
    assert post["headers"]["Prefer"] == "return-no-content" and json.loads(post["body"])["Name"] == "é"
    assert put["method"] == "PUT" and put["headers"]["If-Match"] == 'W/"2"'
    for r in (get, post, put):
        assert (
            r["headers"]["x-ms-version"] == "2019-02-02"
            and r["headers"]["Accept"] == "application/json;odata=nometadata"
        )
        assert r["headers"]["Authorization"].startswith("SharedKeyLite devstoreaccount1:")
    assert len(script.connections) == 1  # one kept-alive connection for all three


def test_a_bearer_token_is_fetched_once_and_renewed_before_it_expires(script):
    class Credential:
        def __init__(self):
            self.scopes, self.n = [], 0

        def get_token(self, *scopes, **kw):
            self.scopes.append(scopes)
            self.n += 1
            return AccessToken(f"tok{self.n}", int(time.time()) + (3600 if self.n > 1 else 200))

    credential = Credential()
    client = entities(script, _Bearer(credential))
    client.replace({"PartitionKey": "p", "RowKey": "r"}, "e")  # a token with 200 s left: renewed next time
    client.replace({"PartitionKey": "p", "RowKey": "r"}, "e")
    client.replace({"PartitionKey": "p", "RowKey": "r"}, "e")
    assert [r["headers"]["Authorization"] for r in script.requests] == ["Bearer tok1", "Bearer tok2", "Bearer tok2"]
    assert credential.scopes == [("https://storage.azure.com/.default",)] * 2


# --- answers map to the SDK's exceptions, and so to the same failure reasons --------------------------------


@pytest.mark.parametrize(
    "answer, kind, reason",
    [
        (odata_error(404, "ResourceNotFound"), ResourceNotFoundError, None),
        (odata_error(404, "TableNotFound"), ResourceNotFoundError, "storage_not_provisioned"),
        (odata_error(409, "EntityAlreadyExists"), ResourceExistsError, None),
        (odata_error(412, "UpdateConditionNotSatisfied"), ResourceModifiedError, None),
        (odata_error(403, "AuthenticationFailed"), ClientAuthenticationError, "storage_auth"),
        (odata_error(403, "AuthorizationPermissionMismatch"), HttpResponseError, "storage_rejected"),
        (odata_error(503, "ServerBusy"), HttpResponseError, "storage_unavailable"),
        (odata_error(500, "InternalError"), HttpResponseError, "storage_unavailable"),
        ((400, {}, b"not json"), HttpResponseError, "storage_rejected"),
    ],
)
def test_errors_are_the_sdks(script, answer, kind, reason):
    script.answers = [answer]
    with pytest.raises(kind) as raised:
        entities(script).replace({"PartitionKey": "p", "RowKey": "r"}, "e")
    assert type(raised.value) is kind and raised.value.status_code == answer[0]
    if reason:
        assert classify_failure(raised.value).reason == reason


def test_the_ledger_store_reads_a_missing_entry_as_none_and_a_missing_table_as_a_failure(script):
    store = LedgerStore(
        TableClient(script.url, "syncledger", credential=AzureNamedKeyCredential("devstoreaccount1", KEY))
    )
    assert isinstance(store.entities, HttpTableEntities)
    script.answers = [odata_error(404, "ResourceNotFound")]
    assert store.read("a" * 64) is None
    script.answers = [odata_error(404, "TableNotFound")]
    with pytest.raises(ResourceNotFoundError):
        store.read("a" * 64)
    script.answers = [odata_error(409, "EntityAlreadyExists")]
    with pytest.raises(LedgerConflict):
        store.write(LedgerEntry("a" * 64))
    script.answers = [odata_error(412, "UpdateConditionNotSatisfied")]
    with pytest.raises(LedgerConflict):
        store.write(LedgerEntry("a" * 64, etag="old"))


# --- connections ---------------------------------------------------------------------------------------------


def test_a_connection_the_server_closed_while_idle_is_not_reused(script):
    client = entities(script)
    script.close_after_answer = True  # the server closes after each answer (without saying so)
    for _ in range(3):
        client.replace({"PartitionKey": "p", "RowKey": "r"}, "e")
    assert len(script.requests) == 3 and len(script.connections) == 3


def test_a_request_dropped_on_a_kept_alive_connection_is_sent_once_more_on_a_new_one(script):
    client = entities(script)
    client.replace({"PartitionKey": "p", "RowKey": "r"}, "e")
    script.answers = ["drop", (204, {"ETag": "e2"}, b"")]
    assert client.replace({"PartitionKey": "p", "RowKey": "r"}, "e") == "e2"
    assert len(script.requests) == 3 and script.requests[1]["connection"] != script.requests[2]["connection"]


def test_a_drop_on_a_new_connection_is_a_storage_failure_not_retried(script):
    script.answers = ["drop", (204, {}, b"")]
    with pytest.raises(ServiceResponseError) as raised:
        entities(script).insert({"PartitionKey": "p", "RowKey": "r"})
    assert classify_failure(raised.value).reason == "storage_unavailable" and len(script.requests) == 1


def test_no_answer_within_the_timeout_is_a_storage_failure(script):
    script.answers = ["hang"]
    started = time.monotonic()
    with pytest.raises(ServiceResponseError) as raised:
        entities(script, timeout=0.3).get("p", "r")
    assert time.monotonic() - started < 0.9 and classify_failure(raised.value).reason == "storage_unavailable"


def test_no_server_is_a_request_that_never_left():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = HttpTableEntities(f"http://127.0.0.1:{port}/devstoreaccount1", "t", _SharedKeyLite("a", KEY))
    with pytest.raises(ServiceRequestError) as raised:
        client.get("p", "r")
    assert classify_failure(raised.value).reason == "storage_unavailable"


def test_threads_share_a_pool_of_kept_alive_connections(script):
    client = entities(script)
    barrier = threading.Barrier(8)

    def work():
        barrier.wait()
        for _ in range(10):
            client.replace({"PartitionKey": "p", "RowKey": "r"}, "e")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(script.requests) == 80 and len(script.connections) <= 8


# --- which client a table gets ---------------------------------------------------------------------------


def test_the_direct_client_is_used_for_keys_and_tokens_and_the_sdk_otherwise(monkeypatch):
    class Token:
        def get_token(self, *a, **k):
            return AccessToken("t", int(time.time()) + 3600)

    keyed = TableClient(
        "http://127.0.0.1:10002/devstoreaccount1", "t", credential=AzureNamedKeyCredential("devstoreaccount1", KEY)
    )
    assert isinstance(table_entities(keyed), HttpTableEntities)
    assert isinstance(
        table_entities(TableClient("https://acct.table.core.windows.net", "t", credential=Token())), HttpTableEntities
    )
    sas = TableClient("https://acct.table.core.windows.net", "t", credential=AzureSasCredential("sv=2019&sig=x"))
    assert isinstance(table_entities(sas), SdkTableEntities)
    cosmos = TableClient("https://acct.table.cosmos.azure.com", "t", credential=AzureNamedKeyCredential("acct", KEY))
    assert isinstance(table_entities(cosmos), SdkTableEntities)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert isinstance(
        table_entities(TableClient("https://acct.table.core.windows.net", "t", credential=Token())), SdkTableEntities
    )


# --- what is sent ------------------------------------------------------------------------------------------


def test_text_is_sent_as_ascii_json_so_a_lone_surrogate_goes_through_as_the_sdk_sends_it(script):
    client = entities(script)
    client.insert({"PartitionKey": "p", "RowKey": "r", "Name": "\ud800é"})  # not encodable as UTF-8
    body = script.requests[0]["body"]
    assert body.isascii() and b'"Name":"\\ud800\\u00e9"' in body
    assert json.loads(body)["Name"] == "\ud800é"


@pytest.mark.parametrize("value", [1.5, 2**31, -(2**31) - 1, None, b"x", ["a"], datetime.now(UTC)])
def test_values_the_service_would_store_with_another_type_are_refused_before_anything_is_sent(script, value):
    with pytest.raises(TypeError, match="Count"):
        entities(script).insert({"PartitionKey": "p", "RowKey": "r", "Count": value})
    with pytest.raises(TypeError, match="Count"):
        entities(script).replace({"PartitionKey": "p", "RowKey": "r", "Count": value}, "e")
    assert script.requests == []


def test_text_booleans_and_int32_are_sent_as_json_and_every_ledger_entity_is_that(script):
    entity = {"PartitionKey": "p", "RowKey": "r", "S": "x", "B": True, "Max": 2**31 - 1, "Min": -(2**31)}
    entities(script).insert(entity)
    assert json.loads(script.requests[0]["body"]) == entity
    lease = take_lease(
        LedgerEntry("a" * 64), "me", datetime.now(UTC), 60, OrderKey(datetime.now(UTC), "e"), groups=frozenset({"name"})
    )
    entities(script).insert(to_entity(lease))  # what the ledger writes is accepted as it is
    assert len(script.requests) == 2


@pytest.mark.parametrize("operation", ["get", "insert", "replace"])
def test_a_success_without_an_etag_is_a_storage_failure_not_a_missing_version(script, operation):
    # Returning None would make the next write an insert: a conflict on every retry, never resolved.
    script.answers = [
        (
            200 if operation == "get" else 204,
            {"Content-Type": "application/json"},
            b'{"PartitionKey":"p","RowKey":"r"}' if operation == "get" else b"",
        )
    ]
    client = entities(script)
    call = {
        "get": lambda: client.get("p", "r"),
        "insert": lambda: client.insert({"PartitionKey": "p", "RowKey": "r"}),
        "replace": lambda: client.replace({"PartitionKey": "p", "RowKey": "r"}, "e"),
    }[operation]
    with pytest.raises(ServiceResponseError, match="ETag") as raised:
        call()
    assert classify_failure(raised.value).reason == "storage_unavailable"


def test_every_operation_has_its_own_client_request_id_kept_by_its_resend(script):
    client = entities(script)
    client.replace({"PartitionKey": "p", "RowKey": "r"}, "e")
    script.answers = ["drop", (204, {"ETag": "e2"}, b"")]
    client.replace({"PartitionKey": "p", "RowKey": "r"}, "e")  # dropped on the kept-alive connection, sent again
    first, dropped, resent = [r["headers"]["x-ms-client-request-id"] for r in script.requests]
    assert uuid.UUID(first).version == 4 and first != dropped and dropped == resent


def test_a_failure_with_no_answer_names_the_client_request_id(script):
    script.answers = ["drop"]
    with pytest.raises(ServiceResponseError) as raised:
        entities(script).insert({"PartitionKey": "p", "RowKey": "r"})
    assert script.requests[0]["headers"]["x-ms-client-request-id"] in str(raised.value)


# --- connections, with many files open ------------------------------------------------------------------


def test_a_kept_alive_connection_on_a_descriptor_above_1023_is_reused(script):
    """``select.select`` refuses descriptors >= 1024 (FD_SETSIZE); a worker with many sockets has them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        if hard != resource.RLIM_INFINITY and hard < 1200:
            pytest.skip("cannot open 1200 files")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    fillers = []
    try:
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            fillers.append(fd)
            if fd >= 1030:
                break
        client = entities(script)
        client.replace({"PartitionKey": "p", "RowKey": "r"}, "e")
        assert client._idle[0].sock.fileno() >= 1024
        client.replace({"PartitionKey": "p", "RowKey": "r"}, "e")
        assert len(script.requests) == 2 and len(script.connections) == 1  # reused, not dropped
        client.close()
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# --- authentication failures ---------------------------------------------------------------------------


def test_a_401_with_a_claims_challenge_gets_a_token_with_those_claims_and_is_sent_once_more(script):
    claims = '{"access_token":{"nbf":{"essential":true,"value":"1726000000"}}}'
    encoded = base64.urlsafe_b64encode(claims.encode()).decode().rstrip("=")

    class Credential:
        def __init__(self):
            self.asked = []

        def get_token(self, *scopes, **kw):
            self.asked.append(kw)
            return AccessToken(f"tok{len(self.asked)}", int(time.time()) + 3600)

    credential = Credential()
    client = entities(script, _Bearer(credential))
    challenge = (
        f'Bearer authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
        f'error="insufficient_claims", claims="{encoded}"'
    )
    script.answers = [(401, {"WWW-Authenticate": challenge}, b""), (204, {"ETag": "e2"}, b"")]
    assert client.replace({"PartitionKey": "p", "RowKey": "r"}, "e") == "e2"
    assert [r["headers"]["Authorization"] for r in script.requests] == ["Bearer tok1", "Bearer tok2"]
    assert credential.asked == [{}, {"claims": claims}]
    client.replace({"PartitionKey": "p", "RowKey": "r"}, "e")
    assert script.requests[-1]["headers"]["Authorization"] == "Bearer tok2" and len(credential.asked) == 2


def test_a_401_without_a_claims_challenge_is_an_authentication_failure_for_the_processor_to_retry(script):
    asked = []

    class Credential:
        def get_token(self, *scopes, **kw):
            asked.append(kw)
            return AccessToken(f"tok{len(asked)}", int(time.time()) + 3600)

    client = entities(script, _Bearer(Credential()))
    plain = 'Bearer authorization_uri="https://login.microsoftonline.com/t/oauth2/authorize", resource_id="https://storage.azure.com"'
    script.answers = [(401, {"WWW-Authenticate": plain, "x-ms-error-code": "InvalidAuthenticationInfo"}, b"")]
    with pytest.raises(ClientAuthenticationError) as raised:
        client.replace({"PartitionKey": "p", "RowKey": "r"}, "e")
    assert classify_failure(raised.value).reason == "storage_auth" and len(script.requests) == 1
    # The token is asked for again on the next request (the credential decides whether it is new).
    client.replace({"PartitionKey": "p", "RowKey": "r"}, "e")
    assert asked == [{}, {}] and script.requests[-1]["headers"]["Authorization"] == "Bearer tok2"


def test_a_401_with_a_key_is_final(script):
    script.answers = [odata_error(401, "AuthenticationFailed")]
    with pytest.raises(ClientAuthenticationError):
        entities(script).get("p", "r")
    assert len(script.requests) == 1
