"""Server behaviour: keep-alive, thread safety under concurrent creates, the in-process server and its shutdown."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests

from commerce_emulator import EmulatorServer
from commerce_emulator.odata import key_literal
from tests.support.emulator_client import CommerceApi, new_customer

pytestmark = pytest.mark.integration


def test_keep_alive_serves_many_requests_on_one_connection(api, emulator):
    account = api.create(new_customer()).json()["AccountNumber"]
    local_ports = set()
    for _ in range(5):
        for call in (
            lambda: api.get(account, stream=True),
            lambda: api.search("ann@example.com", stream=True),
            lambda: api.get("missing", stream=True),
        ):  # errors keep the connection too
            response = call()  # streamed: its connection is still attached until the body is read
            local_ports.add(response.raw.connection.sock.getsockname()[1])
            assert response.status_code in (200, 404) and response.content
    assert len(local_ports) == 1  # 15 requests, one TCP connection


def test_keep_alive_at_the_socket_level(emulator):
    url = urlsplit(emulator.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    headers = {"OUN": "052", "Authorization": f"id_token {emulator.token}"}
    try:
        conn.connect()
        first_socket = conn.sock
        for _ in range(3):
            conn.request("GET", f"/Commerce/Customers({key_literal('x')})", headers=headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 404 and not response.will_close
        assert conn.sock is first_socket
    finally:
        conn.close()


def test_concurrent_creates_are_thread_safe(emulator):
    def create_many(worker: int) -> list[str]:
        client = CommerceApi(emulator.base_url, emulator.token)
        try:
            return [
                client.create(new_customer(f"w{worker}-{n}@example.com")).json()["AccountNumber"] for n in range(20)
            ]
        finally:
            client.session.close()

    with ThreadPoolExecutor(max_workers=12) as pool:
        accounts = [a for batch in pool.map(create_many, range(12)) for a in batch]
    stored = emulator.customers()
    assert len(accounts) == len(set(accounts)) == len(stored) == 240
    record_ids = [c["RecordId"] for c in stored] + [a["RecordId"] for c in stored for a in c["Addresses"]]
    assert len(record_ids) == len(set(record_ids))
    assert emulator.calls()["create"] == 240
    client = CommerceApi(emulator.base_url, emulator.token)
    assert [len(client.search(f"w{w}-{n}@example.com").json()["value"]) for w in (0, 11) for n in (0, 19)] == [1] * 4


def test_in_process_server_stops_despite_hangs_and_idle_connections():
    server = EmulatorServer(port=0, config={"require_auth": False, "require_oun": False}).start()
    idle = requests.Session()
    assert idle.get(f"{server.url}/_emulator/calls", timeout=5).status_code == 200  # an idle keep-alive
    requests.put(
        f"{server.url}/_emulator/faults",
        json={"script": [{"operation": "get", "fault": "hang"}], "hang_seconds": 60},
        timeout=5,
    )
    outcome: list[BaseException | int] = []

    def hang() -> None:
        try:
            outcome.append(requests.get(f"{server.base_url}/Customers('x')", timeout=30).status_code)
        except requests.RequestException as err:
            outcome.append(err)

    hanging = threading.Thread(target=hang)
    hanging.start()
    deadline = time.monotonic() + 5
    while server.calls()["faulted"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the server's own counter: the hang has begun once it is counted
    started = time.monotonic()
    server.stop()
    hanging.join(timeout=5)
    assert time.monotonic() - started < 3
    assert len(outcome) == 1 and isinstance(outcome[0], requests.ConnectionError)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/_emulator/calls", timeout=2)
    idle.close()


def test_chunked_request_bodies_are_read(emulator):
    url = urlsplit(emulator.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    body = json.dumps(new_customer("chunked@example.com")).encode()
    try:
        conn.request(
            "POST",
            "/Commerce/Customers",
            body=iter([body[:10], body[10:]]),
            encode_chunked=True,
            headers={"OUN": "052", "Authorization": f"id_token {emulator.token}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        assert response.status == 201 and json.loads(response.read())["Email"] == "chunked@example.com"
    finally:
        conn.close()


def _raw_exchange(emulator, data: bytes) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    url = urlsplit(emulator.url)
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_raw_http_edge_cases(emulator):
    assert _raw_exchange(emulator, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert _raw_exchange(emulator, b"GET /_emulator/calls HTTP/1.1\r\nno colon here\r\n\r\n").startswith(
        b"HTTP/1.1 400 "
    )
    # HTTP/1.0 without keep-alive: one answer, then the server closes (the read above would hang otherwise)
    answer = _raw_exchange(emulator, b"GET /_emulator/calls HTTP/1.0\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in answer
    # HTTP/1.1 pipelined keep-alive requests, the last asking to close; header names in any case
    two = _raw_exchange(
        emulator,
        b"GET /_emulator/calls HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /_emulator/calls/reset HTTP/1.1\r\nhost: x\r\nCONTENT-LENGTH: 0\r\n"
        b"connection: close\r\n\r\n",
    )
    assert two.count(b"HTTP/1.1 200 ") == 2
    expect = _raw_exchange(
        emulator,
        b"POST /_emulator/customers HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        b"Expect: 100-continue\r\nConnection: close\r\n\r\n[]",
    )
    assert expect.startswith(b"HTTP/1.1 100 Continue\r\n") and b"HTTP/1.1 200 " in expect
    bad_length = _raw_exchange(emulator, b"POST /_emulator/customers HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n")
    assert bad_length.startswith(b"HTTP/1.1 400 ")
