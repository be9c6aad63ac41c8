"""Queue triggers against real Azurite, with the SDK on the other side of the queue."""

import logging
from base64 import b64encode

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost.local_host import IdleTimeout
from tests.support.fixture_host import queues_json, wait_for

pytestmark = pytest.mark.integration


def sender(azurite, name: str, *, encode: bool = True) -> QueueClient:
    client = QueueClient.from_connection_string(
        azurite.connection_string, name, message_encode_policy=TextBase64EncodePolicy() if encode else None
    )
    return client


def raw_client(azurite, name: str) -> QueueClient:
    return QueueClient.from_connection_string(azurite.connection_string, name)  # no decoding: raw text


def peek(client: QueueClient) -> list:
    """Messages visible now; [] while the queue does not exist yet (poison queues appear on demand)."""
    try:
        return list(client.peek_messages(max_messages=32))
    except ResourceNotFoundError:
        return []


def test_base64_message_is_decoded_passed_and_deleted(azurite, make_host, recorder, work_queue):
    host = make_host(storage_connection=azurite.connection_string, timers=False, http=False)
    sent = sender(azurite, work_queue).send_message("héllo ✓")
    host.wait_idle(15)
    (call,) = recorder.work
    assert call["body"] == "héllo ✓"
    assert call["id"] == sent.id
    assert call["dequeue_count"] == 1
    assert call["insertion_time"] is not None
    assert peek(raw_client(azurite, work_queue)) == []


def test_message_encoding_none_passes_raw_text(azurite, make_host, recorder, work_queue):
    host = make_host(
        storage_connection=azurite.connection_string,
        timers=False,
        http=False,
        host_json=queues_json(messageEncoding="none"),
    )
    sender(azurite, work_queue, encode=False).send_message('{"plain": true}')
    host.wait_idle(15)
    assert [c["body"] for c in recorder.work] == ['{"plain": true}']


def test_dequeue_count_rises_then_poison_with_raw_base64(azurite, make_host, recorder, work_queue, caplog):
    host = make_host(
        storage_connection=azurite.connection_string, timers=False, http=False, functions=["work"]
    )  # no poison collector: the poison message stays to be read
    body = "fail: always"
    with caplog.at_level(logging.WARNING, logger="devhost"):
        original = sender(azurite, work_queue).send_message(body)
        poison = raw_client(azurite, f"{work_queue}-poison")
        (moved,) = wait_for(lambda: peek(poison))
        host.wait_idle(15)
    assert [c["dequeue_count"] for c in recorder.work] == [1, 2, 3]
    assert {c["id"] for c in recorder.work} == {original.id}
    assert moved.content == b64encode(body.encode()).decode()  # encoded like the original
    assert moved.id != original.id
    assert moved.expires_on.year == 9999  # never expires
    assert peek(raw_client(azurite, work_queue)) == []
    assert f"Message has reached MaxDequeueCount of 3. Moving message to queue '{work_queue}-poison'." in caplog.text


def test_visibility_timeout_is_honoured_between_attempts(azurite, make_host, recorder, work_queue):
    host = make_host(
        storage_connection=azurite.connection_string,
        timers=False,
        http=False,
        functions=["work"],
        host_json=queues_json(maxDequeueCount=2, visibilityTimeout="00:00:01"),
    )
    sender(azurite, work_queue).send_message("fail: retry me")
    wait_for(lambda: len(recorder.work) >= 2)
    first, second = recorder.work[:2]
    gap = second["at"] - first["at"]
    # Not redelivered before visibilityTimeout (a release with no delay would come back within
    # milliseconds), and picked up again within about maxPollingInterval after it.
    assert 0.95 <= gap <= 1.0 + 0.2 + 1.0, gap
    host.wait_idle(15)


def test_poison_trigger_receives_the_moved_message(azurite, make_host, recorder, work_queue):
    host = make_host(
        storage_connection=azurite.connection_string, timers=False, http=False, host_json=queues_json(maxDequeueCount=1)
    )
    sender(azurite, work_queue).send_message("fail: straight away")
    wait_for(lambda: recorder.poison)
    host.wait_idle(15)
    assert [c["dequeue_count"] for c in recorder.work] == [1]
    assert recorder.poison == [{"body": "fail: straight away"}]


def test_invalid_base64_goes_straight_to_poison(azurite, make_host, recorder, work_queue):
    host = make_host(storage_connection=azurite.connection_string, timers=False, http=False, functions=["work"])
    raw_client(azurite, work_queue).send_message("this is not base64!")
    (moved,) = wait_for(lambda: peek(raw_client(azurite, f"{work_queue}-poison")))
    host.wait_idle(15)
    assert moved.content == "this is not base64!"
    assert recorder.work == []


