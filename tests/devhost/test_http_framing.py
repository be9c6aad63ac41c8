"""Request framing over a raw socket: every malformed or stalled request gets a quick 400 or 413 and a
closed connection, never a hang, a dropped connection or a traceback; a burst of connections is served."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

import devhost.http_server as server

pytestmark = pytest.mark.integration

CLIENT_TIMEOUT = 10.0  # longer than any answer below may take: a hang fails as socket.timeout
FAST = 2.0  # seconds within which a refusal that needs no waiting must arrive


@pytest.fixture
def port(make_host) -> int:
    return make_host(queues=False, timers=False).http_port


@pytest.fixture
def quiet(caplog, capfd):
    """Fails the test if anything logged or written to stderr carries a traceback."""
    caplog.set_level(logging.DEBUG)
    yield
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err, err
    assert "Traceback" not in caplog.text, caplog.text
    assert not [r for r in caplog.records if r.exc_info], caplog.text


def exchange(port: int, request: bytes, *, half_close: bool = False) -> tuple[int, bytes, float]:
    """Send ``request``, then read until the server closes. (status, whole answer, seconds taken)."""
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
        started = time.monotonic()
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):  # to EOF: proves the connection is closed afterwards
            answer += chunk
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 "), answer
    return int(answer.split(b" ", 2)[1]), answer, elapsed


def post(*headers: str, body: bytes = b"") -> bytes:
    head = "".join(f"{h}\r\n" for h in ("POST /api/echo/x HTTP/1.1", "Host: t", *headers))
    return head.encode("latin-1") + b"\r\n" + body


REFUSED_AT_ONCE = [
    ("non-numeric Content-Length", post("Content-Length: abc"), 400),
    ("negative Content-Length", post("Content-Length: -5", body=b"hello"), 400),
    ("signed Content-Length", post("Content-Length: +5", body=b"hello"), 400),
    ("empty Content-Length", post("Content-Length: "), 400),
    ("non-ASCII digit in Content-Length", post("Content-Length: \u00b2"), 400),
    ("differing Content-Length headers", post("Content-Length: 5", "Content-Length: 6", body=b"hello!"), 400),
    ("differing Content-Length list", post("Content-Length: 5, 6", body=b"hello!"), 400),
    (
        "Content-Length and Transfer-Encoding",
        post("Content-Length: 5", "Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
        400,
    ),
    ("Transfer-Encoding that is not chunked", post("Transfer-Encoding: gzip", body=b"hello"), 400),
    ("chunked not the only coding", post("Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"), 400),
    ("chunked twice", post("Transfer-Encoding: chunked", "Transfer-Encoding: chunked", body=b"0\r\n\r\n"), 400),
    ("chunk size not hexadecimal", post("Transfer-Encoding: chunked", body=b"zz\r\nhello\r\n0\r\n\r\n"), 400),
    ("negative chunk size", post("Transfer-Encoding: chunked", body=b"-5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk extension", post("Transfer-Encoding: chunked", body=b"5;name=value\r\nhello\r\n0\r\n\r\n"), 400),
    ("missing CRLF after chunk data", post("Transfer-Encoding: chunked", body=b"5\r\nhelloXX0\r\n\r\n"), 400),
    ("bare LF after chunk size", post("Transfer-Encoding: chunked", body=b"5\nhello\r\n0\r\n\r\n"), 400),
    (
        "chunk-size line of absurd length",
        post("Transfer-Encoding: chunked", body=b"0" * 5000 + b"5\r\nhello\r\n0\r\n\r\n"),
        400,
    ),
    ("chunk size of absurd value", post("Transfer-Encoding: chunked", body=b"f" * 1000 + b"\r\nhello"), 413),
    ("Content-Length of absurd length", post("Content-Length: " + "9" * 5000, body=b"hello"), 413),
    ("Content-Length over the host limit", post(f"Content-Length: {server.MAX_BODY_BYTES + 1}"), 413),
]


@pytest.mark.parametrize("name, request_bytes, status", REFUSED_AT_ONCE, ids=[c[0] for c in REFUSED_AT_ONCE])
def test_malformed_framing_is_refused_at_once_and_closed(port, quiet, monkeypatch, name, request_bytes, status):
    # No read timeout can produce the answer within FAST: it must come from the framing check itself.
    monkeypatch.setattr(server, "REQUEST_READ_TIMEOUT", 30.0)
    got, answer, elapsed = exchange(port, request_bytes)
    assert (got, elapsed < FAST) == (status, True), (answer, elapsed)
    assert b"Connection: close" in answer
    assert answer.endswith(b"\r\n\r\n")  # empty body, and nothing of the refused request echoed


def test_body_ending_before_its_length_is_400_at_once(port, quiet, monkeypatch):
    monkeypatch.setattr(server, "REQUEST_READ_TIMEOUT", 30.0)
    status, _, elapsed = exchange(port, post("Content-Length: 100", body=b"abc"), half_close=True)
    assert (status, elapsed < FAST) == (400, True), elapsed


STALLED = [
    ("body shorter than its Content-Length", post("Content-Length: 100", body=b"abc")),
    ("chunk data cut short", post("Transfer-Encoding: chunked", body=b"a\r\nabc")),
    ("chunk size line never ended", post("Transfer-Encoding: chunked", body=b"5")),
    ("last chunk without its final CRLF", post("Transfer-Encoding: chunked", body=b"0\r\n")),
]


@pytest.mark.parametrize("name, request_bytes", STALLED, ids=[c[0] for c in STALLED])
def test_a_stalled_body_is_cut_off_by_the_read_timeout(port, quiet, monkeypatch, name, request_bytes):
    monkeypatch.setattr(server, "REQUEST_READ_TIMEOUT", 1.0)
    status, answer, elapsed = exchange(port, request_bytes)
    assert status == 400, answer
    assert 0.9 <= elapsed < 1.0 + FAST, elapsed  # after the timeout, not long after it


def test_a_trickling_body_is_cut_off_even_though_no_single_read_times_out(port, quiet, monkeypatch):
    monkeypatch.setattr(server, "REQUEST_READ_TIMEOUT", 0.5)
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(post("Content-Length: 1000"))
        stop = threading.Event()

        def trickle() -> None:  # one byte every 0.2 s: 5 bytes/s, far under MIN_BODY_RATE
            while not stop.wait(0.2):
                try:
                    sock.sendall(b"x")
                except OSError:
                    return  # answered and closed

        sender = threading.Thread(target=trickle)
        started = time.monotonic()
        sender.start()
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        finally:
            stop.set()
            sender.join()
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert elapsed < 0.5 + FAST, elapsed


def test_good_requests_still_work_chunked_repeated_length_and_pipelined(port, quiet):
    chunked = post(
        "Transfer-Encoding: Chunked",
        "Connection: close",
        body=b"3\r\nhel\r\n0A\r\nlo, world!\r\n0\r\nX-Trailer: yes\r\n\r\n",
    )
    status, answer, _ = exchange(port, chunked)
    assert status == 200 and b'"body": "hello, world!"' in answer, answer
    status, answer, _ = exchange(
        port, post("Content-Length: 5, 5", "Content-Length: 5", "Connection: close", body=b"hello")
    )
    assert status == 200 and b'"body": "hello"' in answer, answer
    # Two requests in one write on a kept-alive connection: both answered, in order.
    two = post("Content-Length: 3", body=b"one") + post("Content-Length: 3", "Connection: close", body=b"two")
    _, answer, _ = exchange(port, two)
    assert answer.count(b"HTTP/1.1 200 OK") == 2
    assert answer.index(b'"body": "one"') < answer.index(b'"body": "two"')


def test_64_connections_at_once_are_all_answered(port, quiet):
    count = 64
    barrier = threading.Barrier(count)
    answers: list[bytes | str] = [b""] * count

    def one(index: int) -> None:
        barrier.wait()  # every connection opens at the same moment
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
                sock.sendall(b"GET /api/echo/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                while chunk := sock.recv(65536):
                    answers[index] += chunk
        except OSError as error:  # a reset or a connection the server never took
            answers[index] = repr(error)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    failed = [a for a in answers if not (isinstance(a, bytes) and a.startswith(b"HTTP/1.1 200 OK"))]
    assert failed == [], failed
    # With a listen backlog of 5 the kernel drops most of the handshakes, and the clients only get in
    # on their SYN retransmissions, seconds later.
    assert elapsed < 3.0, elapsed


# --- the request head: one deadline, strict field lines, every request answered ----------------


def executed(caplog) -> list[str]:
    """The request paths functions ran for: the host logs one "Executed" line per invocation."""
    return [r.args[2] for r in caplog.records if r.name == "devhost.http" and r.msg.startswith("Executed")]


def read_answer(sock: socket.socket) -> bytes:
    """One whole answer from a connection that stays open (its body delimited by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")).split(b":")[1])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def trickle(port: int, prefix: bytes, unit: bytes, interval: float) -> tuple[bytes, float]:
    """Send ``prefix``, then ``unit`` every ``interval`` seconds until the server answers and closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
        started = time.monotonic()
        sock.sendall(prefix)
        stop = threading.Event()

        def send() -> None:
            while not stop.wait(interval):
                try:
                    sock.sendall(unit)
                except OSError:
                    return  # answered and closed

        sender = threading.Thread(target=send)
        sender.start()
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        finally:
            stop.set()
            sender.join()
        return answer, time.monotonic() - started


TRICKLED_HEADS = [
    ("request line a byte at a time", b"PO", b"S"),
    ("header value a byte at a time", b"POST /api/echo/x HTTP/1.1\r\nHost: t\r\nX-A: ", b"a"),
    ("a header line at a time", b"POST /api/echo/x HTTP/1.1\r\nHost: t\r\n", b"X: a\r\n"),
]


@pytest.mark.parametrize("name, prefix, unit", TRICKLED_HEADS, ids=[c[0] for c in TRICKLED_HEADS])
def test_a_trickling_head_is_cut_off_at_its_deadline(port, quiet, monkeypatch, caplog, name, prefix, unit):
    # Each read on its own returns well within REQUEST_READ_TIMEOUT: only the head's deadline can end it.
    monkeypatch.setattr(server, "REQUEST_READ_TIMEOUT", 30.0)
    monkeypatch.setattr(server, "REQUEST_HEAD_TIMEOUT", 1.0)
    answer, elapsed = trickle(port, prefix, unit, 0.2)
    assert answer.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in answer, answer
    assert 0.9 <= elapsed < 1.0 + FAST, elapsed
    assert executed(caplog) == []


TRICKLED_BODY_LINES = [
    ("chunk-size line a byte at a time", post("Transfer-Encoding: chunked"), b"0"),
    ("trailer line a byte at a time", post("Transfer-Encoding: chunked", body=b"0\r\n"), b"X"),
]


@pytest.mark.parametrize("name, prefix, unit", TRICKLED_BODY_LINES, ids=[c[0] for c in TRICKLED_BODY_LINES])
def test_a_trickling_chunk_line_is_cut_off_by_the_rate_check(port, quiet, monkeypatch, caplog, name, prefix, unit):
    # 5 bytes/s: the rate check must run on every read, not once the 1 KiB line is complete (200 s).
    monkeypatch.setattr(server, "REQUEST_READ_TIMEOUT", 0.5)
    answer, elapsed = trickle(port, prefix, unit, 0.2)
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert elapsed < 0.5 + FAST, elapsed
    assert executed(caplog) == []


def test_a_new_connection_that_sends_nothing_is_closed_at_the_head_deadline(port, quiet, monkeypatch):
    monkeypatch.setattr(server, "REQUEST_HEAD_TIMEOUT", 1.0)  # KEEP_ALIVE_TIMEOUT stays 120 s
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
        started = time.monotonic()
        assert sock.recv(65536) == b""  # closed, with nothing to answer
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 1.0 + FAST, elapsed


def test_a_kept_alive_connection_idles_longer_than_a_head_may_take(port, quiet, monkeypatch, caplog):
    monkeypatch.setattr(server, "REQUEST_HEAD_TIMEOUT", 0.5)
    monkeypatch.setattr(server, "KEEP_ALIVE_TIMEOUT", 2.0)
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(b"GET /api/echo/one HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_answer(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(1.0)  # idle: twice the head deadline, which starts only with the next request's byte
        sock.sendall(b"GET /api/echo/two HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_answer(sock).startswith(b"HTTP/1.1 200 ")
        idle_from = time.monotonic()
        assert sock.recv(65536) == b""  # and after KEEP_ALIVE_TIMEOUT of idling, closed
        assert 1.9 <= time.monotonic() - idle_from < 2.0 + FAST
    assert executed(caplog) == ["/api/echo/one", "/api/echo/two"]


def handler_threads() -> int:
    return sum(1 for t in threading.enumerate() if "process_request_thread" in t.name)


def test_connections_beyond_the_limit_wait_in_the_backlog_and_are_then_served(make_host, quiet, monkeypatch):
    monkeypatch.setattr(server, "MAX_CONNECTIONS", 4)
    monkeypatch.setattr(server, "REQUEST_HEAD_TIMEOUT", 1.0)
    port = make_host(queues=False, timers=False).http_port
    silent = [socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) for _ in range(12)]
    try:
        started, most = time.monotonic(), 0
        with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
            sock.sendall(b"GET /api/echo/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            sock.setblocking(False)
            answer = b""
            while True:  # sampling the server's threads while the request waits its turn
                most = max(most, handler_threads())
                try:
                    chunk = sock.recv(65536)
                except BlockingIOError:
                    assert time.monotonic() - started < 3 * 1.0 + FAST, "never served"
                    time.sleep(0.02)
                    continue
                if not chunk:
                    break
                answer += chunk
        elapsed = time.monotonic() - started
    finally:
        for s in silent:
            s.close()
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer
    assert most <= 4, most
    # Served in its turn, after the three waves of four silent connections ahead of it timed out.
    assert elapsed >= 2.9, elapsed


def test_a_waiting_connection_takes_the_slot_of_an_idle_kept_alive_one(make_host, quiet, monkeypatch):
    monkeypatch.setattr(server, "MAX_CONNECTIONS", 2)
    port = make_host(queues=False, timers=False).http_port
    idle = [socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) for _ in range(2)]
    try:
        for sock in idle:
            sock.sendall(b"GET /api/echo/idle HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_answer(sock).startswith(b"HTTP/1.1 200 ")
        status, _, elapsed = exchange(port, b"GET /api/echo/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert (status, elapsed < server._IDLE_POLL + FAST) == (200, True), elapsed
        closed = 0
        for sock in idle:
            sock.settimeout(0.2)
            try:
                closed += sock.recv(1) == b""
            except TimeoutError:
                pass  # still open: only as many give way as connections wait
        assert closed >= 1
    finally:
        for sock in idle:
            sock.close()


SMUGGLED = b"GET /api/echo/smuggled HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
REFUSED_HEADS = [
    (
        "space before the colon, body smuggles a request",
        b"POST /api/echo/x HTTP/1.1\r\nHost: t\r\nContent-Length : %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
        400,
    ),
    (
        "tab before the colon after a real Content-Length",
        post("Content-Length: 5", "Content-Length\t: 99", body=b"hello"),
        400,
    ),
    (
        "header name with a space, hiding Transfer-Encoding",
        b"POST /api/echo/x HTTP/1.1\r\nHost: t\r\nX Bad: y\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        400,
    ),
    ("line without a colon", post("NoColonHere", "Content-Length: 0"), 400),
    ("empty header name", post(": value"), 400),
    ("obs-fold continuing a value", post("X-A: 1", " continued", "Connection: close"), 400),
    ("obs-fold hiding Content-Length", post("X-A: y", " Content-Length: 5", body=b"hello"), 400),
    ("obs-fold on the first field line", b"GET /api/echo/x HTTP/1.1\r\n Host: t\r\nConnection: close\r\n\r\n", 400),
    ("NUL in a value", post("X-A: a\x00b"), 400),
    ("bare CR in a value", post("X-A: a\rb"), 400),
    ("header lines ended by a bare LF", b"GET /api/echo/x HTTP/1.1\nHost: t\nConnection: close\n\n", 400),
    ("no Host in HTTP/1.1", b"GET /api/echo/x HTTP/1.1\r\nConnection: close\r\n\r\n", 400),
    ("two Host fields", post("Host: u"), 400),
    ("Host that is not a host", post("X-Test: 1").replace(b"Host: t", b"Host: \x00\xff["), 400),
    ("Host of non-ASCII bytes", post().replace(b"Host: t", b"Host: \xff["), 400),
    ("Host with a broken IPv6 literal", post().replace(b"Host: t", b"Host: [1:2]"), 400),
    ("absolute form with a broken IPv6 authority", b"GET http://[/ HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("absolute form with user info", b"GET http://u@t/api/echo/x HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("two spaces in the request line", b"GET  /api/echo/x HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("control byte in the target", b"GET /api/echo/\x01 HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("HTTP/0.9 request line", b"GET /api/echo/x\r\n\r\n", 400),
    ("HTTP/2 on this port", b"GET /api/echo/x HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    ("unknown method", b"BREW /api/echo/x HTTP/1.1\r\nHost: t\r\n\r\n", 501),
    ("request line over the limit", b"GET /" + b"a" * server.MAX_REQUEST_LINE + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
    ("header fields over the limit", post(*[f"X-{i}: {'a' * 1000}" for i in range(40)]), 431),
    ("too many header fields", post(*[f"X-{i}: a" for i in range(server.MAX_HEADER_FIELDS + 1)]), 431),
]


@pytest.mark.parametrize("name, request_bytes, status", REFUSED_HEADS, ids=[c[0] for c in REFUSED_HEADS])
def test_an_unreadable_head_is_refused_at_once_and_nothing_runs(
    port, quiet, monkeypatch, caplog, name, request_bytes, status
):
    monkeypatch.setattr(server, "REQUEST_READ_TIMEOUT", 30.0)
    monkeypatch.setattr(server, "REQUEST_HEAD_TIMEOUT", 30.0)
    got, answer, elapsed = exchange(port, request_bytes)
    assert (got, elapsed < FAST) == (status, True), (answer, elapsed)
    assert answer.count(b"HTTP/1.1 ") == 1 and b"Connection: close" in answer, answer  # one answer only
    assert answer.endswith(b"\r\n\r\n")
    assert executed(caplog) == []  # neither the request nor anything smuggled in it ran


def test_empty_lines_before_the_request_line_are_skipped(port, quiet, caplog):
    status, answer, _ = exchange(port, b"\r\n\r\n\r\nGET /api/echo/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert status == 200 and answer.count(b"HTTP/1.1 ") == 1, answer
    assert executed(caplog) == ["/api/echo/x"]


def test_absolute_form_is_routed_by_its_path_and_its_authority_replaces_host(port, quiet, caplog):
    status, answer, _ = exchange(
        port, b"GET http://example.test:81/api/echo/x?a=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    assert status == 200 and b'"url": "http://example.test:81/api/echo/x?a=1"' in answer, answer
    assert b'"params": {"a": "1"}' in answer
    assert executed(caplog) == ["/api/echo/x"]


def test_field_values_reach_the_function_without_their_surrounding_whitespace(port, quiet):
    status, answer, _ = exchange(port, post("X-Test: \t spaced out \t", "Connection: close"))
    assert status == 200 and b'"x_test": "spaced out"' in answer, answer


def test_nothing_after_the_function_ran_can_fail_its_answer(make_host, caplog):
    """The log line takes the path parsed from the request line: a URL that urlsplit cannot read (as
    a strange Host once made) still gets the function's answer, so the client has no reason to retry."""
    import azure.functions as func

    from devhost.invoke import FunctionExecutor

    host = make_host(queues=False, timers=False, http=False)
    caplog.set_level(logging.INFO, logger="devhost.http")
    executor = FunctionExecutor(1)
    http = server.FunctionsHttpServer(("127.0.0.1", 0), host.functions.http, "api", executor)
    try:
        function, params, _ = http.routes.find("GET", "/api/echo/x")
        request = func.HttpRequest(
            method="GET", url="http://[/api/echo/x", headers={}, params={}, route_params=params, body=b""
        )
        status, headers, body = http.invoke(function, request, "/api/echo/x")
    finally:
        http.server_close()
        executor.stop()
    assert (status, headers.get("X-Echo")) == (200, "yes") and b'"url": "http://[/api/echo/x"' in body
    assert executed(caplog) == ["/api/echo/x"]
