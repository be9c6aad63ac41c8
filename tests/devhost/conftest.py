"""Fixtures for the local host's own tests: a LocalHost factory over the fixture app."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.devhost.fixture_app import RECORDER, app

# Small values keep the integration tests fast (the brief's visibilityTimeout 1 s, polling 200 ms).
FAST_HOST_JSON = {
    "extensions": {
        "queues": {
            "batchSize": 4,
            "newBatchThreshold": 2,
            "maxDequeueCount": 3,
            "visibilityTimeout": "00:00:01",
            "maxPollingInterval": "00:00:00.200",
            "messageEncoding": "base64",
        }
    }
}
NEVER = "0 0 0 1 1 *"  # a timer schedule that does not fire during a test


def queues_json(**overrides) -> dict:
    return {"extensions": {"queues": {**FAST_HOST_JSON["extensions"]["queues"], **overrides}}}


@pytest.fixture
def recorder():
    RECORDER.reset()
    yield RECORDER
    RECORDER.reset()


@pytest.fixture
def work_queue() -> str:
    return f"work-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_host(recorder, work_queue):
    """Build and start a LocalHost over the fixture app; every host is stopped after the test."""
    from devhost.local_host import LocalHost

    hosts = []

    def make(*, storage_connection: str = "UseDevelopmentStorage=true", host_json=None, env=None, **kwargs):
        environment = {"WORK_QUEUE": work_queue, "TICK_SCHEDULE": NEVER, **(env or {})}
        host = LocalHost(
            app, host_json=host_json or FAST_HOST_JSON, env=environment, storage_connection=storage_connection, **kwargs
        )
        hosts.append(host)
        return host.start()

    yield make
    for host in hosts:
        host.stop()


def wait_for(condition, timeout=15.0):
    """The condition's first truthy value; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return value
