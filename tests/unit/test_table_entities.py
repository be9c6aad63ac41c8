"""The ledger's direct Table storage requests (``shared.storage.HttpTableEntities``) against a scripted
local HTTP server: what is sent, how answers and failures map to the SDK's exceptions (and so to the
same failure reasons), token renewal, and kept-alive connections the server closed meanwhile."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from azure.core.credentials import AccessToken, AzureNamedKeyCredential, AzureSasCredential
from azure.core.exceptions import (ClientAuthenticationError, HttpResponseError, ResourceExistsError,
                                   ResourceModifiedError, ResourceNotFoundError, ServiceRequestError,
                                   ServiceResponseError)
from azure.data.tables import TableClient

from shared.errors import classify
from shared.ledger import LedgerConflict, LedgerEntry
from shared.ledger_store import LedgerStore
from shared.storage import HttpTableEntities, SdkTableEntities, _Bearer, _SharedKeyLite, table_entities

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
            script.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                    "body": body, "connection": self.client_address[1]})
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
    return HttpTableEntities(script.url, "syncledger", auth or _SharedKeyLite("devstoreaccount1", KEY),
                             timeout=timeout)


def odata_error(status: int, code: str, reason: str = "x") -> tuple:
    return (status, {"Content-Type": "application/json", "x-ms-error-code": code},
            json.dumps({"odata.error": {"code": code, "message": {"lang": "en-US", "value": f"{code}: {reason}"}}}).encode())


# --- the requests ------------------------------------------------------------------------------------------

def test_the_three_requests_are_the_table_services(script):
    client = entities(script)
    script.answers = [(200, {"ETag": 'W/"1"', "Content-Type": "application/json"}, b'{"PartitionKey":"p","RowKey":"ledger","State":"new"}'),
                      (204, {"ETag": 'W/"2"'}, b""), (204, {"ETag": 'W/"3"'}, b"")]
    entity, etag = client.get("p'q", "ledger")
    assert entity["State"] == "new" and etag == 'W/"1"'
    assert client.insert({"PartitionKey": "p", "RowKey": "ledger", "Name": "é"}) == 'W/"2"'
    assert client.replace({"PartitionKey": "p", "RowKey": "ledger"}, 'W/"2"') == 'W/"3"'
    get, post, put = script.requests
    assert get["method"] == "GET" and get["path"] == "/devstoreaccount1/syncledger(PartitionKey='p%27%27q',RowKey='ledger')"
    assert post["method"] == "POST" and post["path"] == "/devstoreaccount1/syncledger"
    assert post["headers"]["Prefer"] == "return-no-content" and json.loads(post["body"])["Name"] == "é"
    assert put["method"] == "PUT" and put["headers"]["If-Match"] == 'W/"2"'
    for r in (get, post, put):
        assert r["headers"]["x-ms-version"] == "2019-02-02" and r["headers"]["Accept"] == "application/json;odata=nometadata"
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


def test_a_401_renews_the_token_once_then_is_an_authentication_failure(script):
    tokens = iter(["old", "new", "newer"])

    class Credential:
        def get_token(self, *scopes, **kw):
            return AccessToken(next(tokens), int(time.time()) + 3600)

    client = entities(script, _Bearer(Credential()))
    script.answers = [odata_error(401, "InvalidAuthenticationInfo"), (204, {"ETag": "e2"}, b"")]
    assert client.replace({"PartitionKey": "p", "RowKey": "r"}, "e") == "e2"
    assert [r["headers"]["Authorization"] for r in script.requests] == ["Bearer old", "Bearer new"]
    script.answers = [odata_error(401, "InvalidAuthenticationInfo"), odata_error(401, "InvalidAuthenticationInfo")]
    with pytest.raises(ClientAuthenticationError) as raised:
        client.replace({"PartitionKey": "p", "RowKey": "r"}, "e")
    assert classify(raised.value).reason == "storage_auth"


# --- answers map to the SDK's exceptions, and so to the same failure reasons --------------------------------

@pytest.mark.parametrize("answer, kind, reason", [
    (odata_error(404, "ResourceNotFound"), ResourceNotFoundError, None),
    (odata_error(404, "TableNotFound"), ResourceNotFoundError, "storage_not_provisioned"),
    (odata_error(409, "EntityAlreadyExists"), ResourceExistsError, None),
    (odata_error(412, "UpdateConditionNotSatisfied"), ResourceModifiedError, None),
    (odata_error(403, "AuthenticationFailed"), ClientAuthenticationError, "storage_auth"),
    (odata_error(403, "AuthorizationPermissionMismatch"), HttpResponseError, "storage_rejected"),
    (odata_error(503, "ServerBusy"), HttpResponseError, "storage_unavailable"),
    (odata_error(500, "InternalError"), HttpResponseError, "storage_unavailable"),
    ((400, {}, b"not json"), HttpResponseError, "storage_rejected"),
])
def test_errors_are_the_sdks(script, answer, kind, reason):
    script.answers = [answer]
    with pytest.raises(kind) as raised:
        entities(script).replace({"PartitionKey": "p", "RowKey": "r"}, "e")
    assert type(raised.value) is kind and raised.value.status_code == answer[0]
    if reason:
        assert classify(raised.value).reason == reason


def test_the_ledger_store_reads_a_missing_entry_as_none_and_a_missing_table_as_a_failure(script):
    store = LedgerStore(TableClient(script.url, "syncledger", credential=AzureNamedKeyCredential("devstoreaccount1", KEY)))
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
    assert classify(raised.value).reason == "storage_unavailable" and len(script.requests) == 1


def test_no_answer_within_the_timeout_is_a_storage_failure(script):
    script.answers = ["hang"]
    started = time.monotonic()
    with pytest.raises(ServiceResponseError) as raised:
        entities(script, timeout=0.3).get("p", "r")
    assert time.monotonic() - started < 0.9 and classify(raised.value).reason == "storage_unavailable"


def test_no_server_is_a_request_that_never_left():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = HttpTableEntities(f"http://127.0.0.1:{port}/devstoreaccount1", "t", _SharedKeyLite("a", KEY))
    with pytest.raises(ServiceRequestError) as raised:
        client.get("p", "r")
    assert classify(raised.value).reason == "storage_unavailable"


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

    keyed = TableClient("http://127.0.0.1:10002/devstoreaccount1", "t", credential=AzureNamedKeyCredential("devstoreaccount1", KEY))
    assert isinstance(table_entities(keyed), HttpTableEntities)
    assert isinstance(table_entities(TableClient("https://acct.table.core.windows.net", "t", credential=Token())),
                      HttpTableEntities)
    sas = TableClient("https://acct.table.core.windows.net", "t", credential=AzureSasCredential("sv=2019&sig=x"))
    assert isinstance(table_entities(sas), SdkTableEntities)
    cosmos = TableClient("https://acct.table.cosmos.azure.com", "t", credential=AzureNamedKeyCredential("acct", KEY))
    assert isinstance(table_entities(cosmos), SdkTableEntities)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert isinstance(table_entities(TableClient("https://acct.table.core.windows.net", "t", credential=Token())),
                      SdkTableEntities)
