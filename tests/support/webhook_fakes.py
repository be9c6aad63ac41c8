"""In-memory stand-ins for the webhook tests: a table with Azure Table's conditional-write rules, a
queue, and a clock. Integration tests use the real tables on Azurite."""

from __future__ import annotations

import itertools
import json
import re
import threading
from datetime import datetime

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from shared.adapters.dead_letter_table import DeadLetterStore
from shared.adapters.memory_ledger import MemoryLedger
from shared.adapters.sender_tables import DeliveryStore, SenderIdentityStore
from shared.adapters.telemetry import Telemetry
from shared.core.settings import load_settings
from shared.core.sources.config import load_webhook_config
from shared.core.sources.registry import SourceRegistry
from shared.usecases.erasure import ErasureDeps
from shared.usecases.ingest import IngestDeps
from shared.usecases.webhooks import WebhookDeps
from tests.support.builders import NOW
from tests.support.repo import ROOT, SAMPLE

WEBHOOKS = ROOT / "samples" / "webhooks"


class Entity(dict):
    def __init__(self, data: dict, etag: str):
        super().__init__(data)
        self.metadata = {"etag": etag}


class MemoryTable:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Entity] = {}
        self.fail: Exception | None = None  # raised by every call while set
        self._etags = itertools.count(1)
        self._lock = threading.Lock()

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    def _store(self, entity: dict) -> dict:
        stored = Entity(dict(entity), f"W/{next(self._etags)}")
        self.rows[(entity["PartitionKey"], entity["RowKey"])] = stored
        return {"etag": stored.metadata["etag"]}

    def get_entity(self, pk, rk, **_):
        self._check()
        with self._lock:
            if (pk, rk) not in self.rows:
                raise ResourceNotFoundError("not found")
            row = self.rows[(pk, rk)]
            return Entity(dict(row), row.metadata["etag"])

    def create_entity(self, entity, **_):
        self._check()
        with self._lock:
            if (entity["PartitionKey"], entity["RowKey"]) in self.rows:
                raise ResourceExistsError("exists")
            return self._store(entity)

    def update_entity(self, entity, mode=None, etag=None, match_condition=None, **_):
        self._check()
        with self._lock:
            key = (entity["PartitionKey"], entity["RowKey"])
            if key not in self.rows:
                raise ResourceNotFoundError("not found")
            if etag is not None and self.rows[key].metadata["etag"] != etag:
                raise ResourceModifiedError("etag")
            return self._store(entity)

    def upsert_entity(self, entity, mode=None, **_):
        self._check()
        with self._lock:
            key = (entity["PartitionKey"], entity["RowKey"])
            merged = {**self.rows.get(key, {}), **entity} if str(mode).endswith("MERGE") else entity
            return self._store(merged)

    def delete_entity(self, pk, rk, **_):
        self._check()
        with self._lock:
            if (pk, rk) not in self.rows:
                raise ResourceNotFoundError("not found")
            del self.rows[(pk, rk)]

    def list_entities(self, **_):
        self._check()
        return [Entity(dict(r), r.metadata["etag"]) for r in list(self.rows.values())]

    def query_entities(self, query, parameters=None, **_):
        self._check()
        params = parameters or {}
        rows = []
        for (_pk, _rk), row in list(self.rows.items()):
            ok = True
            for clause in query.split(" and "):
                m = re.match(r"(\w+) (eq|ge|lt) @(\w+)", clause.strip())
                if not m:
                    continue
                field, op, name = m.groups()
                value, want = row.get(field), params[name]
                ok &= {"eq": value == want, "ge": value >= want, "lt": value < want}[op]
            if ok:
                rows.append(Entity(dict(row), row.metadata["etag"]))
        return rows


class MemoryQueue:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.fail: Exception | None = None

    def send(self, message: str, delay_seconds: int = 0) -> None:
        if self.fail is not None:
            raise self.fail
        self.messages.append(message)

    def events(self) -> list[dict]:
        return [json.loads(m)["event"] for m in self.messages]


class Fixture:
    """The webhook handler's dependencies on memory tables and a memory queue."""

    def __init__(self, now: datetime = NOW, **settings: str):
        env = {**SAMPLE, **settings}
        self.settings = load_settings(env)
        self.config = load_webhook_config(env)
        self.now = now
        self.queue = MemoryQueue()
        self.deliveries_table, self.identities_table = MemoryTable(), MemoryTable()
        self.deadletter_table = MemoryTable()
        self.telemetry = Telemetry()
        self.ledger = MemoryLedger()
        self.deps = WebhookDeps(
            ingest=IngestDeps(
                settings=self.settings,
                queue=self.queue,
                telemetry=self.telemetry,
                clock=lambda: self.now,
                ledger=self.ledger,
            ),
            config=self.config,
            registry=SourceRegistry(self.config),
            deliveries=DeliveryStore(self.deliveries_table),
            identities=SenderIdentityStore(self.identities_table, self.settings.email_hash_key),
            deadletters=DeadLetterStore(self.deadletter_table),
            erasure=ErasureDeps(
                ledger=self.ledger,
                deadletters=DeadLetterStore(self.deadletter_table),
                poison_queues=[],
                clock=lambda: self.now,
                telemetry=self.telemetry,
                senders=SenderIdentityStore(self.identities_table, self.settings.email_hash_key),
            ),
        )

    def secrets(self, source: str) -> tuple[str, ...]:
        return self.config.secrets[source]

    def deadletters(self) -> list:
        return list(self.deps.deadletters.query())
