"""The HTTP side of the local host: ``/<routePrefix>/<route>`` on a threading HTTP/1.1 server.

Function keys are not checked (Core Tools does not check them either). An exception escaping a function
becomes a 500 with an empty body; the log line names the function and the exception type and location,
not its message, which could carry personal data.

Request framing is read strictly, since this server answers on a real port and a lenient parse is where
request smuggling and stuck threads come from. Each of these is answered 400 with an empty body and the
connection closed, before any function runs: a Content-Length that is not a plain decimal number, or
repeated with different values; Content-Length together with Transfer-Encoding; a Transfer-Encoding
other than exactly ``chunked``; a chunk size that is not hexadecimal, carries an extension or lacks its
CRLF; chunk data not followed by CRLF; a body that ends before its declared length, or a client that
sends nothing for ``REQUEST_READ_TIMEOUT`` seconds (or sends slower than ``MIN_BODY_RATE`` bytes/s) mid
request. A body over ``MAX_BODY_BYTES``, declared or counted, is 413. None of them leaves a traceback:
a connection error is logged as one line with the exception type.
"""

from __future__ import annotations

import logging
import re
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Sequence
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from devhost.bindings import HttpFunction
from devhost.invoke import FunctionExecutor, describe_exception
from devhost.routing import match_route

log = logging.getLogger("devhost.http")
# Hop-by-hop or framing headers this server writes itself.
_OWN_HEADERS = {"content-length", "transfer-encoding", "connection", "date", "server"}
MAX_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's request size limit (100 MB)
# A client that stops sending in the middle of a request holds a thread: each read waits at most this
# long, and after that grace the body must average MIN_BODY_RATE (Kestrel, the Functions host's server,
# has the same 5 s grace and 240 bytes/s minimum rate).
REQUEST_READ_TIMEOUT = 5.0
MIN_BODY_RATE = 240
KEEP_ALIVE_TIMEOUT = 120.0  # an idle kept-alive connection; Kestrel keeps one 130 s
MAX_CHUNK_LINE = 1024  # a chunk-size line, or one trailer field line
MAX_TRAILER_BYTES = 8192
# After a refusal the client may still be sending: its bytes are read and dropped for a moment, because
# closing a socket with unread data resets the connection, and the client could lose the answer.
LINGER_SECONDS = 1.0
LINGER_BYTES = 1024 * 1024
_READ_PIECE = 64 * 1024
_DECIMAL = re.compile(r"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")


class _TooLarge(Exception):
    pass


class _BadFraming(Exception):
    """The request's body cannot be delimited (or did not arrive): answered 400, connection closed."""


def _content_length(values: list[str]) -> int | None:
    """The declared body length; None without the header. Repeats (as headers or a comma list) must all
    agree, as RFC 9112 requires of a recipient that accepts them."""
    lengths = set()
    for value in values:
        for part in value.split(","):
            part = part.strip(" \t")
            # ASCII digits only: str.isdigit() would accept "²", and int() a sign or underscores.
            if not _DECIMAL.fullmatch(part):
                raise _BadFraming
            digits = part.lstrip("0") or "0"
            if len(digits) > len(str(MAX_BODY_BYTES)):
                raise _TooLarge  # also keeps int() away from absurdly long numbers
            lengths.add(int(digits))
    if len(lengths) > 1:
        raise _BadFraming
    return lengths.pop() if lengths else None


class _BodyReader:
    """Reads one request body from the connection's buffered reader, within the limits above."""

    def __init__(self, rfile: Any):
        self.rfile = rfile
        self.started = time.monotonic()
        self.received = 0
        self.body_bytes = 0

    def _count(self, data: bytes) -> None:
        self.received += len(data)
        elapsed = time.monotonic() - self.started
        if elapsed > REQUEST_READ_TIMEOUT and self.received < MIN_BODY_RATE * elapsed:
            raise _BadFraming  # a trickle that never times out a single read

    def exact(self, size: int) -> bytes:
        if self.body_bytes + size > MAX_BODY_BYTES:
            raise _TooLarge
        self.body_bytes += size
        parts, remaining = [], size
        while remaining:
            piece = self.rfile.read1(min(remaining, _READ_PIECE))
            if not piece:
                raise _BadFraming  # the client closed before sending what it declared
            self._count(piece)
            parts.append(piece)
            remaining -= len(piece)
        return b"".join(parts)

    def line(self) -> bytes:
        """One CRLF-terminated line without its CRLF (a bare LF is refused: servers that accept it
        disagree with those that do not about where a chunk ends)."""
        line = self.rfile.readline(MAX_CHUNK_LINE + 1)
        self._count(line)
        if len(line) > MAX_CHUNK_LINE or not line.endswith(b"\r\n"):
            raise _BadFraming
        return line[:-2]

    def chunked(self) -> bytes:
        chunks = []
        while True:
            size_line = self.line()
            # Extensions are refused rather than skipped: no client of this app sends them.
            if not _HEX.fullmatch(size_line):
                raise _BadFraming
            size = int(size_line, 16)  # base 16 has no digit-count limit; the size check follows
            if size == 0:
                break
            chunks.append(self.exact(size))
            end = self.rfile.read(2)
            self._count(end)
            if end != b"\r\n":
                raise _BadFraming
        trailer = 0
        while (field := self.line()) != b"":
            trailer += len(field)
            if trailer > MAX_TRAILER_BYTES:
                raise _BadFraming
        return b"".join(chunks)


