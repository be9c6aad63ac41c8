"""The HTTP side of the local host: ``/<routePrefix>/<route>`` on a threading HTTP/1.1 server.

Function keys are not checked (Core Tools does not check them either). An exception escaping a function
becomes a 500 with an empty body; the log line names the function and the exception type and location,
not its message, which could carry personal data.
"""

from __future__ import annotations

import logging
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


class _TooLarge(Exception):
    pass


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

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if sum(map(len, chunks)) + size > MAX_BODY_BYTES:
                    raise _TooLarge
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise _TooLarge
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in _OWN_HEADERS:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except _TooLarge:
            self.close_connection = True  # the unread body cannot be skipped on this connection
            self._send(413, {"Connection": "close"}, b"")
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

    def __init__(self, address: tuple[str, int], functions: Sequence[HttpFunction], route_prefix: str,
                 executor: FunctionExecutor):
        super().__init__(address, _Handler)
        self.routes = RouteTable(functions, route_prefix)
        self.executor = executor

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
