"""The HTTP shell: routes Commerce and control requests to the store, injecting the configured faults.

ThreadingHTTPServer with HTTP/1.1 keep-alive and daemon threads. Each response is written in one ``write``
with TCP_NODELAY, so a keep-alive client never waits on Nagle/delayed-ACK. Nothing is logged per request:
bodies hold personal data.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from . import api_errors, documents
from .api_errors import ApiError
from .config import DEFAULT_CONFIG, ConfigError, merge_config, parse_faults
from .faults import FaultInjector
from .odata import customer_key, key_literal, paging, query_options
from .search import search_terms
from .store import CustomerStore

MAX_BODY_BYTES = 4 * 1024 * 1024
IDLE_TIMEOUT_SECONDS = 120  # an idle keep-alive connection is closed after this
COUNTERS = ("search", "get", "create", "update", "total", "faulted")


class EmulatorServer:
    """The emulator, in this process. ``EmulatorServer(port=0).start()``; ``.url``; ``.stop()``."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, config: dict[str, Any] | None = None, token: str | None = None
    ):
        start = merge_config(DEFAULT_CONFIG, config or {})
        if token is not None:
            start = merge_config(start, {"token": token})
        self.start_config = start
        self.config = start  # replaced whole, never mutated: handlers read it without a lock
        self.store = CustomerStore()
        self.faults = FaultInjector()
        self._lock = threading.Lock()
        self._counters = dict.fromkeys(COUNTERS, 0)
        self._injected: dict[str, int] = {}  # "operation:fault" -> faults injected since the last reset
        self._wake = threading.Event()  # set to end every hang and latency sleep in progress
        self._connections: set[socket.socket] = set()
        self._serving: dict[int, dict[str, Any]] = {}  # Commerce requests being answered now
        self._thread: threading.Thread | None = None
        documents.country_ok("USA")  # load pycountry now, not during the first create
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.emulator = self

    # --- lifecycle -------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        host = self._httpd.server_address[0]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/Commerce"

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="commerce-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._wake.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # idle keep-alive threads are blocked reading: wake them
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()

    # --- state -----------------------------------------------------------------------------------------
    def reset(self) -> None:
        self.store.reset()
        self.faults.replace(parse_faults({}))
        with self._lock:
            self.config = self.start_config
        self.reset_calls()
        self.release_sleepers()

    def configure(self, patch: Any) -> dict[str, Any]:
        """Merge ``patch`` into the config under the lock: two concurrent changes never lose one."""
        with self._lock:
            self.config = merge_config(self.config, patch)
            return self.config

    def release_sleepers(self) -> None:
        """End every hang and latency sleep in progress (on reset, on new faults): tests never wait them out."""
        with self._lock:
            old, self._wake = self._wake, threading.Event()
        old.set()

    @property
    def wake_event(self) -> threading.Event:
        return self._wake

    def count(self, operation: str | None, faulted: bool = False, fault: str | None = None) -> None:
        with self._lock:
            if faulted:
                self._counters["faulted"] += 1
                name = f"{operation}:{fault}"
                self._injected[name] = self._injected.get(name, 0) + 1
                return
            self._counters["total"] += 1
            if operation is not None:
                self._counters[operation] += 1

    def calls(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters)

    def injected(self) -> dict[str, int]:
        """Faults injected by operation and kind (``"update:commit_then_fail"``), since the calls were reset."""
        with self._lock:
            return dict(sorted(self._injected.items()))

    def reset_calls(self) -> None:
        with self._lock:
            self._counters = dict.fromkeys(COUNTERS, 0)
            self._injected = {}

    @contextmanager
    def serving(self, operation: str | None, client_port: int) -> Iterator[None]:
        """Record a Commerce request as in flight while it is answered (``in_flight``)."""
        entry = {"operation": operation, "client_port": client_port, "started": time.monotonic()}
        with self._lock:
            self._serving[id(entry)] = entry
        try:
            yield
        finally:
            with self._lock:
                del self._serving[id(entry)]

    def in_flight(self) -> list[dict[str, Any]]:
        """The Commerce requests being answered now: operation, the client's TCP port, seconds so far (a
        test can tell which client process is waiting on a call, e.g. to kill it mid-call)."""
        now = time.monotonic()
        with self._lock:
            return [
                {"operation": e["operation"], "client_port": e["client_port"], "seconds": round(now - e["started"], 3)}
                for e in self._serving.values()
            ]

    def track(self, conn: socket.socket, open_: bool) -> None:
        with self._lock:
            (self._connections.add if open_ else self._connections.discard)(conn)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    emulator: EmulatorServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away, or stop() closed its connection: nothing to report
        super().handle_error(request, client_address)


