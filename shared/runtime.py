"""The composition root: builds every long-lived object once per process from the app settings.

Credentials, HTTP sessions and storage clients are expensive to make and safe to share across
threads, so they live here for the life of the worker; the triggers in ``function_app.py`` only
fetch them. Tests build their own ``Runtime`` (or parts of it) with other dependencies.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from azure.storage.queue import QueueClient

from shared.adapters.commerce.auth import build_token_provider
from shared.adapters.commerce.client import CallRecord, CommerceClient
from shared.adapters.dead_letter_table import DeadLetterStore
from shared.adapters.ledger_table import LedgerStore
from shared.adapters.storage import StorageFactory, StorageQueueSender, ensure_queue, ensure_table
from shared.adapters.telemetry import Telemetry
from shared.core.settings import Settings, load_settings
from shared.core.sources.config import WebhookConfig, load_webhook_config
from shared.usecases.erasure import ErasureDeps
from shared.usecases.ingest import IngestDeps
from shared.usecases.processor import CallCounter, ProcessorDeps, keep_stranded
from shared.usecases.queue_monitor import StrandedQueues

if TYPE_CHECKING:  # imported lazily where the dependencies are built; named here for the annotations
    from shared.usecases.backfill import BackfillDeps
    from shared.usecases.webhooks import WebhookDeps

log = logging.getLogger("customer_sync.runtime")

HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
DEFAULT_MAX_DEQUEUE_COUNT = 5


def utcnow() -> datetime:
    return datetime.now(UTC)


def max_dequeue_count(host_json: Path = HOST_JSON) -> int:
    """The host's maxDequeueCount, read from the host.json deployed beside the code."""
    try:
        queues = json.loads(host_json.read_text())["extensions"]["queues"]
        return int(queues.get("maxDequeueCount", DEFAULT_MAX_DEQUEUE_COUNT))
    except (OSError, KeyError, ValueError, TypeError):
        return DEFAULT_MAX_DEQUEUE_COUNT


@dataclass
class Runtime:
    settings: Settings
    storage: StorageFactory
    telemetry: Telemetry
    commerce: CommerceClient
    deadletters: DeadLetterStore
    ledger: LedgerStore
    calls: CallCounter
    max_dequeue_count: int
    webhooks: WebhookConfig | None = None  # the webhook sources (shared.core.sources); None: none served

    @cached_property
    def events_sender(self) -> StorageQueueSender:
        return StorageQueueSender(self.storage.queue(self.settings.events_queue))

    @cached_property
    def backfill_sender(self) -> StorageQueueSender:
        return StorageQueueSender(self.storage.queue(self.settings.backfill_queue))

    @cached_property
    def backfill_deps(self) -> BackfillDeps:
        """The processor as for live events, but its retries and deferrals go back to the backfill queue,
        and at most BACKFILL_MAX_CONCURRENCY messages run at once in this process (``shared.usecases.backfill``)."""
        from dataclasses import replace

        from shared.usecases.backfill import BackfillDeps, BackfillGate

        return BackfillDeps(
            processor=replace(self.processor_deps, requeue=self.backfill_sender.send),
            gate=BackfillGate(self.settings.backfill_max_concurrency),
            send=self.backfill_sender.send,
        )

    @cached_property
    def ingest_deps(self) -> IngestDeps:
        return IngestDeps(
            settings=self.settings, queue=self.events_sender, telemetry=self.telemetry, clock=utcnow, ledger=self.ledger
        )

    @cached_property
    def processor_deps(self) -> ProcessorDeps:
        s = self.settings
        return ProcessorDeps(
            commerce=self.commerce,
            deadletters=self.deadletters,
            telemetry=self.telemetry,
            mapping=s.mapping,
            max_dequeue_count=self.max_dequeue_count,
            calls=self.calls,
            clock=utcnow,
            ledger=self.ledger,
            requeue=self.events_sender.send,
            retry=s.retry,
            lease_seconds=s.ledger_lease_seconds,
            call_budget=self.commerce.call_budget,
            hash_key=s.email_hash_key,
        )

    def _raw_queue(self, name: str) -> QueueClient:
        # No decode policy: a message that is not base64 would make a decoding client's peek or receive
        # raise, and with it the whole monitor run.
        return self.storage.queue_service().get_queue_client(name)

    @cached_property
    def webhook_deps(self) -> WebhookDeps:
        from shared.adapters.sender_tables import DeliveryStore, SenderIdentityStore
        from shared.core.sources.registry import SourceRegistry
        from shared.usecases.webhooks import WebhookDeps

        config = self.webhooks or WebhookConfig()
        return WebhookDeps(
            ingest=self.ingest_deps,
            config=config,
            registry=SourceRegistry(config),
            deliveries=DeliveryStore(self.storage.table(config.delivery_table)),
            identities=SenderIdentityStore(self.storage.table(config.identity_table), self.settings.email_hash_key),
            deadletters=self.deadletters,
            erasure=self.erasure_deps,
        )

    @cached_property
    def erasure_deps(self) -> ErasureDeps:
        """What an erasure touches (the webhook handler and the operator's tool erase the same way):
        the ledger, dead letters, both poison queues and their own poison queues, and the webhook
        senders' id records when webhooks are configured."""
        s = self.settings
        names = (
            s.poison_queue,
            s.poison_queue + "-poison",
            s.backfill_poison_queue,
            s.backfill_poison_queue + "-poison",
        )
        senders = None
        if self.webhooks is not None and self.webhooks.identity_table:
            from shared.adapters.sender_tables import SenderIdentityStore

            senders = SenderIdentityStore(self.storage.table(self.webhooks.identity_table), s.email_hash_key)
        return ErasureDeps(
            ledger=self.ledger,
            deadletters=self.deadletters,
            poison_queues=[self.storage.queue_service().get_queue_client(name) for name in names],
            clock=utcnow,
            telemetry=self.telemetry,
            senders=senders,
        )

    def monitored_queues(self) -> list[QueueClient]:
        s = self.settings
        return [
            self._raw_queue(name)
            for name in (s.events_queue, s.poison_queue, s.backfill_queue, s.backfill_poison_queue)
        ]

    def stranded_queues(self) -> list[StrandedQueues]:
        """Each poison queue (live events, backfill) with its own poison queue, read as stored: what
        is there may not be base64."""
        deps = self.processor_deps
        return [
            StrandedQueues(
                poison=self._raw_queue(poison),
                last=self._raw_queue(poison + "-poison"),
                keep=lambda body, dequeue_count, readable: keep_stranded(body, dequeue_count, readable, deps),
            )
            for poison in (self.settings.poison_queue, self.settings.backfill_poison_queue)
        ]