class RouteTable:
    def __init__(self, functions: Sequence[HttpFunction], route_prefix: str):
        self.prefix = "/" + route_prefix.strip("/") if route_prefix.strip("/") else ""
        # Most specific template first, so "customers/search" wins over "customers/{id}".
        self.functions = sorted(functions, key=lambda f: f.route.specificity)

    def find(self, method: str, path: str) -> tuple[HttpFunction | None, dict[str, str], set[str]]:
        """(function, route params, allowed methods when the path matched but the method did not)."""
        if self.prefix:
            if not (path == self.prefix or path.startswith(self.prefix + "/")):
                return None, {}, set()
            path = path[len(self.prefix):]
        allowed: set[str] = set()
        for function in self.functions:
            params = match_route(function.route, path)
            if params is None:
                continue
            if method in function.methods:
                return function, params, set()
            allowed |= function.methods
        return None, {}, allowed


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "FunctionsHttpServer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # one line per invocation is logged below instead

    def handle_one_request(self) -> None:
        # Idle between requests for up to KEEP_ALIVE_TIMEOUT; once a request starts, every read is
        # bounded by REQUEST_READ_TIMEOUT (a timeout closes the connection, in the base class).
        try:
            self.connection.settimeout(KEEP_ALIVE_TIMEOUT)
            if not self.rfile.peek(1):
                self.close_connection = True
                return
            self.connection.settimeout(REQUEST_READ_TIMEOUT)
        except OSError:  # TimeoutError included: an idle client, or one that went away
            self.close_connection = True
            return
        super().handle_one_request()

    def _read_body(self) -> bytes:
        encodings = self.headers.get_all("Transfer-Encoding")
        lengths = self.headers.get_all("Content-Length")
        reader = _BodyReader(self.rfile)
        if encodings is not None:
            codings = [c.strip(" \t").lower() for value in encodings for c in value.split(",")]
            # Both headers: the classic smuggling request, where two servers pick different ones.
            if lengths is not None or codings != ["chunked"]:
                raise _BadFraming
            return reader.chunked()
        length = _content_length(lengths or [])
        return reader.exact(length) if length else b""

    def _send(self, status: int, headers: dict[str, str], body: bytes, *, close: bool = False) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in _OWN_HEADERS:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")  # also sets close_connection
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _refuse(self, status: int) -> None:
        """Answer and close: the rest of this request's body cannot be told from the next request."""
        self._send(status, {}, b"", close=True)
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(LINGER_SECONDS)
            deadline, drained = time.monotonic() + LINGER_SECONDS, 0
            while time.monotonic() < deadline and drained < LINGER_BYTES:
                data = self.connection.recv(_READ_PIECE)
                if not data:
                    break
                drained += len(data)
        except OSError:
            pass  # the client is gone or still sending: either way the connection ends here

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except _TooLarge:
            self._refuse(413)
            return
        except (_BadFraming, TimeoutError):
            self._refuse(400)
            return
        split = urlsplit(self.path)
        if split.path == "/admin/host/status":  # what tools poll to see that the host is up
            self._send(200, {"Content-Type": "application/json"}, b'{"state":"Running"}')
            return
        function, route_params, allowed = self.server.routes.find(self.command, split.path)
        if function is None:
            if allowed:
                self._send(405, {"Allow": ", ".join(sorted(allowed))}, b"")
            else:
                self._send(404, {}, b"")
            return
        host_header = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_port}"
        request = func.HttpRequest(
            method=self.command,
            url=f"http://{host_header}{self.path}",
            headers={k: v for k, v in self.headers.items()},
            params=dict(parse_qsl(split.query, keep_blank_values=True)),
            route_params=route_params,
            body=body,
        )
        self._send(*self.server.invoke(function, request))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class FunctionsHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    # The stdlib's listen backlog of 5 drops connections when a sender opens a few dozen at once.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], functions: Sequence[HttpFunction], route_prefix: str,
                 executor: FunctionExecutor):
        super().__init__(address, _Handler)
        self.routes = RouteTable(functions, route_prefix)
        self.executor = executor

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The stdlib prints a traceback to stderr here; one line, without the exception's message
        # (it can quote the request), says the same.
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):  # the client hung up mid-answer: nothing to fix here
            log.debug("HTTP connection ended by the client: %s", type(error).__name__)
        elif error is not None:
            log.warning("HTTP connection failed: %s", describe_exception(error))

    def invoke(self, function: HttpFunction, request: func.HttpRequest) -> tuple[int, dict[str, str], bytes]:
        started = time.monotonic()
        try:
            result = function.invoker(request, self.executor)
            status, headers, body = _response_parts(result)
        except Exception as error:  # the app should never let this happen; the host answers 500
            log.error("Executed 'Functions.%s' (Failed, Duration=%dms): %s", function.name,
                      (time.monotonic() - started) * 1000, describe_exception(error))
            return 500, {}, b""
        log.info("Executed 'Functions.%s' (%s %s -> %d, Duration=%dms)", function.name, request.method,
                 urlsplit(request.url).path, status, (time.monotonic() - started) * 1000)
        return status, headers, body


def _response_parts(result: Any) -> tuple[int, dict[str, str], bytes]:
    if isinstance(result, (str, bytes, bytearray)):  # the worker turns a plain $return into a 200 body
        result = func.HttpResponse(result)
    if not isinstance(result, func.HttpResponse):
        raise TypeError(f"an HTTP function returned {type(result).__name__}, not HttpResponse")
    headers = {k: v for k, v in result.headers.items()}
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = f"{result.mimetype}; charset={result.charset}"
    return result.status_code, headers, result.get_body()
