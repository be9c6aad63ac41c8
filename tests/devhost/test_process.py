"""``python -m devhost`` as a subprocess: ready line, HTTP, queue-only workers, SIGINT shutdown."""

import os
import signal
import time
import uuid

import pytest
import requests
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient, QueueServiceClient, TextBase64EncodePolicy

from devhost.azurite import ACCOUNT, DEV_KEY, free_port
from devhost.children import is_listening
from devhost.testing import start_devhost_process
from tests.support.fixture_host import NEVER, wait_for

pytestmark = pytest.mark.integration
APP = "tests.support.fixture_app:app"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_http_worker_and_queue_only_worker_share_azurite(azurite):
    queue = f"work-{uuid.uuid4().hex[:10]}"
    env = {"AzureWebJobsStorage": azurite.connection_string, "WORK_QUEUE": queue, "TICK_SCHEDULE": NEVER}
    web = start_devhost_process(env=env, app=APP)
    worker = start_devhost_process(env=env, app=APP, args=["--no-azurite", "--no-emulator", "--only-queues"])
    try:
        assert web.http_url.startswith("http://127.0.0.1:") and web.http_url.endswith("/api")
        assert requests.get(f"{web.http_url}/echo/x").json()["route"] == {"name": "x"}
        assert worker.http_url is None
        assert "NOT enforced locally" in web.output()
        # Both workers consume the queue: every message is processed and deleted.
        client = QueueClient.from_connection_string(
            azurite.connection_string, queue, message_encode_policy=TextBase64EncodePolicy()
        )
        for index in range(6):
            client.send_message(f"ok {index}")
        wait_for(lambda: client.get_queue_properties().approximate_message_count == 0)
        done = "Executed 'Functions.work' (Succeeded"
        wait_for(lambda: web.output().count(done) + worker.output().count(done) == 6)
    finally:
        codes = (web.stop(), worker.stop(sig=signal.SIGTERM))
    assert codes == (0, 0)


def test_sigint_stops_the_host_and_the_azurite_and_emulator_it_started(tmp_path):
    blob, queue, table, emulator = (free_port() for _ in range(4))
    storage = (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{blob}/{ACCOUNT};QueueEndpoint=http://127.0.0.1:{queue}/{ACCOUNT};"
        f"TableEndpoint=http://127.0.0.1:{table}/{ACCOUNT};"
    )
    env = {
        "AzureWebJobsStorage": storage,
        "COMMERCE_BASE_URL": f"http://127.0.0.1:{emulator}/Commerce",
        "WORK_QUEUE": "work-sigint",
        "TICK_SCHEDULE": NEVER,
        "DEADLETTER_TABLE_NAME": "deadletters",
    }
    handle = start_devhost_process(
        env=env,
        app=APP,
        timeout=60,
        args=["--port", "0", "--emulator-port", str(emulator), "--azurite-location", str(tmp_path)],
    )
    children = handle.children
    try:
        assert set(children) == {"azurite", "commerce-emulator"}
        assert all(pid_alive(pid) for pid in children.values())
        assert is_listening(queue) and is_listening(emulator)
        # Provisioned: the trigger queues (and the dead-letter table) exist in the Azurite it started.
        names = {q.name for q in QueueServiceClient.from_connection_string(storage).list_queues()}
        tables = {t.name for t in TableServiceClient.from_connection_string(storage).list_tables()}
        assert {"work-sigint", "work-sigint-poison"} <= names and "deadletters" in tables
    finally:
        started = time.monotonic()
        code = handle.stop(timeout=10)
        elapsed = time.monotonic() - started
    assert code == 0
    assert elapsed < 5, elapsed
    assert not any(pid_alive(pid) for pid in children.values())
    assert not is_listening(queue) and not is_listening(emulator)
