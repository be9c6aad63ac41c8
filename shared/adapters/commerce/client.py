"""The one client for the Commerce Scale Unit Customer API (docs/commerce-api.md, "Operations used").

Everything environment-specific comes from CommerceSettings, so moving from the emulator to a real
CSU changes settings only. The client does not retry (the queue and the processor own retry policy),
except one immediate retry of an idempotent call (search, get) when a pooled keep-alive connection
turns out to have been dropped: that failure says nothing about the server's health.

Nothing here logs an email, phone number or token: log records carry the operation, status and
duration only, and errors are masked (errors.py).

The requests go through ``requests``' transport adapter, but not through ``Session.request``: under
16 worker threads on 2 cores the client's CPU per call limits throughput (the GIL serialises it), and
most of that CPU was ``Session`` machinery that gives the same answer on every call (merging the
session's headers and settings, the environment, hooks, cookie jars). What depends only on the
session and the base URL (headers, proxies, CA bundle, the URL's prefix) is resolved once in
``__init__``; each call builds its ``PreparedRequest`` directly (bench/README.md has the figures).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity, get_encoding_from_headers, guess_json_utf

from shared.core.commerce_errors import (
    CommerceConnectionError,
    CommerceError,
    CommercePermanentError,
    CommerceTimeoutError,
    error_from_response,
)
from shared.core.settings import CommerceSettings

from .auth import TokenProvider

log = logging.getLogger(__name__)

POOL_SIZE = 32  # one keep-alive connection per worker thread (PYTHON_THREADPOOL_THREAD_COUNT <= 32)
SEARCH_MAX_PAGES = 20  # a full email matches few prefixes; more pages than this means something is wrong
EMAIL_SEARCH_FIELD = {"Name": "Email", "Value": 3}  # CustomerSearchFieldType.Email
DATA_LEVEL_MINIMAL = 1  # CommerceEntityDataLevel.Minimal


@dataclass(frozen=True)
class CallRecord:
    """One HTTP attempt, for metrics (customer_sync.commerce_calls)."""

    operation: str  # "search" | "get" | "create" | "update"
    status: int | None  # None when no response arrived
    duration_s: float
    error: str | None  # CommerceError subclass name, None on success


def odata_key(value: str) -> str:
    """``('<value>')`` with ``'`` doubled (OData string literal) and the content URL-encoded."""
    return "('" + quote(value.replace("'", "''"), safe="") + "')"


def search_body(email: str) -> dict[str, Any]:
    return {
        "CustomerSearchByFieldCriteria": {
            "Criteria": [{"SearchTerm": email, "SearchField": dict(EMAIL_SEARCH_FIELD)}],
            "DataLevelValue": DATA_LEVEL_MINIMAL,
        }
    }


def email_matches(result: dict[str, Any], email: str) -> bool:
    """Exact, case-insensitive: SearchByFields is a prefix search and returns near-misses."""
    found = result.get("Email")
    return isinstance(found, str) and found.strip().lower() == email.strip().lower()


_NEVER_SENT = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
    requests.exceptions.URLRequired,
)


def _is_connect_failure(exc: requests.exceptions.ConnectionError) -> bool:
    """True when no connection was made (refused, DNS); False for a reset or drop mid-request."""
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError)


def response_charset(content_type: str | None) -> str:
    """The ``charset`` parameter of a Content-Type, else UTF-8.

    JSON is UTF-8 (RFC 8259), so a body without a charset is never guessed at: ``Response.text`` and
    ``Response.json()`` can fall back to charset detection over the whole body, which costs more CPU
    than the rest of a call, and reads ``text/*`` without a charset as ISO-8859-1.
    """
    return _charset_parameter(content_type) or "utf-8"