class _Dropped(Exception):
    """Close the connection without answering (fault injection)."""


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def _route(method: str, path: str) -> tuple[str | None, bool]:
    """(operation, path_known) for a /Commerce path; the operation is None for a wrong method."""
    if path == "/Commerce/Customers/SearchByFields":
        return ("search" if method == "POST" else None), True
    if path == "/Commerce/Customers":
        return ("create" if method == "POST" else None), True
    if path.startswith("/Commerce/Customers(") or path.startswith("/Commerce/Customers%28"):
        return {"GET": "get", "PATCH": "update"}.get(method), True
    return None, False


def _echo(body: dict[str, Any], config: dict[str, Any]) -> str:
    return documents.echo_input(body) if config["echo_input_in_errors"] else ""


class _Headers(dict):
    """Request headers by lower-cased name: all the handler needs, at a fraction of email.parser's cost."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> Any:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "CommerceEmulator/1.0"
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT_SECONDS
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.emulator.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.emulator.track(self.connection, False)

    def parse_request(self) -> bool:
        """Request line and headers. Replaces the base class's email.parser-based parsing, which took most of
        the CPU time of a request; keeps its keep-alive, Expect: 100-continue and error behaviour."""
        self.command = None
        self.request_version = "HTTP/1.1"  # so that send_error answers with a status line
        self.close_connection = True
        self.requestline = requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if len(words) != 3 or words[2] not in ("HTTP/1.1", "HTTP/1.0"):
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad request line")
            return False
        self.command, self.path, self.request_version = words
        headers = _Headers()
        while True:
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, colon, value = str(line, "iso-8859-1").partition(":")
            if len(line) > 65536 or len(headers) >= 100 or not colon:
                self.send_error(
                    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE if colon else HTTPStatus.BAD_REQUEST, "Bad header"
                )
                return False
            headers[name.strip().lower()] = value.strip()
        self.headers = headers  # type: ignore[assignment]
        connection = headers.get("connection", "").lower()
        self.close_connection = (
            connection == "close" if self.request_version == "HTTP/1.1" else connection != "keep-alive"
        )
        if headers.get("expect", "").lower() == "100-continue":
            return self.handle_expect_100()
        return True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
        pass  # request lines carry account numbers; bodies carry emails: log nothing per request

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # --- plumbing --------------------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        try:
            return self._read_raw_body()
        except ValueError:  # a Content-Length or chunk size that is not a number
            self.close_connection = True
            raise ApiError(400, api_errors.BAD_REQUEST, "The request body is malformed.") from None

    def _read_raw_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise self._too_large()
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise self._too_large()
        return self.rfile.read(length) if length > 0 else b""

    def _too_large(self) -> ApiError:
        self.close_connection = True  # the unread body makes the connection unusable
        return ApiError(413, api_errors.REQUEST_TOO_LARGE, "The request body is too large.")

    def _write(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = (
            b"" if payload is None else json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        )
        lines = [
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
            "Content-Type: application/json; charset=utf-8" if payload is not None else "",
            f"Content-Length: {len(body)}",
            "OData-Version: 4.0",
            f"Date: {_http_date()}",
        ]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if self.close_connection:
            lines.append("Connection: close")
        head = "\r\n".join(line for line in lines if line) + "\r\n\r\n"
        self.wfile.write(head.encode("latin-1") + body)

    def _error(self, err: ApiError, envelope: str) -> None:
        self._write(err.status, api_errors.render(err, envelope), err.headers)

    def _json(self, raw: bytes) -> Any:
        try:
            return json.loads(raw) if raw.strip() else None
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, api_errors.BAD_REQUEST, "The request body is not valid JSON.") from None

    def _json_object(self, raw: bytes) -> dict[str, Any]:
        body = self._json(raw)
        if not isinstance(body, dict):
            raise ApiError(400, api_errors.BAD_REQUEST, "The request body must be a JSON object.")
        return body

    def _dispatch(self, method: str) -> None:
        path, _, query = self.path.partition("?")
        emulator = self.server.emulator
        try:
            raw = self._read_body()
        except ApiError as err:
            self._error(err, emulator.config["envelope"])
            return
        try:
            if path.startswith("/_emulator/"):
                self._control(method, path, raw)
            elif path == "/Commerce" or path.startswith("/Commerce/"):
                with emulator.serving(_route(method, path)[0], self.client_address[1]):
                    self._commerce(method, path, query, raw)
            else:
                self._write(404, {"error": {"code": api_errors.ROUTE_NOT_FOUND, "message": "No such resource."}})
        except _Dropped:
            self.close_connection = True  # no response at all: the client sees the connection close
        except OSError:
            raise  # the connection failed: nobody to answer
        except Exception:  # noqa: BLE001 - a bug in the emulator: answer 500 rather than hang the client
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            self._error(ApiError(500, api_errors.INTERNAL, "Internal emulator error."), "odata")

    # --- Commerce API ----------------------------------------------------------------------------------
    def _commerce(self, method: str, path: str, query: str, raw: bytes) -> None:
        emulator = self.server.emulator
        config = emulator.config
        operation, known = _route(method, path)
        emulator.count(operation)
        try:
            self._check_access(config)
            if operation is None:
                if known:
                    raise ApiError(405, api_errors.BAD_REQUEST, f"{method} is not supported on this resource.")
                raise ApiError(404, api_errors.ROUTE_NOT_FOUND, "No such resource.")
            decision = emulator.faults.decide(operation)
            if decision.delay_seconds:
                emulator.wake_event.wait(decision.delay_seconds)
            fault = decision.fault
            if fault is not None:
                emulator.count(operation, faulted=True, fault=fault)
                self._early_fault(fault, operation)
            status, payload, headers = self._operation(operation, path, query, raw, config)
            if fault == "commit_then_fail":
                raise ApiError(500, api_errors.INTERNAL, "An internal server error occurred.")
            if fault == "commit_then_hang":  # the write is applied, the answer never comes: a client timeout
                emulator.wake_event.wait(emulator.faults.current()["hang_seconds"])
                raise _Dropped()
            self._write(status, payload, headers)
        except ApiError as err:
            self._error(err, config["envelope"])

    def _check_access(self, config: dict[str, Any]) -> None:
        if config["require_auth"]:
            scheme, _, token = (self.headers.get("Authorization") or "").strip().partition(" ")
            if scheme.lower() not in ("id_token", "bearer") or token.strip() != config["token"]:
                raise ApiError(
                    401,
                    api_errors.AUTHENTICATION_FAILED,
                    "Authentication failed.",
                    headers={"WWW-Authenticate": "id_token"},
                )
        if config["require_oun"] and not (self.headers.get("OUN") or "").strip():
            raise ApiError(
                400, api_errors.MISSING_ARGUMENT, "The OUN header (operating unit number) is required.", ["OUN"]
            )

    def _early_fault(self, fault: str, operation: str) -> None:
        """Answer (or not) the faults that happen before the operation runs; return for the commit_then_* faults
        of a write (create, update), which are applied first."""
        emulator = self.server.emulator
        faults = emulator.faults.current()
        retry_after = max(1, round(faults["retry_after_seconds"]))
        if fault == "drop":
            raise _Dropped()
        if fault == "hang" or (fault == "commit_then_hang" and operation in ("search", "get")):
            emulator.wake_event.wait(faults["hang_seconds"])
            raise _Dropped()
        if fault == "throttle":
            raise ApiError(
                429, api_errors.TOO_MANY_REQUESTS, "Too many requests.", headers={"Retry-After": str(retry_after)}
            )
        if fault == "throttle_http_date":
            raise ApiError(
                429,
                api_errors.TOO_MANY_REQUESTS,
                "Too many requests.",
                headers={"Retry-After": formatdate(time.time() + retry_after, usegmt=True)},
            )
        if fault == "throttle_no_retry_after":
            raise ApiError(429, api_errors.TOO_MANY_REQUESTS, "Too many requests.")
        if fault == "server_error" or (fault == "commit_then_fail" and operation in ("search", "get")):
            raise ApiError(500, api_errors.INTERNAL, "An internal server error occurred.")
        if fault == "unavailable":
            raise ApiError(503, api_errors.SERVICE_UNAVAILABLE, "The service is unavailable.")
        if fault == "not_found":
            raise ApiError(404, api_errors.CUSTOMER_NOT_FOUND, "The customer was not found.", ["AccountNumber"])

    def _base(self) -> str:
        host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        return f"http://{host}/Commerce"

    def _entity(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {"@odata.context": f"{self._base()}/$metadata#Customers/$entity", **doc}

    def _operation(
        self, operation: str, path: str, query: str, raw: bytes, config: dict[str, Any]
    ) -> tuple[int, Any, dict[str, str] | None]:
        store = self.server.emulator.store
        if operation == "search":
            terms = search_terms(self._json(raw))
            options = query_options(query)
            top, skip = paging(options, config["max_top"])
            rows = store.search(terms, top + 1, skip, config["search_match"])
            payload = {"@odata.context": f"{self._base()}/$metadata#GlobalCustomers", "value": rows[:top]}
            if len(rows) > top and ("$top" not in options or int(options["$top"]) > top):
                # OData server-driven paging: the server chose the page size (no $top, or $top above
                # max_top) and more rows follow, so it says where the next page starts.
                payload["@odata.nextLink"] = f"{self._base()}/Customers/SearchByFields?$top={top}&$skip={skip + top}"
            return 200, payload, None
        if operation == "get":
            return 200, self._entity(store.get(customer_key(path))), None
        body = self._json_object(raw)
        if operation == "create":
            problems = documents.validate(body, "create", config)
            if problems:
                raise api_errors.from_problems(problems, _echo(body, config))
            if not documents.is_empty(body.get("AccountNumber")):
                raise ApiError(
                    400,
                    api_errors.BAD_REQUEST,
                    "AccountNumber is assigned by the server: send an empty string.",
                    ["AccountNumber"],
                )
            doc = store.create(body, config)
            location = f"{self._base()}/Customers({key_literal(doc['AccountNumber'])})"
            return config["create_status"], self._entity(doc), {"Location": location}
        key = customer_key(path)
        problems = documents.validate(body, "update", config)
        if problems:
            raise api_errors.from_problems(problems, _echo(body, config))
        if body.get("AccountNumber") != key:
            raise ApiError(
                400, api_errors.BAD_REQUEST, "The body's AccountNumber must equal the key.", ["AccountNumber"]
            )
        return 200, self._entity(store.update(key, body)), None

    # --- control API -----------------------------------------------------------------------------------
    def _control(self, method: str, path: str, raw: bytes) -> None:
        emulator = self.server.emulator
        route = (method, path.rstrip("/"))
        try:
            if route == ("POST", "/_emulator/reset"):
                emulator.reset()
                self._write(200, {"reset": True})
            elif route == ("GET", "/_emulator/config"):
                self._write(200, emulator.config)
            elif route == ("PATCH", "/_emulator/config"):
                self._write(200, emulator.configure(self._json(raw)))
            elif route == ("GET", "/_emulator/faults"):
                self._write(200, emulator.faults.current())
            elif route == ("PUT", "/_emulator/faults"):
                emulator.faults.replace(parse_faults(self._json(raw) or {}))
                emulator.release_sleepers()  # faults cleared: hangs in progress end now
                self._write(200, emulator.faults.current())
            elif route == ("GET", "/_emulator/customers"):
                self._write(200, emulator.store.all())
            elif route == ("POST", "/_emulator/customers"):
                self._write(200, self._seed(self._json(raw)))
            elif method == "GET" and path.startswith("/_emulator/customers/"):
                self._write(200, emulator.store.get(unquote(path[len("/_emulator/customers/") :])))
            elif route == ("GET", "/_emulator/calls"):
                self._write(200, emulator.calls())
            elif route == ("GET", "/_emulator/inflight"):
                self._write(200, emulator.in_flight())
            elif route == ("GET", "/_emulator/faults/injected"):
                self._write(200, emulator.injected())
            elif route == ("POST", "/_emulator/calls/reset"):
                emulator.reset_calls()
                self._write(200, emulator.calls())
            elif route == ("POST", "/_emulator/async/sync"):
                self._write(200, emulator.store.sync_async())
            else:
                self._write(404, {"error": {"code": api_errors.ROUTE_NOT_FOUND, "message": "No such control route."}})
        except ConfigError as err:
            self._write(400, {"error": {"code": api_errors.BAD_REQUEST, "message": str(err)}})
        except ApiError as err:
            self._error(err, "odata")

    def _seed(self, body: Any) -> list[dict[str, Any]]:
        emulator = self.server.emulator
        items = [body] if isinstance(body, dict) else body
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise ApiError(400, api_errors.BAD_REQUEST, "Seed a JSON list of Customer objects.")
        problems = [p for item in items for p in documents.validate(item, "seed", emulator.config)]
        if problems:
            raise api_errors.from_problems(problems)
        return emulator.store.seed(items, emulator.config)
