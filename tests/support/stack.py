"""The whole product on real parts, in this process: Azurite queues and tables, the Commerce emulator
over HTTP, and the local Functions host driving the real ``function_app.app``. Each stack gets its
own queue and table names, so tests never see each other's messages."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

import function_app
from devhost.local_host import LocalHost
from shared.adapters.storage import StorageFactory
from shared.core.dead_letters import DeadLetter
from shared.runtime import Runtime, build_runtime
from tests.support.repo import SAMPLE

CUSTOM_EVENT = "microsoft.custom_event.name"
PRODUCT_LOGGERS = ("customer_sync", "shared.adapters.commerce")

# host.json for tests: the production semantics with shorter clocks.
TEST_HOST_JSON = {
    "version": "2.0",
    "extensions": {
        "queues": {
            "batchSize": 8,
            "newBatchThreshold": 4,
            "maxDequeueCount": 3,
            "visibilityTimeout": "00:00:01",
            "maxPollingInterval": "00:00:00.100",
            "messageEncoding": "base64",
        }
    },
}


class TelemetryCapture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def custom_events(self, name: str | None = None) -> list[logging.LogRecord]:
        return [
            r
            for r in self.records
            if getattr(r, CUSTOM_EVENT, None) and (name is None or getattr(r, CUSTOM_EVENT) == name)
        ]

    def outcomes(self) -> list[str]:
        return [r.outcome for r in self.custom_events("CustomerSyncOutcome")]


@dataclass
class Stack:
    host: LocalHost
    runtime: Runtime
    env: dict
    emulator: object
    storage: StorageFactory
    telemetry: TelemetryCapture
    host_json: Path
    extra: dict = field(default_factory=dict)

    @property
    def events_url(self) -> str:
        return f"{self.host.http_url}/customers/events"

    def post(self, body, **kwargs) -> requests.Response:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
        return requests.post(self.events_url, data=data, headers=headers, timeout=30, **kwargs)

    def wait(self, timeout: float = 30.0) -> None:
        self.host.wait_idle(timeout)

    def queue(self, name: str | None = None):
        return self.storage.queue(name or self.runtime.settings.events_queue)

    def raw_queue_messages(self, name: str) -> list[str]:
        """Peeked message texts as stored (base64 on the wire), decoded here by hand."""
        from azure.storage.queue import QueueClient

        raw = QueueClient.from_connection_string(self.env["AzureWebJobsStorage"], name)
        return [m.content for m in raw.peek_messages(max_messages=32)]

    def deadletters(self) -> list[DeadLetter]:
        return list(self.runtime.deadletters.query())


def event(
    i: int | str = 1, email: str = "ada.lovelace@example.com", occurred: str = "2026-11-26T10:00:00+00:00", **customer
) -> dict:
    return {
        "specVersion": "1.0",
        "eventId": f"evt-{i}",
        "eventType": "customer.updated",
        "occurredAt": occurred,
        "source": "tests",
        "customer": {"email": email, **customer},
    }


def b64decode(text: str) -> str:
    return base64.b64decode(text).decode("utf-8")


def test_env(azurite, emulator, **settings: str) -> dict[str, str]:
    """The sample settings pointed at this Azurite and emulator, with queue and table names unique
    to one test, so tests never see each other's messages or ledger entries."""
    suffix = uuid.uuid4().hex[:10]
    return {
        **SAMPLE,
        "AzureWebJobsStorage": azurite.connection_string,
        "EVENTS_QUEUE_NAME": f"events-{suffix}",
        "DEADLETTER_TABLE_NAME": f"dl{suffix}",
        "LEDGER_TABLE_NAME": f"ledger{suffix}",
        "COMMERCE_BASE_URL": emulator.base_url,
        "COMMERCE_STATIC_DEV_TOKEN": emulator.token,
        **settings,
    }


test_env.__test__ = False  # a helper, not a test


def make_stack(
    azurite,
    emulator,
    tmp_path,
    monkeypatch,
    *,
    settings: dict | None = None,
    host_json: dict | None = None,
    queues: bool = True,
    poison: bool = True,
) -> Stack:
    # Short clocks, like TEST_HOST_JSON's: a retried event comes back after 1-2 s, not 3-5 s.
    env = test_env(
        azurite,
        emulator,
        **{
            "COMMERCE_READ_TIMEOUT_SECONDS": "1.0",
            "RETRY_BASE_DELAY_SECONDS": "1",
            "RETRY_MAX_DELAY_SECONDS": "2",
            **(settings or {}),
        },
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "host.json"
    path.write_text(json.dumps(host_json or TEST_HOST_JSON))
    capture = TelemetryCapture()
    for name in PRODUCT_LOGGERS:
        logging.getLogger(name).addHandler(capture)
        logging.getLogger(name).setLevel(logging.DEBUG)
    runtime = build_runtime(env, host_json=path)
    function_app.use_runtime(runtime)
    from shared.core import telemetry_names as names

    functions = None if poison else [names.FUNCTION_INGEST, names.FUNCTION_HEALTH, names.FUNCTION_PROCESS]
    host = LocalHost(
        function_app.app,
        host_json=path,
        env=env,
        functions=functions,
        storage_connection=azurite.connection_string,
        timers=False,
        queues=queues,
    )
    host.start()
    return Stack(host, runtime, env, emulator, runtime.storage, capture, path)
