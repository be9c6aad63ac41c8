"""The HTTP side of the local host: ``/<routePrefix>/<route>`` on a threading HTTP/1.1 server.

Function keys are not checked (Core Tools does not check them either). An exception escaping a function
becomes a 500 with an empty body; the log line names the function and the exception type and location,
not its message, which could carry personal data.

Requests are read strictly, since this server answers on a real port and a lenient parse is where
request smuggling and stuck threads come from. The request head (request line and header fields) is read
by this module rather than by ``http.server``, whose parser ends the header block silently at a line it
cannot read and so lets the rest of the head be taken for a body or for the next request. Each of these
is answered with an empty body and the connection closed, before any function runs:

* 400: a request line that is not ``method SP target SP HTTP/1.x`` (single spaces, a token method, a
  target of visible ASCII in origin form, absolute form with a readable authority, or ``*``); a header
  line that is folded (obs-fold), has no colon, has a name that is not an RFC 9110 token (``X Bad:``,
  ``Content-Length :``), or a value holding CR, LF or NUL; a line ended by a bare LF; no Host, more than
  one, or one that is not a host[:port] (HTTP/1.1 requires exactly one, RFC 9112 section 3.2); a
  connection that ends mid head;
* 505 for HTTP/2 and later on this port; 501 for a method no handler serves; 414 for a request line
  over ``MAX_REQUEST_LINE``; 431 for header fields over ``MAX_HEADER_BYTES`` or ``MAX_HEADER_FIELDS``
  (Kestrel's limits: 8 KiB, 32 KiB, 100);
* 408 for a head not complete ``REQUEST_HEAD_TIMEOUT`` seconds after it started: one deadline for the
  whole head, however slowly it trickles in (each read waits only for the time left). The head of a
  connection's first request starts at accept, so a connection that sends nothing is closed (without an
  answer) after that time too; a kept-alive connection may then idle up to ``KEEP_ALIVE_TIMEOUT``
  between requests, and its next head starts with the first byte of the next request. Empty lines
  before a request line are skipped (RFC 9112 section 2.2). Kestrel's RequestHeadersTimeout is 30 s;
  10 s is plenty for any real client on this port and frees a held thread three times sooner.

The body: 400 for a Content-Length that is not a plain decimal number, or repeated with different
values; Content-Length together with Transfer-Encoding; a Transfer-Encoding other than exactly
``chunked``; a chunk size that is not hexadecimal, carries an extension or lacks its CRLF; chunk data not
followed by CRLF; a body that ends before its declared length, or a client that sends nothing for
``REQUEST_READ_TIMEOUT`` seconds or, after that grace, averages under ``MIN_BODY_RATE`` bytes/s (checked
after every socket read, chunk-size and trailer lines included). A body over ``MAX_BODY_BYTES``, declared
or counted, is 413. None of them leaves a traceback: a connection error is logged as one line with the
exception type.

At most ``MAX_CONNECTIONS`` connections are served at once, one thread each. Beyond that, new
connections wait in the listen backlog (accepted as slots free, oldest first) rather than being answered
503: a burst of senders is served late rather than refused, and no refusal has to be written to a
connection whose request may still be arriving (closing it with unread data would reset it). While a
connection waits for a slot, kept-alive connections that are idle between requests are closed, so idle
clients cannot hold every slot for ``KEEP_ALIVE_TIMEOUT``.

Nothing fails after a function ran: the log line uses the path already parsed from the request line, so
the client always gets the function's answer and has no reason to send the request again.
"""

from __future__ import annotations

import logging
import re
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from devhost.bindings import HttpFunction
from devhost.invoke import FunctionExecutor, describe_exception
from devhost.routing import match_route

