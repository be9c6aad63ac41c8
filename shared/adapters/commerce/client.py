"""The one client for the Commerce Scale Unit Customer API (shared/reference/commerce-api.md).

Everything environment-specific comes from CommerceSettings, so moving from the emulator to a real
CSU changes settings only. The client does not retry (the queue and the processor own retry policy),
except one immediate retry of an idempotent call (search, get) when a pooled keep-alive connection
turns out to have been dropped: that failure says nothing about the server's health.

Nothing here logs an email, phone number or token: log records carry the operation, status and
duration only, and errors are masked (errors.py).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import requests
from requests.adapters import HTTPAdapter

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


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _read_environment_once(session: requests.Session, url: str) -> None:
    """Proxy and CA-bundle environment variables, read at start-up instead of on every request.

    requests re-scans the whole environment per request when ``trust_env`` is on (a fifth of the
    client's CPU time per call, measured with bench/pipeline.py under cProfile); the variables do not
    change during a worker's life, so they are resolved once here.
    """
    session.proxies.update(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False


class CommerceClient:
    """Search, read, create and update Commerce customers. Thread-safe; share one per process."""

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
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            _read_environment_once(session, self._base)
        self._session = session

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
        return self._call("get", "GET", "/Customers" + odata_key(account_number))

    def create_customer(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create; Commerce assigns the AccountNumber (a GUID with IsAsyncCustomer in async mode).
        200 or 201 (which one a CSU sends is not documented)."""
        payload = {**body, "AccountNumber": ""}
        return self._call("create", "POST", "/Customers", json_body=payload, accept=(200, 201))

    def update_customer(self, account_number: str, changes: dict[str, Any]) -> dict[str, Any]:
        """PATCH only ``changes`` (plus the key). Returns the stored Customer."""
        payload = {**changes, "AccountNumber": account_number}
        result = self._call(
            "update", "PATCH", "/Customers" + odata_key(account_number), json_body=payload, accept=(200, 204)
        )
        if result is None:
            # OData's default for PATCH is 204 No Content; the reference says Commerce returns the
            # Customer, but if a CSU does not, read it back rather than return nothing.
            return self.get_customer(account_number)
        return result

    # --- plumbing --------------------------------------------------------------------------------
    def _page(self, body: dict[str, Any], *, top: int, skip: int) -> tuple[list[dict[str, Any]], bool]:
        """One page of results, and whether the server says more follow (``@odata.nextLink``)."""
        data = self._call(
            "search", "POST", "/Customers/SearchByFields", json_body=body, query={"$top": top, "$skip": skip}
        )
        value = data.get("value")
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise CommercePermanentError(
                "SearchByFields body has no 'value' list of customers", operation="search", status=200
            )
        return value, bool(data.get("@odata.nextLink"))

    def _url(self, path: str, query: dict[str, Any] | None) -> str:
        params = dict(query or {})
        if self._settings.api_version:
            params["api-version"] = self._settings.api_version
        url = self._base + path
        if params:
            # Keep '$' literal ($top, $skip) as every OData sample writes it.
            url += "?" + urlencode(params, safe="$", quote_via=quote)
        return url

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        query: dict[str, Any] | None = None,
        accept: tuple[int, ...] = (200,),
    ) -> Any:
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
    ) -> Any:
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
        headers = {
            "OUN": self._settings.oun,
            "Authorization": f"{self._settings.auth_scheme} {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        started = time.perf_counter()
        status: int | None = None
        error: CommerceError | None = None
        try:
            try:
                # No redirects: a CSU never redirects an API call, and following one could send the
                # request (and, on the same host, the token) somewhere unexpected.
                response = self._session.request(
                    method,
                    self._url(path, query),
                    headers=headers,
                    json=json_body,
                    timeout=self._timeout,
                    allow_redirects=False,
                )
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