def test_undecodable_message_in_a_poison_queue_goes_to_its_own_poison_queue(
    azurite, make_host, recorder, work_queue, caplog, capfd
):
    """As in the host, the poison collector cannot decode it either: it ends in <queue>-poison-poison
    (which the app's queue monitor collects), with nothing invoked, no content logged, no traceback."""
    host = make_host(storage_connection=azurite.connection_string, timers=False, http=False)
    content = "not base64: ada@example.com!"
    with caplog.at_level(logging.DEBUG, logger="devhost"):
        raw_client(azurite, work_queue).send_message(content)
        (moved,) = wait_for(lambda: peek(raw_client(azurite, f"{work_queue}-poison-poison")))
        host.wait_idle(15)
    assert moved.content == content
    assert (recorder.work, recorder.poison) == ([], [])
    assert peek(raw_client(azurite, f"{work_queue}-poison")) == []
    assert "Message decoding has failed! Check MessageEncoding settings." in caplog.text
    assert f"Moving message to queue '{work_queue}-poison-poison'" in caplog.text
    assert "ada@example.com" not in caplog.text
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ada@example.com" not in err


def test_base64_that_is_not_utf8_fails_without_running_the_function(azurite, make_host, recorder, work_queue, caplog):
    """The host's binding error: counted as a failed attempt, so poison after maxDequeueCount (3)."""
    host = make_host(storage_connection=azurite.connection_string, timers=False, http=False, functions=["work"])
    with caplog.at_level(logging.WARNING, logger="devhost"):
        original = b64encode(b"\xff\xfe ada@example.com").decode()
        raw_client(azurite, work_queue).send_message(original)
        (moved,) = wait_for(lambda: peek(raw_client(azurite, f"{work_queue}-poison")))
        host.wait_idle(15)
    assert moved.content == original
    assert recorder.work == []
    failures = [r for r in caplog.records if "Functions.work" in r.getMessage()]
    assert [r.getMessage().split("DequeueCount=")[1][0] for r in failures] == ["1", "2", "3"]
    assert all("BindingError" in r.getMessage() for r in failures)
    assert "ada@example.com" not in caplog.text and "xff" not in caplog.text


def test_message_past_max_dequeue_count_is_not_invoked(azurite, make_host, recorder, work_queue):
    client = raw_client(azurite, work_queue)
    client.create_queue()
    client.send_message(b64encode(b"seen too often").decode())
    for _ in range(3):  # three receives without a delete: dequeue count 3 > maxDequeueCount 2
        (msg,) = list(client.receive_messages(max_messages=1, visibility_timeout=1))
        client.update_message(msg, pop_receipt=msg.pop_receipt, visibility_timeout=0)
    host = make_host(
        storage_connection=azurite.connection_string,
        timers=False,
        http=False,
        functions=["work"],
        host_json=queues_json(maxDequeueCount=2),
    )
    wait_for(lambda: peek(raw_client(azurite, f"{work_queue}-poison")))
    host.wait_idle(15)
    assert recorder.work == []


def test_concurrency_is_capped_at_batch_size_plus_threshold(azurite, make_host, recorder, work_queue):
    client = sender(azurite, work_queue)
    client.create_queue()
    # Uneven durations: a batch does not finish all at once, so the host tops up while work still runs.
    for index in range(10):
        client.send_message("hold:0.2" if index % 2 else "hold:0.5")
    host = make_host(
        storage_connection=azurite.connection_string,
        timers=False,
        http=False,
        functions=["work"],
        host_json=queues_json(batchSize=2, newBatchThreshold=1),
    )
    host.wait_idle(30)
    assert len(recorder.work) == 10
    assert recorder.max_running == 3


def test_worker_thread_count_caps_sync_functions_too(azurite, make_host, recorder, work_queue):
    client = sender(azurite, work_queue)
    client.create_queue()
    for index in range(6):
        client.send_message("hold:0.2" if index % 2 else "hold:0.4")
    # batchSize 2 + newBatchThreshold 1 would allow 3; the worker's thread pool allows only 2.
    host = make_host(
        storage_connection=azurite.connection_string,
        timers=False,
        http=False,
        functions=["work"],
        host_json=queues_json(batchSize=2, newBatchThreshold=1),
        env={"PYTHON_THREADPOOL_THREAD_COUNT": "2"},
    )
    host.wait_idle(30)
    assert len(recorder.work) == 6
    assert recorder.max_running == 2


def test_wait_idle_raises_while_work_is_running(azurite, make_host, recorder, work_queue):
    host = make_host(storage_connection=azurite.connection_string, timers=False, http=False, functions=["work"])
    sender(azurite, work_queue).send_message("hold:1.5")
    wait_for(lambda: recorder.work)
    with pytest.raises(IdleTimeout):
        host.wait_idle(0.3)
    host.wait_idle(15)


def test_stop_releases_a_message_whose_invocation_outlives_the_grace_period(azurite, make_host, recorder, work_queue):
    host = make_host(
        storage_connection=azurite.connection_string, timers=False, http=False, functions=["work"], shutdown_grace=0.2
    )
    sender(azurite, work_queue).send_message("hold:1")
    wait_for(lambda: recorder.work)
    assert peek(raw_client(azurite, work_queue)) == []  # invisible while it runs
    host.stop()
    # Visible again at once for another worker, not after the long in-flight visibility.
    (message,) = peek(raw_client(azurite, work_queue))
    assert message.dequeue_count == 1
    wait_for(lambda: recorder.running == 0)  # let the abandoned invocation end before the next test
