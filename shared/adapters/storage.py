"""Azure Storage clients for the app's own SDK calls (ingest writes, dead letters, queue metrics), and
the sync ledger's three entity operations as direct HTTP requests (``TableEntities``).

The same ``AzureWebJobsStorage`` connection the triggers use: a connection string locally (Azurite),
the identity-based ``AzureWebJobsStorage__*`` settings in Azure (no shared keys).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import re
import select
import selectors
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any, Protocol, TypeGuard
from urllib.parse import quote, urlsplit

from azure.core import MatchConditions
from azure.core.credentials import AccessToken, AzureNamedKeyCredential, TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, TableServiceClient, UpdateMode
from azure.storage.queue import (
    QueueClient,
    QueueServiceClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

PREFIX = "AzureWebJobsStorage"


def _transport_options(url: str) -> dict[str, Any]:
    """Proxy settings read once, at start-up, instead of on every request.

    With the SDK's default transport, requests re-scans the proxy environment variables on every call:
    measured with bench/pipeline.py under cProfile, that is about a seventh of the CPU the three ledger
    operations of an event cost. The variables do not change during a worker's life.
    """
    import requests
    from azure.core.pipeline.transport import RequestsTransport

    proxies = requests.utils.get_environ_proxies(url) if url else {}
    options: dict[str, Any] = {"transport": RequestsTransport(use_env_settings=False)}
    if proxies:
        options["proxies"] = proxies
    return options


class StorageFactory:
    """Builds queue and table clients once per process; they are thread-safe and pool connections."""

    def __init__(self, env: Mapping[str, str], credential: TokenCredential | None = None):
        """``credential`` is for operator tools run outside Azure (e.g. AzureCliCredential); the app
        itself uses the managed identity named by ``AzureWebJobsStorage__clientId``."""
        self._conn = env.get(PREFIX, "").strip()
        self._queue_uri = env.get(f"{PREFIX}__queueServiceUri", "").strip()
        self._table_uri = env.get(f"{PREFIX}__tableServiceUri", "").strip()
        account = env.get(f"{PREFIX}__accountName", "").strip()
        if account:
            self._queue_uri = self._queue_uri or f"https://{account}.queue.core.windows.net"
            self._table_uri = self._table_uri or f"https://{account}.table.core.windows.net"
        self._client_id = env.get(f"{PREFIX}__clientId", "").strip() or None
        self._credential = credential
        self._queue_service: QueueServiceClient | None = None
        self._table_service: TableServiceClient | None = None

    def _identity(self) -> TokenCredential:
        if self._credential is None:
            from azure.identity import ManagedIdentityCredential

            self._credential = ManagedIdentityCredential(client_id=self._client_id)
        return self._credential

    def queue_service(self) -> QueueServiceClient:
        if self._queue_service is None:
            kwargs = dict(
                message_encode_policy=TextBase64EncodePolicy(),
                message_decode_policy=TextBase64DecodePolicy(),
                **_transport_options(self._queue_uri or "https://queue.core.windows.net"),
            )
            if self._conn:
                self._queue_service = QueueServiceClient.from_connection_string(self._conn, **kwargs)
            else:
                self._queue_service = QueueServiceClient(self._queue_uri, credential=self._identity(), **kwargs)
        return self._queue_service

    def queue(self, name: str) -> QueueClient:
        # Base64 both ways: the queue trigger's default messageEncoding.
        return self.queue_service().get_queue_client(
            name, message_encode_policy=TextBase64EncodePolicy(), message_decode_policy=TextBase64DecodePolicy()
        )

    def table_service(self) -> TableServiceClient:
        if self._table_service is None:
            options = _transport_options(self._table_uri or "https://table.core.windows.net")
            if self._conn:
                self._table_service = TableServiceClient.from_connection_string(self._conn, **options)
            else:
                self._table_service = TableServiceClient(self._table_uri, credential=self._identity(), **options)
        return self._table_service

    def table(self, name: str) -> TableClient:
        return self.table_service().get_table_client(name)


class StorageQueueSender:
    """Puts event envelopes on the event queue (ingest, and replay of dead letters)."""

    def __init__(self, queue: QueueClient):
        self.queue = queue

    def send(self, message: str, delay_seconds: int = 0) -> None:
        """``delay_seconds``: the message stays invisible that long (the processor's retries)."""
        # time_to_live=-1: an event waits as long as it takes; the default (7 days) would lose it.
        self.queue.send_message(message, time_to_live=-1, visibility_timeout=delay_seconds or None)


def ensure_queue(queue: QueueClient) -> None:
    try:
        queue.create_queue()
    except ResourceExistsError:
        pass


def ensure_table(table: TableClient) -> None:
    try:
        table.create_table()
    except ResourceExistsError:
        pass


# --- the ledger's entity operations ------------------------------------------------------------------

STORAGE_SCOPE = "https://storage.azure.com/.default"
TABLES_API_VERSION = "2019-02-02"  # what azure-data-tables 12.x sends
TIMEOUT_SECONDS = 30.0  # connect, and each wait for data (the SDK's default is 300)
POOL_SIZE = 32  # idle kept-alive connections kept (one per worker thread, PYTHON_THREADPOOL_THREAD_COUNT <= 32)
TOKEN_REFRESH_SECONDS = 300  # a token is renewed this long before it expires


class TableEntities(Protocol):
    """Point read, insert and ETag-conditional replace of one table's entities. Errors are azure-core's,
    as the SDK raises them: ``ResourceNotFoundError`` (no such entity, or ``TableNotFound``),
    ``ResourceExistsError`` (insert of an existing entity), ``ResourceModifiedError`` (the ETag no longer
    matches), ``ClientAuthenticationError``, ``HttpResponseError`` (``status_code``, ``error_code``), and
    ``ServiceRequestError`` / ``ServiceResponseError`` when no answer came."""

    def get(self, partition_key: str, row_key: str) -> tuple[dict[str, Any], str | None]: ...
    def insert(self, entity: Mapping[str, Any]) -> str | None: ...
    def replace(self, entity: Mapping[str, Any], etag: str) -> str | None: ...


class SdkTableEntities:
    """``TableEntities`` through the SDK's ``TableClient`` (its pipeline: retries, tracing, logging)."""

    def __init__(self, table: TableClient):
        self.table = table

    def get(self, partition_key: str, row_key: str) -> tuple[dict[str, Any], str | None]:
        entity = self.table.get_entity(partition_key, row_key)
        return dict(entity), entity.metadata.get("etag")

    def insert(self, entity: Mapping[str, Any]) -> str | None:
        return self.table.create_entity(dict(entity)).get("etag")

    def replace(self, entity: Mapping[str, Any], etag: str) -> str | None:
        return self.table.update_entity(
            dict(entity), mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
        ).get("etag")


def table_entities(table: TableClient) -> TableEntities:
    """The cheapest ``TableEntities`` for ``table``: direct HTTP requests (``HttpTableEntities``) for a
    storage account reached with a key (Azurite, connection strings) or an Entra token (the app's
    identity in Azure) and no proxy; the SDK otherwise (SAS, Cosmos DB's Table API, a proxy)."""
    import requests

    credential = table.credential
    parts = urlsplit(table.url)
    plain = (
        parts.scheme in ("http", "https")
        and not parts.query
        and not getattr(table, "_cosmos_endpoint", False)
        and not requests.utils.get_environ_proxies(table.url)
    )
    if plain and isinstance(credential, AzureNamedKeyCredential):
        auth: _Auth = _SharedKeyLite(credential.named_key.name, credential.named_key.key)
    elif plain and _token_credential(credential) and parts.scheme == "https":
        auth = _Bearer(credential)
    else:
        return SdkTableEntities(table)
    return HttpTableEntities(
        table.url, table.table_name, auth, api_version=getattr(table, "api_version", None) or TABLES_API_VERSION
    )


def _token_credential(credential: object) -> TypeGuard[TokenCredential]:
    # hasattr, as the tables SDK itself tells one: isinstance with the runtime protocol would not see a
    # get_token supplied by __getattr__.
    return hasattr(credential, "get_token")


class _Auth(Protocol):
    def headers(self, path: str, date: str) -> dict[str, str]: ...
    def challenged(self, www_authenticate: str | None) -> bool:
        """After a 401: True when new credentials were obtained and the request should be sent once more."""


class _SharedKeyLite:
    """``Authorization: SharedKeyLite``: HMAC-SHA256 of the date and the canonical resource (the
    account and the path, for requests without a ``comp`` parameter)."""

    def __init__(self, account: str, key: str):
        self._account, self._key = account, base64.b64decode(key)

    def headers(self, path: str, date: str) -> dict[str, str]:
        signed = hmac.new(self._key, f"{date}\n/{self._account}{path}".encode(), hashlib.sha256)
        return {"Authorization": f"SharedKeyLite {self._account}:{base64.b64encode(signed.digest()).decode()}"}

    def challenged(self, www_authenticate: str | None) -> bool:
        return False  # a key does not expire: a 401 is final


class _Bearer:
    """``Authorization: Bearer`` with a token of ``credential`` for Azure Storage, renewed
    ``TOKEN_REFRESH_SECONDS`` before it expires (one renewal at a time).

    A 401 is handled as azure-core's ``BearerTokenCredentialPolicy`` does. With a claims challenge
    (``WWW-Authenticate: Bearer error="insufficient_claims", claims="<base64url>"``, Continuous Access
    Evaluation) a token is requested with those claims, which makes azure-identity bypass its cache,
    and the request is sent once more. Any other 401 is not retried here: asking the credential again
    would only return the token azure-identity has cached. It is raised as ``ClientAuthenticationError``
    (``storage_auth``), which the processor retries with backoff; the token held here is dropped, so
    the next request asks the credential again (which renews it when it is due)."""

    def __init__(self, credential: TokenCredential, scope: str = STORAGE_SCOPE):
        self._credential, self._scope = credential, scope
        self._token: AccessToken | None = None
        self._lock = threading.Lock()

    def _current(self) -> str:
        token = self._token
        if token is None or token.expires_on - time.time() < TOKEN_REFRESH_SECONDS:
            with self._lock:
                token = self._token
                if token is None or token.expires_on - time.time() < TOKEN_REFRESH_SECONDS:
                    token = self._token = self._credential.get_token(self._scope)
        return token.token

    def headers(self, path: str, date: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._current()}"}

    def challenged(self, www_authenticate: str | None) -> bool:
        self._token = None
        claims = _claims_challenge(www_authenticate)
        if claims is None:
            return False
        with self._lock:
            self._token = self._credential.get_token(self._scope, claims=claims)
        return True


_CHALLENGE_PARAMETER = re.compile(r'([A-Za-z_]+)\s*=\s*"([^"]*)"')


def _claims_challenge(www_authenticate: str | None) -> str | None:
    """The claims a ``Bearer error="insufficient_claims"`` challenge asks for (decoded JSON), or None."""
    if not www_authenticate or not www_authenticate.lstrip().lower().startswith("bearer"):
        return None
    parameters = {k.lower(): v for k, v in _CHALLENGE_PARAMETER.findall(www_authenticate)}
    if parameters.get("error") != "insufficient_claims" or not parameters.get("claims"):
        return None
    encoded = parameters["claims"]
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8") or None
    except (ValueError, UnicodeDecodeError):
        return None


class _Response:
    __slots__ = ("status", "reason", "headers", "body")

    def __init__(self, status: int, reason: str, headers: http.client.HTTPMessage, body: bytes):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body


_DROPPED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class HttpTableEntities:
    """``TableEntities`` as plain HTTP/1.1 requests of the Table service REST API on kept-alive
    connections (``http.client``), with none of the SDK's per-request pipeline.

    Why: measured with bench/pipeline.py and a single-threaded loop against Azurite, one operation
    through ``TableClient`` costs 1.1-1.3 ms of CPU (azure-core's policies, requests' session merging,
    the generated serializer, header parsing through the email package), the same request here about
    0.25 ms. The ledger makes two or three per event, so that was most of a worker's CPU.

    The requests are the SDK's: ``x-ms-version`` 2019-02-02, JSON without metadata, ``Prefer:
    return-no-content`` on insert, ``If-Match`` on replace, an ``x-ms-client-request-id`` (a uuid4 per
    operation, kept by its resends, named in the exceptions raised when no answer came) to find it in
    the storage logs; the ETag comes from the response header, and a success without one is raised
    as ``ServiceResponseError`` (a version of None would turn the next write into an insert, a
    conflict on every retry).

    Values, unlike the SDK's, are sent untyped, so only those the service stores with the type Python
    gives them are accepted: ``str``, ``bool`` and ``int`` within Int32 (the only types
    ``shared.adapters.ledger_table.to_entity`` writes). Anything else raises ``TypeError`` before a request is
    made: the SDK would send an Int64, a Double, a DateTime with an ``@odata.type`` annotation, or
    leave out a None, which JSON alone cannot say. Text is sent as ASCII JSON (``\\u`` escapes), as the
    SDK sends it, so any ``str`` goes through, a lone surrogate too. Reads ask for no metadata: an
    entity written by another client with Int64, DateTime, Guid or Binary properties reads them as
    plain strings, and the service's ``Timestamp`` is one of the properties returned (the SDK turns
    the first into Python types and the second into ``metadata``); the ledger reads neither.

    Every write is conditional, so the one retry made here is safe whatever happened to the first try:
    a request on a kept-alive connection the server had already closed (no answer at all) is sent
    again once on a new connection; if the first one did commit, the second fails as a conflict (the
    insert finds the entity, the replace a new ETag), which the ledger handles as any lost race. No
    other retries: a storage failure is the processor's to retry (``storage_unavailable``)."""

    def __init__(
        self,
        account_url: str,
        table: str,
        auth: _Auth,
        *,
        api_version: str = TABLES_API_VERSION,
        timeout: float = TIMEOUT_SECONDS,
        ssl_context: ssl.SSLContext | None = None,
    ):
        parts = urlsplit(account_url)
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname or "", parts.port
        self._table_path = f"{parts.path.rstrip('/')}/{quote(table)}"
        self._auth, self._api_version, self._timeout = auth, api_version, timeout
        self._ssl = ssl_context if ssl_context is not None or not self._https else _default_ssl_context()
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    # --- the operations ------------------------------------------------------------------------------
    def get(self, partition_key: str, row_key: str) -> tuple[dict[str, Any], str]:
        response = self._request("GET", self._entity_path(partition_key, row_key))
        if response.status != 200:
            raise _error(response)
        return json.loads(response.body), _etag(response, "GET")

    def insert(self, entity: Mapping[str, Any]) -> str:
        response = self._request("POST", self._table_path, _body(entity), {"Prefer": "return-no-content"})
        if response.status not in (201, 204):
            raise _error(response)
        return _etag(response, "POST")

    def replace(self, entity: Mapping[str, Any], etag: str) -> str:
        path = self._entity_path(entity["PartitionKey"], entity["RowKey"])
        response = self._request("PUT", path, _body(entity), {"If-Match": etag})
        if response.status != 204:
            raise _error(response)
        return _etag(response, "PUT")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    # --- plumbing ------------------------------------------------------------------------------------
    def _entity_path(self, partition_key: str, row_key: str) -> str:
        return f"{self._table_path}(PartitionKey='{_key(partition_key)}',RowKey='{_key(row_key)}')"

    def _request(
        self, method: str, path: str, body: bytes | None = None, extra: Mapping[str, str] | None = None
    ) -> _Response:
        request_id = str(uuid.uuid4())
        challenged = False
        while True:
            response = self._exchange(method, path, body, extra, request_id)
            if (
                response.status == 401
                and not challenged
                and self._auth.challenged(response.headers.get("WWW-Authenticate"))
            ):
                challenged = True
                continue
            return response

    def _headers(
        self, path: str, body: bytes | None, extra: Mapping[str, str] | None, request_id: str
    ) -> dict[str, str]:
        date = formatdate(usegmt=True)
        headers = {
            "x-ms-date": date,
            "x-ms-version": self._api_version,
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Accept": "application/json;odata=nometadata",
            "x-ms-client-request-id": request_id,
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        if extra:
            headers.update(extra)
        headers.update(self._auth.headers(path, date))
        return headers

    def _exchange(
        self, method: str, path: str, body: bytes | None, extra: Mapping[str, str] | None, request_id: str
    ) -> _Response:
        where = f"Table storage {method} (client request id {request_id})"
        for attempt in (1, 2):
            connection, reused = self._connection()
            sent = False
            try:
                connection.request(method, path, body=body, headers=self._headers(path, body, extra, request_id))
                sent = True
                answer = connection.getresponse()
                data = answer.read()
            except _DROPPED as error:
                connection.close()
                if reused and attempt == 1:
                    continue  # closed by the server while idle: once more, on a new connection
                raise (ServiceResponseError if sent else ServiceRequestError)(
                    f"{where}: connection dropped ({type(error).__name__})", error=error
                ) from None
            except TimeoutError as error:
                connection.close()
                raise (ServiceResponseError if sent else ServiceRequestError)(
                    f"{where}: timed out after {self._timeout:g} s", error=error
                ) from None
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                raise (ServiceResponseError if sent else ServiceRequestError)(
                    f"{where}: {type(error).__name__}", error=error
                ) from None
            if answer.will_close:
                connection.close()
            else:
                self._keep(connection)
            return _Response(answer.status, answer.reason, answer.headers, data)
        raise AssertionError("unreachable")

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """An idle kept-alive connection (True) or a new one (False). An idle one the server has closed
        meanwhile (readable: end of stream) is dropped here, before a request is written to it."""
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                if self._https:
                    return http.client.HTTPSConnection(
                        self._host, self._port, timeout=self._timeout, context=self._ssl
                    ), False
                return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout), False
            sock = connection.sock
            if sock is not None and not _readable(sock):
                return connection, True
            connection.close()

    def _keep(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < POOL_SIZE:
                self._idle.append(connection)
                return
        connection.close()


def _default_ssl_context() -> ssl.SSLContext:
    """The CA bundle requests (and so the SDK's transport) uses: certifi's, when installed."""
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with requests
        return ssl.create_default_context()


def _key(value: str) -> str:
    """A PartitionKey or RowKey in an entity's URL: OData string literal (``'`` doubled), URL-encoded."""
    return quote(value.replace("'", "''"), safe="")


def _readable(sock: socket.socket) -> bool:
    """Whether an idle socket has anything to read (for a kept-alive connection: the server closed it),
    without waiting. ``poll`` (or a selector where there is none): ``select.select`` refuses descriptors
    of 1024 and above, which a worker with many connections and files open reaches. A socket that
    cannot be polled counts as readable: the connection is closed and a new one made."""
    try:
        if _POLL:
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        with selectors.DefaultSelector() as selector:  # pragma: no cover - platforms without poll
            selector.register(sock, selectors.EVENT_READ)
            return bool(selector.select(0))
    except (OSError, ValueError):
        return True


_POLL = hasattr(select, "poll")
_INT32 = range(-(2**31), 2**31)


def _body(entity: Mapping[str, Any]) -> bytes:
    """The entity as the JSON the SDK sends for it (see ``HttpTableEntities`` on the accepted types)."""
    for name, value in entity.items():
        if not (isinstance(value, str) or isinstance(value, bool) or (type(value) is int and value in _INT32)):
            raise TypeError(
                f"Table entity property {name!r}: {type(value).__name__} {value!r:.40} is sent "
                "untyped by the ledger's direct client; only str, bool and int within Int32 are "
                "stored as sent (the SDK, shared.adapters.storage.SdkTableEntities, types the others)"
            )
    return json.dumps(entity, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _etag(response: _Response, method: str) -> str:
    etag = response.headers.get("ETag")
    if not etag:
        raise ServiceResponseError(
            f"Table storage {method}: HTTP {response.status} without an ETag "
            f"(x-ms-request-id {response.headers.get('x-ms-request-id') or '-'})"
        )
    return etag


def _error(response: _Response) -> HttpResponseError:
    """The exception the SDK raises for this answer (same types, ``status_code`` and ``error_code``)."""
    code = response.headers.get("x-ms-error-code")
    message = ""
    try:
        detail = json.loads(response.body or b"{}").get("odata.error") or {}
        code = detail.get("code") or code
        message = (detail.get("message") or {}).get("value") or ""
    except (ValueError, AttributeError):
        pass
    kind: type[HttpResponseError]
    if response.status == 401 or code in ("InvalidAuthenticationInfo", "AuthenticationFailed"):
        kind = ClientAuthenticationError
    elif response.status == 404:
        kind = ResourceNotFoundError
    elif response.status == 409:
        kind = ResourceExistsError
    elif code in ("UpdateConditionNotSatisfied", "ConditionNotMet") or response.status == 412:
        kind = ResourceModifiedError
    else:
        kind = HttpResponseError
    text = f"{message or response.reason} (HTTP {response.status}" + (f", {code})" if code else ")")
    error = kind(message=text)
    error.status_code, error.reason = response.status, response.reason
    # Not declared by azure-core: the storage SDKs set it on the errors they raise, as done here.
    error.error_code = code  # type: ignore[attr-defined]
    return error
