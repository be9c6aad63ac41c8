"""The control API's view of Commerce requests being answered: what a test needs to kill a client mid-call."""

from __future__ import annotations

import threading
import time

import pytest
import requests

pytestmark = pytest.mark.integration


def test_a_request_in_flight_is_listed_with_its_clients_port_until_answered(api, emulator):
    emulator.set_faults(script=[{"operation": "get", "fault": "hang"}], hang_seconds=5)
    assert emulator.in_flight() == []
    done = threading.Event()

    def call() -> None:
        try:
            api.get("004001")
        except requests.RequestException:
            pass  # a hang ends with the connection dropped
        done.set()

    threading.Thread(target=call, daemon=True).start()
    deadline = time.monotonic() + 5
    while not (listed := emulator.in_flight()) and time.monotonic() < deadline:
        time.sleep(0.01)
    [answering] = listed
    assert answering["operation"] == "get" and 0 <= answering["seconds"] < 5
    # the client's end of the connection: the port of the api session's socket, not the emulator's
    assert answering["client_port"] != int(emulator.url.rsplit(":", 1)[1])
    emulator.clear_faults()  # ends the hang
    assert done.wait(5)
    assert emulator.in_flight() == []


def test_faults_injected_are_counted_by_operation_and_kind(api, emulator):
    emulator.reset_calls()
    emulator.set_faults(
        script=[{"operation": "search", "fault": "throttle"}, {"operation": "get", "fault": "server_error"}]
    )
    assert api.search("a@b.com").status_code == 429 and api.get("004001").status_code == 500
    assert api.search("a@b.com").status_code == 200
    assert emulator.injected() == {"get:server_error": 1, "search:throttle": 1}
    assert emulator.calls()["faulted"] == 2
    emulator.reset_calls()
    assert emulator.injected() == {}
