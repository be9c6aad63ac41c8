"""Throttling through real parts: a 429 from the emulator, the real queue trigger function, Azurite.

The queue listener is off (``queues=False``): the test plays the host's part by hand, so it can see
the original message's dequeue count and time the re-sent message's invisibility exactly.
"""

from __future__ import annotations

import json
import time

import pytest
from azure.functions.queue import QueueMessage

import function_app
from devhost.bindings import indexed_functions
from shared.core import telemetry_names as names
from tests.support.stack import event

pytestmark = pytest.mark.integration


def _invoke(message) -> float:
    functions = {f.get_function_name(): f for f in indexed_functions(function_app.app)}
    trigger = QueueMessage(id=message.id, body=message.content.encode(), dequeue_count=message.dequeue_count)
    started = time.perf_counter()
    functions[names.FUNCTION_PROCESS].get_user_function()(trigger)
    return time.perf_counter() - started


def _receive_one(queue, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = list(next(queue.receive_messages(messages_per_page=1, visibility_timeout=30).by_page(), []))
        if batch:
            return batch[0], time.monotonic()
        time.sleep(0.05)
    raise AssertionError("no message became visible")


def test_a_429_with_retry_after_is_a_new_delayed_message_and_the_original_completes(stack_factory, capsys):
    stack = stack_factory(queues=False)
    queue = stack.queue()
    # Warm up the connection pools with one ordinary event: the timing below is the steady state.
    assert stack.post(event(0, email="warm.up@example.com", firstName="Warm")).status_code == 202
    warm, _ = _receive_one(queue, 5)
    _invoke(warm)
    queue.delete_message(warm)

    stack.emulator.set_faults(script=[{"operation": "search", "fault": "throttle"}], retry_after_seconds=3)
    assert stack.post(event(1, firstName="Ada", lastName="Lovelace")).status_code == 202
    original, _ = _receive_one(queue, 5)
    assert original.dequeue_count == 1
    elapsed = _invoke(original)
    returned = time.monotonic()
    queue.delete_message(original)  # the function returned normally: the host deletes the message
    with capsys.disabled():
        print(f"\nthrottled invocation: {elapsed * 1000:.1f} ms; dequeue_count {original.dequeue_count}")
    assert elapsed < 0.1, f"the throttled invocation took {elapsed * 1000:.0f} ms"
    assert original.dequeue_count == 1  # completed on its first delivery, never released back

    # The event is back on the queue as a new message, invisible for at least Retry-After.
    assert queue.peek_messages(max_messages=32) == []
    assert queue.get_queue_properties().approximate_message_count == 1
    resent, visible_at = _receive_one(queue, 10)
    with capsys.disabled():
        print(f"re-sent message visible {visible_at - returned:.2f} s after the invocation returned")
    assert visible_at - returned >= 3.0
    assert resent.id != original.id and resent.dequeue_count == 1
    body = json.loads(resent.content)
    assert (body["attempt"], body["lastReason"], body["event"]["eventId"]) == (2, "commerce_throttled", "evt-1")
    outcomes = stack.telemetry.custom_events(names.EVENT_SYNC_OUTCOME)
    assert [(r.outcome, r.attempt) for r in outcomes][-1] == ("retrying", 1)

    _invoke(resent)  # the retry goes through
    queue.delete_message(resent)
    assert sorted(c["Email"] for c in stack.emulator.customers()) == ["ada.lovelace@example.com", "warm.up@example.com"]
    outcomes = stack.telemetry.custom_events(names.EVENT_SYNC_OUTCOME)
    assert [(r.outcome, r.attempt) for r in outcomes][-1] == ("created", 2)