def build_runtime(
    env: Mapping[str, str], *, host_json: Path = HOST_JSON, telemetry: Telemetry | None = None
) -> Runtime:
    settings = load_settings(env)  # raises SettingsError naming every missing setting
    webhooks = load_webhook_config(env)  # the same, for the webhook sources' settings and mapping files
    telemetry = telemetry or Telemetry()
    calls = CallCounter()

    def on_call(record: CallRecord) -> None:
        calls.add()
        telemetry.commerce_call(record.operation, record.status, record.duration_s)

    commerce = CommerceClient(
        settings.commerce,
        build_token_provider(settings.commerce, logger=log),
        on_call=on_call,
        max_concurrency=settings.commerce_max_concurrency,
    )
    storage = StorageFactory(env)
    deadletter_table = storage.table(settings.deadletter_table)
    ledger_table = storage.table(settings.ledger_table)
    if settings.storage_connection != "identity":
        # A connection string means Azurite or a hand-made account: create what is missing. With
        # identity-based storage, infra/ provisions the queues and tables and the identity's roles
        # are scoped to them, so nothing is created (or attempted) at start-up.
        try:
            ensure_table(deadletter_table)
            ensure_table(ledger_table)
            for table in (webhooks.delivery_table, webhooks.identity_table):
                ensure_table(storage.table(table))
            for name in (
                settings.events_queue,
                settings.poison_queue,
                settings.backfill_queue,
                settings.backfill_poison_queue,
            ):
                ensure_queue(storage.queue(name))
        except Exception as error:  # noqa: BLE001 - not fatal: the first real use reports it properly
            log.warning("could not check queues/tables at start-up: %s", type(error).__name__)
    return Runtime(
        settings=settings,
        storage=storage,
        telemetry=telemetry,
        commerce=commerce,
        deadletters=DeadLetterStore(deadletter_table),
        ledger=LedgerStore(ledger_table),
        calls=calls,
        max_dequeue_count=max_dequeue_count(host_json),
        webhooks=webhooks,
    )
