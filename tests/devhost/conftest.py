"""Fixtures for the local host's own tests: a LocalHost factory over the fixture app."""

from __future__ import annotations

import uuid

import pytest

from tests.support.fixture_app import RECORDER, app
from tests.support.fixture_host import FAST_HOST_JSON, NEVER


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
