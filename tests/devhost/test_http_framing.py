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
    ("Content-Length and Transfer-Encoding",
     post("Content-Length: 5", "Transfer-Encoding: chunked", body=b"0\r\n\r\n"), 400),
    ("Transfer-Encoding that is not chunked", post("Transfer-Encoding: gzip", body=b"hello"), 400),
    ("chunked not the only coding", post("Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"), 400),
    ("chunked twice", post("Transfer-Encoding: chunked", "Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
     400),
    ("chunk size not hexadecimal", post("Transfer-Encoding: chunked", body=b"zz\r\nhello\r\n0\r\n\r\n"), 400),
    ("negative chunk size", post("Transfer-Encoding: chunked", body=b"-5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk extension", post("Transfer-Encoding: chunked", body=b"5;name=value\r\nhello\r\n0\r\n\r\n"), 400),
    ("missing CRLF after chunk data", post("Transfer-Encoding: chunked", body=b"5\r\nhelloXX0\r\n\r\n"), 400),
    ("bare LF after chunk size", post("Transfer-Encoding: chunked", body=b"5\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-size line of absurd length",
     post("Transfer-Encoding: chunked", body=b"0" * 5000 + b"5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk size of absurd value", post("Transfer-Encoding: chunked", body=b"f" * 1000 + b"\r\nhello"), 413),
    ("Content-Length of absurd length", post("Content-Length: " + "9" * 5000, body=b"hello"), 413),
    ("Content-Length over the host limit", post(f"Content-Length: {server.MAX_BODY_BYTES + 1}"), 413),
]


@pytest.mark.parametrize("name, request_bytes, status", REFUSED_AT_ONCE, ids=[c[0] for c in REFUSED_AT_ONCE])
def test_malformed_framing_is_refused_at_once_and_closed(port, quiet, monkeypatch, name, request_bytes,
                                                         status):
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
    chunked = post("Transfer-Encoding: Chunked", "Connection: close",
                   body=b"3\r\nhel\r\n0A\r\nlo, world!\r\n0\r\nX-Trailer: yes\r\n\r\n")
    status, answer, _ = exchange(port, chunked)
    assert status == 200 and b'"body": "hello, world!"' in answer, answer
    status, answer, _ = exchange(port, post("Content-Length: 5, 5", "Content-Length: 5", "Connection: close",
                                            body=b"hello"))
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