def _charset_parameter(content_type: str | None) -> str | None:
    if content_type:
        for parameter in content_type.split(";")[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "charset":
                value = value.strip().strip("\"'")
                if value:
                    return value
    return None


def _body(result: dict[str, Any] | None, operation: str) -> dict[str, Any]:
    """The JSON object of a call that does not accept 204 (only an accepted 204 has no body)."""
    if result is None:
        raise CommercePermanentError("success response without a JSON object body", operation=operation)
    return result


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    content = response.content
    # Without a declared charset, RFC 4627's rule on the first four bytes (requests' own
    # guess_json_utf, not a detector over the whole body) still reads a BOM or UTF-16/32 JSON that
    # an intermediary sent without its Content-Type.
    charset = _charset_parameter(response.headers.get("Content-Type")) or guess_json_utf(content) or "utf-8"  # type: ignore[no-untyped-call]  # untyped in types-requests
    if charset.lower().replace("_", "-") in ("utf-8", "utf8"):
        charset = "utf-8-sig"  # the same text, a leading BOM dropped
    try:
        # errors="replace" as requests decodes text: a stray invalid byte in a name does not make a
        # stored customer unreadable.
        text = content.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        text = content.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class CommerceAdapter(HTTPAdapter):
    """requests' HTTP adapter without the cookie jar, and with its connection pool looked up once.

    Commerce authenticates every call by its token; a cookie it might set is never needed, and
    ``HTTPAdapter.build_response`` would parse every response's headers for cookies into a jar that
    nothing reads. Without a proxy, the pool for an origin and TLS settings is always the same one
    (urllib3's ``PoolManager`` keys it so), so the URL parsing and key building that find it, and
    the parsing that takes the path from the URL, are done once instead of for every request.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pools: dict[tuple[str, str, Any, Any], Any] = {}

    def get_connection_with_tls_context(
        self, request: PreparedRequest, verify: Any, proxies: Mapping[str, str] | None = None, cert: Any = None
    ) -> Any:
        url = request.url
        if proxies or not isinstance(url, str):
            return super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)
        scheme, _, origin = url.split("/", 3)[:3]
        key = (scheme, origin, verify, cert)
        pool = self._pools.get(key)
        if pool is None or pool.pool is None:  # not seen yet, or closed (close(), or the PoolManager's LRU)
            pool = super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)
            self._pools[key] = pool
        return pool

    def request_url(self, request: PreparedRequest, proxies: Mapping[str, str] | None) -> str:
        url = request.url
        parts = url.split("/", 3) if isinstance(url, str) and not proxies else ()
        if len(parts) < 4 or "?" in parts[2] or "#" in parts[2]:
            return super().request_url(request, proxies)
        return "/" + parts[3].partition("#")[0]

    def close(self) -> None:
        self._pools.clear()
        super().close()

    def build_response(self, req: PreparedRequest, resp: Any) -> requests.Response:
        response = requests.Response()
        response.status_code = resp.status
        response.headers = CaseInsensitiveDict(resp.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = req.url or ""
        response.request = req
        response.connection = self
        return response


def _prepared_prefix(base: str) -> str | None:
    """``base`` as requests prepares a URL (scheme and host lowercased, IDNA, re-quoted), or None when
    requests refuses it."""
    probe = PreparedRequest()
    try:
        probe.prepare_url(base + "/", None)
    except requests.exceptions.RequestException:
        return None
    return probe.url[:-1]  # type: ignore[index]


class CommerceClient:
    """Search, read, create and update Commerce customers. Thread-safe; share one per process.

    ``session``: the transport to send through (tests pass one with a scripted adapter). Its adapter
    for the base URL, its headers and its proxy, TLS and environment settings are read once, here;
    its hooks, cookies, auth and params are not used.
    """

    def __init__(
        self,
        settings: CommerceSettings,
        token_provider: TokenProvider,
        *,
        session: requests.Session | None = None,
        on_call: Callable[[CallRecord], None] | None = None,
        search_max_pages: int = SEARCH_MAX_PAGES,
        max_concurrency: int | None = None,
    ):
        """``max_concurrency`` caps the calls in flight from this process (all threads): with the
        instance count it bounds the load on the Commerce Scale Unit. A call waits at most one call's
        timeout for a free slot, then fails as a timeout that never reached Commerce."""
        self._settings = settings
        self._slots = threading.BoundedSemaphore(max_concurrency) if max_concurrency else None
        self._tokens = token_provider
        self._on_call = on_call
        self._search_max_pages = search_max_pages
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        self._base = settings.base_url.rstrip("/")
        if session is None:
            session = requests.Session()
            # No urllib3 retries: retry policy belongs to the caller (see module docstring).
            adapter = CommerceAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self._session = session
        # What Session.request would work out again on every call, worked out once: every URL has the
        # base URL's scheme and host, so the proxy (HTTP(S)_PROXY, NO_PROXY), the CA bundle
        # (REQUESTS_CA_BUNDLE) and the adapter are the same for all of them, and the environment does
        # not change during a worker's life.
        try:
            self._adapter: BaseAdapter | None = session.get_adapter(self._base)
        except requests.exceptions.InvalidSchema:
            self._adapter = None  # looked up per call, so that every call fails as it always did
        self._send_settings: Mapping[str, Any] = session.merge_environment_settings(self._base, {}, None, None, None)
        # The session's headers (User-Agent, Accept-Encoding, ...) with the client's over them, those
        # set to None left out: what Session.prepare_request merges.
        own = {"OUN": settings.oun, "Accept": "application/json", "Content-Type": "application/json"}
        self._headers: CaseInsensitiveDict[str | bytes] = CaseInsensitiveDict()
        for name, value in [*session.headers.items(), *own.items()]:
            if value is None:
                self._headers.pop(name, None)
            else:
                self._headers[name] = value
        self._auth_scheme = settings.auth_scheme
        self._api_version_query = (
            urlencode({"api-version": settings.api_version}, quote_via=quote) if settings.api_version else ""
        )
        self._prefix = _prepared_prefix(self._base)

    def close(self) -> None:
        self._session.close()

    # --- operations ------------------------------------------------------------------------------
    def search_customers_by_email(self, email: str) -> list[dict[str, Any]]:
        """Every customer whose Email equals ``email`` (case-insensitive), async customers included.
        Pages through all prefix matches: the exact match can be on any page."""
        term = email.strip()
        if not term:
            raise ValueError("email is empty")
        size = self._settings.search_page_size
        body = search_body(term)
        found: dict[object, dict[str, Any]] = {}
        skip = 0
        for _ in range(self._search_max_pages):
            page, server_paged = self._page(body, top=size, skip=skip)
            for result in page:
                if email_matches(result, term):
                    key = result.get("AccountNumber") or ("no-account", len(found))
                    found.setdefault(key, result)  # rows may shift between pages: keep each once
            skip += len(page)
            if not page or (len(page) != size and not server_paged):
                # Short page: the end. Longer than $top: the server ignored paging and sent all. A short
                # page with @odata.nextLink is OData server-driven paging (a server maximum below our
                # $top): more rows follow, and the exact match may be among them.
                return list(found.values())
        raise CommercePermanentError(
            f"SearchByFields still returned full pages after {self._search_max_pages} pages of {size}",
            operation="search",
        )

    def get_customer(self, account_number: str) -> dict[str, Any]:
        return _body(self._call("get", "GET", "/Customers" + odata_key(account_number)), "get")

    def create_customer(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create; Commerce assigns the AccountNumber (a GUID with IsAsyncCustomer in async mode).
        200 or 201 (which one a CSU sends is not documented)."""
        payload = {**body, "AccountNumber": ""}
        return _body(self._call("create", "POST", "/Customers", json_body=payload, accept=(200, 201)), "create")

    def update_customer(self, account_number: str, changes: dict[str, Any]) -> dict[str, Any]:
        """PATCH only ``changes`` (plus the key). Returns the stored Customer."""
        payload = {**changes, "AccountNumber": account_number}
        result = self._call(
            "update", "PATCH", "/Customers" + odata_key(account_number), json_body=payload, accept=(200, 204)
        )
        if result is None:
            # OData's PATCH default is 204 No Content; docs/commerce-api.md ("Update (PATCH)"): Commerce returns the
            # Customer, but if a CSU does not, read it back rather than return nothing.
            return self.get_customer(account_number)
        return result

    # --- plumbing --------------------------------------------------------------------------------
    def _page(self, body: dict[str, Any], *, top: int, skip: int) -> tuple[list[dict[str, Any]], bool]:
        """One page of results, and whether the server says more follow (``@odata.nextLink``)."""
        data = _body(
            self._call(
                "search", "POST", "/Customers/SearchByFields", json_body=body, query={"$top": top, "$skip": skip}
            ),
            "search",
        )
        value = data.get("value")
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise CommercePermanentError(
                "SearchByFields body has no 'value' list of customers", operation="search", status=200
            )
        return value, bool(data.get("@odata.nextLink"))

    def _url(self, path: str, query: dict[str, Any] | None) -> str:
        """The URL requests would prepare for ``base + path + query``: ``path`` and the query are
        percent-encoded here already (``odata_key``, ``urlencode``), which requests' re-quoting leaves
        as is, so only the base URL needs preparing, once."""
        # Keep '$' literal ($top, $skip) as every OData sample writes it.
        parts = [urlencode(query, safe="$", quote_via=quote)] if query else []
        if self._api_version_query:
            parts.append(self._api_version_query)
        url = (self._prefix if self._prefix is not None else self._base) + path
        if parts:
            url += "?" + "&".join(parts)
        if self._prefix is None:
            # A base URL requests could not prepare: let it raise here, per call, as it always did.
            probe = PreparedRequest()
            probe.prepare_url(url, None)
            return probe.url  # type: ignore[return-value]
        return url

    def _request(self, method: str, url: str, json_body: Any, token: str) -> PreparedRequest:
        """What ``Session.prepare_request`` makes of these arguments with this client's session,
        without merging the session's settings again (see ``__init__``)."""
        request = PreparedRequest()
        request.method = method
        request.url = url
        headers = self._headers.copy()
        authorization = f"{self._auth_scheme} {token}"
        headers["Authorization"] = authorization
        if json_body is not None:
            try:
                body = json.dumps(json_body, separators=(",", ":"), allow_nan=False).encode("utf-8")
            except ValueError as exc:  # NaN or infinity: the same error requests raises for json=
                raise requests.exceptions.InvalidJSONError(exc, request=request) from None
            headers["Content-Length"] = str(len(body))
            request.body = body
        elif method not in ("GET", "HEAD"):
            headers["Content-Length"] = "0"
        # The one header that changes per call is checked as Session.prepare_request checks every
        # header: a token holding CR/LF is refused (InvalidHeader: never sent) instead of failing
        # later inside http.client with the token in its message.
        check_header_validity(("Authorization", authorization))
        request.headers = headers  # type: ignore[assignment]  # a session header may be bytes
        return request

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        query: dict[str, Any] | None = None,
        accept: tuple[int, ...] = (200,),
    ) -> dict[str, Any] | None:
        """The response's JSON object (None for an accepted 204), or a CommerceError."""
        idempotent = method == "GET" or operation == "search"
        if self._slots is None:
            return self._call_once(operation, method, path, json_body, query, accept, idempotent)
        if not self._slots.acquire(timeout=self.call_budget):
            error = CommerceTimeoutError("no free slot under COMMERCE_MAX_CONCURRENCY", operation=operation)
            error.sent = False
            raise error
        try:
            return self._call_once(operation, method, path, json_body, query, accept, idempotent)
        finally:
            self._slots.release()

    @property
    def call_budget(self) -> float:
        """The longest one call may take once sent (connect + read timeouts)."""
        return self._timeout[0] + self._timeout[1]

    def _call_once(
        self,
        operation: str,
        method: str,
        path: str,
        json_body: Any,
        query: dict[str, Any] | None,
        accept: tuple[int, ...],
        idempotent: bool,
    ) -> dict[str, Any] | None:
        try:
            return self._attempt(operation, method, path, json_body, query, accept)
        except CommerceConnectionError as exc:
            if not (idempotent and exc.dropped):
                raise
            log.debug("commerce %s: connection dropped, retrying once", operation)
            return self._attempt(operation, method, path, json_body, query, accept)

    def _attempt(
        self,
        operation: str,
        method: str,
        path: str,
        json_body: Any,
        query: dict[str, Any] | None,
        accept: tuple[int, ...],
    ) -> dict[str, Any] | None:
        token = self._tokens.get_token()
        started = time.perf_counter()
        status: int | None = None
        error: CommerceError | None = None
        try:
            try:
                request = self._request(method, self._url(path, query), json_body, token)
                # No redirects: the adapter sends one request and returns its answer. A CSU never
                # redirects an API call, and following one could send the request (and, on the same
                # host, the token) somewhere unexpected.
                adapter = self._adapter or self._session.get_adapter(request.url)  # type: ignore[arg-type]
                response = adapter.send(request, timeout=self._timeout, **self._send_settings)
                response.content  # noqa: B018 - read the body here, so that its failures map below
            except requests.exceptions.Timeout as exc:
                kind = "connect" if isinstance(exc, requests.exceptions.ConnectTimeout) else "read"
                error = CommerceTimeoutError(f"{kind} timeout", operation=operation)
                error.sent = kind != "connect"
                raise error from None
            except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                connect = isinstance(exc, requests.exceptions.ConnectionError) and _is_connect_failure(exc)
                error = CommerceConnectionError(
                    "connection failed" if connect else "connection dropped before a complete response",
                    operation=operation,
                )
                error.dropped = not connect
                raise error from None
            except requests.exceptions.RequestException as exc:
                error = CommercePermanentError(f"request failed: {type(exc).__name__}", operation=operation)
                # A malformed request never left; anything else (e.g. an undecodable body) came after
                # the server had the request, so a write may have been applied.
                error.sent = not isinstance(exc, _NEVER_SENT)
                raise error from None
            status = response.status_code
            if not 200 <= status <= 299:
                error = error_from_response(operation, response, secrets=(token,))
                raise error
            if status not in accept:
                error = CommercePermanentError(
                    f"unexpected HTTP {status} (expected {accept})", operation=operation, status=status
                )
                raise error
            if status == 204:
                return None
            data = _json_object(response)
            if data is None:
                error = CommercePermanentError(
                    "success response without a JSON object body", operation=operation, status=status
                )
                raise error
            return data
        finally:
            duration = time.perf_counter() - started
            error_name = type(error).__name__ if error else None
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "commerce %s: status %s in %.3f s%s",
                    operation,
                    status,
                    duration,
                    f" ({error_name})" if error_name else "",
                )
            self._record(CallRecord(operation, status, duration, error_name))

    def _record(self, record: CallRecord) -> None:
        if self._on_call is None:
            return
        try:
            self._on_call(record)
        except Exception:  # telemetry must never fail a sync
            log.warning("commerce on_call callback failed", exc_info=True)


__all__ = ["CallRecord", "CommerceClient", "email_matches", "odata_key", "search_body"]