log = logging.getLogger("devhost.http")
# Hop-by-hop or framing headers this server writes itself.
_OWN_HEADERS = {"content-length", "transfer-encoding", "connection", "date", "server"}
MAX_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's request size limit (100 MB)
REQUEST_HEAD_TIMEOUT = 10.0  # the whole request line and header fields (see the module docstring)
MAX_REQUEST_LINE = 8 * 1024
MAX_HEADER_BYTES = 32 * 1024  # all header field lines together, CRLFs included
MAX_HEADER_FIELDS = 100
# A client that stops sending in the middle of a body holds a thread: each read waits at most this
# long, and after that grace the body must average MIN_BODY_RATE (Kestrel, the Functions host's server,
# has the same 5 s grace and 240 bytes/s minimum rate).
REQUEST_READ_TIMEOUT = 5.0
MIN_BODY_RATE = 240
KEEP_ALIVE_TIMEOUT = 120.0  # an idle kept-alive connection; Kestrel keeps one 130 s
MAX_CONNECTIONS = 128  # served at once; more wait in the listen backlog
MAX_CHUNK_LINE = 1024  # a chunk-size line, or one trailer field line
MAX_TRAILER_BYTES = 8192
# After a refusal the client may still be sending: its bytes are read and dropped for a moment, because
# closing a socket with unread data resets the connection, and the client could lose the answer.
LINGER_SECONDS = 1.0
LINGER_BYTES = 1024 * 1024
_READ_PIECE = 64 * 1024
_IDLE_POLL = 0.5  # how often an idle kept-alive connection looks whether a new one waits for its slot
_SLOT_WAIT = 0.05  # how long the accept loop waits for a free slot before looking again
_DECIMAL = re.compile(r"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 section 5.6.2
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
_VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")
# uri-host [ ":" port ] (RFC 3986): an IP literal or a reg-name, ASCII only (an IDN arrives punycoded).
_HOST = re.compile(r"(\[[0-9A-Za-z:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(:[0-9]*)?")
_NOT_IN_VALUE = re.compile(r"[\r\n\x00]")  # RFC 9110 section 5.5: invalid and dangerous


class _TooLarge(Exception):
    pass


class _BadFraming(Exception):
    """The request's body cannot be delimited (or did not arrive): answered 400, connection closed."""


class _Refused(Exception):
    """The request head cannot be read safely: answered ``status``, connection closed."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class _HeadTimeout(Exception):
    """The head did not arrive before its deadline."""


class _NoSlot(OSError):
    """Every connection slot is taken: the accept loop leaves the connection in the backlog for now."""


def _read_line(rfile: Any, limit: int, before_read: Callable[[], None], after_read: Callable[[int], None]) -> bytes:
    """One line up to and including its LF, read one socket read at a time so that ``before_read`` (a
    deadline) and ``after_read`` (a rate check) run for every read, however slowly the line arrives.
    ``limit`` + 1 bytes without an LF when the line is longer; what arrived when the connection ended."""
    parts, size = [], 0
    while True:
        before_read()
        available = rfile.peek(1)  # what is buffered, or else one socket read
        if not available:
            break
        room = limit + 1 - size
        end = available.find(b"\n", 0, room)
        take = end + 1 if end >= 0 else min(len(available), room)
        parts.append(rfile.read(take))  # from the buffer: no socket read
        size += take
        after_read(take)
        if end >= 0 or size > limit:
            break
    return b"".join(parts)


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

    def _count(self, size: int) -> None:
        self.received += size
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
            self._count(len(piece))
            parts.append(piece)
            remaining -= len(piece)
        return b"".join(parts)

    def line(self) -> bytes:
        """One CRLF-terminated line without its CRLF (a bare LF is refused: servers that accept it
        disagree with those that do not about where a chunk ends)."""
        # The rate check runs after every read: a 1 KiB line at a byte every 4 s never times out a read.
        line = _read_line(self.rfile, MAX_CHUNK_LINE, lambda: None, self._count)
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
            self._count(len(end))
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
            path = path[len(self.prefix) :]
        allowed: set[str] = set()
        for function in self.functions:
            params = match_route(function.route, path)
            if params is None:
                continue
            if method in function.methods:
                return function, params, set()
            allowed |= function.methods
        return None, {}, allowed


class _HeadReader:
    """Reads the request head's lines against one deadline: before every socket read the timeout is
    set to the time left, so a head that trickles in still ends at the deadline."""

    def __init__(self, handler: _Handler, deadline: float):
        self.rfile = handler.rfile
        self.connection = handler.connection
        self.deadline = deadline
        self.received = 0

    def _arm(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _HeadTimeout
        self.connection.settimeout(left)

    def _count(self, size: int) -> None:
        self.received += size

    def line(self, limit: int) -> bytes:
        try:
            return _read_line(self.rfile, limit, self._arm, self._count)
        except TimeoutError:
            raise _HeadTimeout from None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FunctionsHttpServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # one line per invocation is logged below instead

    def setup(self) -> None:
        super().setup()
        self._accepted = time.monotonic()  # the first request's head deadline starts here
        self._requests = 0
        self._target_path = self._target_query = self._authority = ""

    def handle_one_request(self) -> None:
        # Replaces the stdlib's: it reads the head with a readline per line (no deadline for the
        # whole head) and with a parser that skips lines it cannot read (see the module docstring).
        self.close_connection = True
        self.command, self.request_version, self.requestline = "", "HTTP/1.1", ""  # for a refusal
        if self._requests:
            if not self._wait_for_request():
                return
            started = time.monotonic()
        else:
            started = self._accepted
        self._requests += 1
        head = _HeadReader(self, started + REQUEST_HEAD_TIMEOUT)
        try:
            if not self._read_head(head):
                return
        except _Refused as refusal:
            self._refuse(refusal.status)
            return
        except _HeadTimeout:
            if head.received:  # a request began and stalled; a silent connection is just closed
                self._refuse(408)
            return
        except OSError:  # a reset, or a client that went away mid head
            return
        try:
            self.connection.settimeout(REQUEST_READ_TIMEOUT)  # the body's reads, and the answer's writes
            getattr(self, "do_" + self.command)()
            self.wfile.flush()  # actually send the response if not already done
        except TimeoutError:  # a write timed out: the client stopped reading
            self.close_connection = True

    def _wait_for_request(self) -> bool:
        """Between requests on a kept-alive connection: True once the next request's first byte is
        here; False when the client closed, ``KEEP_ALIVE_TIMEOUT`` passed, or a new connection waits
        for a slot (an idle connection costs its client only a reconnect)."""
        idle_until = time.monotonic() + KEEP_ALIVE_TIMEOUT
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self.connection, selectors.EVENT_READ)
                while True:
                    self.connection.settimeout(0)
                    if self.rfile.peek(1):  # pipelined, or already here
                        return True
                    # An empty peek is "nothing yet" or the end of the stream: the selector tells.
                    left = idle_until - time.monotonic()
                    if left <= 0 or self.server.slot_wanted():
                        return False
                    if selector.select(min(left, _IDLE_POLL)):
                        self.connection.settimeout(REQUEST_READ_TIMEOUT)
                        return bool(self.rfile.peek(1))  # empty: the client closed
        except OSError:  # TimeoutError included: a client that went away
            return False

    def _read_head(self, head: _HeadReader) -> bool:
        """Reads and checks the request line and header fields into ``command``, ``request_version``,
        ``headers`` and the target's parts. False when the connection ended before a request began."""
        skipped = 0
        while (line := head.line(MAX_REQUEST_LINE)) == b"\r\n" and skipped < MAX_REQUEST_LINE:
            skipped += len(line)  # empty lines before a request line are ignored (RFC 9112 section 2.2)
        if not line:
            if head.received:
                raise _Refused(400)
            return False
        if len(line) > MAX_REQUEST_LINE:
            raise _Refused(414)
        if not line.endswith(b"\r\n"):
            raise _Refused(400)  # a bare LF, or the connection ended mid line
        self.raw_requestline = line
        self.requestline = line[:-2].decode("latin-1")
        parts = self.requestline.split(" ")
        if len(parts) != 3:
            raise _Refused(400)
        method, target, version = parts
        match = _VERSION.fullmatch(version)
        if not (_TOKEN.fullmatch(method) and match and _VISIBLE_ASCII.fullmatch(target)):
            raise _Refused(400)
        major, minor = int(match[1]), int(match[2])
        if major != 1:
            raise _Refused(505 if major > 1 else 400)
        self.command = method

        fields: list[tuple[str, str]] = []
        budget = MAX_HEADER_BYTES
        while (line := head.line(budget)) != b"\r\n":
            if len(line) > budget or len(fields) == MAX_HEADER_FIELDS:
                raise _Refused(431)
            if not line.endswith(b"\r\n") or line[:1] in (b" ", b"\t"):
                raise _Refused(400)  # a bare LF, the end of the connection, or an obs-fold line
            budget -= len(line)
            name, colon, value = line[:-2].decode("latin-1").partition(":")
            value = value.strip(" \t")
            if not colon or not _TOKEN.fullmatch(name) or _NOT_IN_VALUE.search(value):
                raise _Refused(400)
            fields.append((name, value))
        headers = self.MessageClass()
        for name, value in fields:
            headers[name] = value  # appends: repeated fields stay repeated
        self.headers = headers

        hosts = headers.get_all("Host") or []
        if len(hosts) > 1 or (minor >= 1 and not hosts) or not self._parse_target(target, hosts):
            raise _Refused(400)
        if not hasattr(self, "do_" + method):
            raise _Refused(501)
        self.request_version = version
        connection = {
            token.strip(" \t").lower() for value in headers.get_all("Connection") or [] for token in value.split(",")
        }
        self.close_connection = "close" in connection or (minor == 0 and "keep-alive" not in connection)
        if minor >= 1 and (headers.get("Expect") or "").lower() == "100-continue":
            self.send_response_only(100)
            self.end_headers()
        return True

    def _parse_target(self, target: str, hosts: list[str]) -> bool:
        """Sets the target's path, query and the authority the request was sent to; False when the
        target or the Host cannot be read (urlsplit raises ValueError on a broken IP literal)."""
        try:
            if target.startswith("/"):
                if target.startswith("//"):  # the stdlib's guard: "//x" must not read as an authority
                    target = "/" + target.lstrip("/")
                split = urlsplit(target)
                authority = hosts[0] if hosts else ""
            elif target[:7].lower() == "http://" or target[:8].lower() == "https://":
                split = urlsplit(target)  # absolute form: its authority replaces Host (RFC 9112 3.2.2)
                authority = split.netloc
                if not authority:
                    return False
            elif target == "*" and self.command == "OPTIONS":
                split, authority = urlsplit("*"), hosts[0] if hosts else ""
            else:
                return False
            if not _HOST.fullmatch(authority) or (hosts and not _HOST.fullmatch(hosts[0])):
                return False
            urlsplit("//" + authority).port  # noqa: B018 - raises ValueError for "[1:2]" or a bad port
        except ValueError:
            return False
        self._target_path, self._target_query, self._authority = split.path, split.query, authority
        self.path = split.path + (f"?{split.query}" if split.query else "")
        return True

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
        try:
            self.connection.settimeout(REQUEST_READ_TIMEOUT)  # the head's may have run down to nothing
            self._send(status, {}, b"", close=True)
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
        self.close_connection = True

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except _TooLarge:
            self._refuse(413)
            return
        except (_BadFraming, TimeoutError):
            self._refuse(400)
            return
        if self._target_path == "/admin/host/status":  # what tools poll to see that the host is up
            self._send(200, {"Content-Type": "application/json"}, b'{"state":"Running"}')
            return
        function, route_params, allowed = self.server.routes.find(self.command, self._target_path)
        if function is None:
            if allowed:
                self._send(405, {"Allow": ", ".join(sorted(allowed))}, b"")
            else:
                self._send(404, {}, b"")
            return
        authority = self._authority or f"{self.server.server_address[0]}:{self.server.server_port}"
        request = func.HttpRequest(
            method=self.command,
            url=f"http://{authority}{self.path}",
            headers={k: v for k, v in self.headers.items()},
            params=dict(parse_qsl(self._target_query, keep_blank_values=True)),
            route_params=route_params,
            body=body,
        )
        self._send(*self.server.invoke(function, request, self._target_path))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class FunctionsHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    # The stdlib's listen backlog of 5 drops connections when a sender opens a few dozen at once; this
    # is also where connections wait while MAX_CONNECTIONS are being served.
    request_queue_size = 1024

    def __init__(
        self, address: tuple[str, int], functions: Sequence[HttpFunction], route_prefix: str, executor: FunctionExecutor
    ):
        super().__init__(address, _Handler)
        self.routes = RouteTable(functions, route_prefix)
        self.executor = executor
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._slot_wanted = threading.Event()

    def get_request(self) -> tuple[socket.socket, Any]:
        # Called when a connection waits in the backlog. Without a free slot it stays there: the
        # OSError makes the accept loop look again on its next turn (after _SLOT_WAIT, not a spin).
        if not self._slots.acquire(timeout=_SLOT_WAIT):
            self._slot_wanted.set()
            raise _NoSlot
        self._slot_wanted.clear()
        try:
            return super().get_request()
        except BaseException:
            self._slots.release()
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def slot_wanted(self) -> bool:
        """True (once) when a new connection waits for a slot: an idle kept-alive one gives its up."""
        if self._slot_wanted.is_set():
            self._slot_wanted.clear()
            return True
        return False

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The stdlib prints a traceback to stderr here; one line, without the exception's message
        # (it can quote the request), says the same.
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):  # the client hung up mid-answer: nothing to fix here
            log.debug("HTTP connection ended by the client: %s", type(error).__name__)
        elif error is not None:
            log.warning("HTTP connection failed: %s", describe_exception(error))

    def invoke(self, function: HttpFunction, request: func.HttpRequest, path: str) -> tuple[int, dict[str, str], bytes]:
        """The function's answer. ``path`` is the request's, parsed before the call: nothing after the
        call may fail, or the client would get no answer for a request that ran."""
        started = time.monotonic()
        try:
            result = function.invoker(request, self.executor)
            status, headers, body = _response_parts(result)
        except Exception as error:  # noqa: BLE001 - the app should never let this happen; the host answers 500
            log.error(
                "Executed 'Functions.%s' (Failed, Duration=%dms): %s",
                function.name,
                (time.monotonic() - started) * 1000,
                describe_exception(error),
            )
            return 500, {}, b""
        log.info(
            "Executed 'Functions.%s' (%s %s -> %d, Duration=%dms)",
            function.name,
            request.method,
            path,
            status,
            (time.monotonic() - started) * 1000,
        )
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
