"""Azure Storage clients for the app's own SDK calls (ingest writes, dead letters, queue metrics).

The same ``AzureWebJobsStorage`` connection the triggers use: a connection string locally (Azurite),
the identity-based ``AzureWebJobsStorage__*`` settings in Azure (no shared keys).
"""

from __future__ import annotations

from typing import Mapping

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.queue import (
    QueueClient,
    QueueServiceClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

PREFIX = "AzureWebJobsStorage"


def _transport_options(url: str) -> dict:
    """Proxy settings read once, at start-up, instead of on every request.

    With the SDK's default transport, requests re-scans the proxy environment variables on every call:
    measured with bench/pipeline.py under cProfile, that is about a seventh of the CPU the three ledger
    operations of an event cost. The variables do not change during a worker's life.
    """
    import requests
    from azure.core.pipeline.transport import RequestsTransport

    proxies = requests.utils.get_environ_proxies(url) if url else {}
    options: dict = {"transport": RequestsTransport(use_env_settings=False)}
    if proxies:
        options["proxies"] = proxies
    return options


class StorageFactory:
    """Builds queue and table clients once per process; they are thread-safe and pool connections."""

    def __init__(self, env: Mapping[str, str], credential: object | None = None):
        """``credential`` is for operator tools run outside Azure (e.g. AzureCliCredential); the app
        itself uses the managed identity named by ``AzureWebJobsStorage__clientId``."""
        self._conn = env.get(PREFIX, "").strip()
        self._queue_uri = env.get(f"{PREFIX}__queueServiceUri", "").strip()
        self._table_uri = env.get(f"{PREFIX}__tableServiceUri", "").strip()
        account = env.get(f"{PREFIX}__accountName", "").strip()
        if account:
            self._queue_uri = self._queue_uri or f"https://{account}.queue.core.windows.net"
            self._table_uri = self._table_uri or f"https://{account}.table.core.windows.net"
        self._client_id = env.get(f"{PREFIX}__clientId", "").strip() or None
        self._credential = credential
        self._queue_service: QueueServiceClient | None = None
        self._table_service: TableServiceClient | None = None

    def _identity(self):
        if self._credential is None:
            from azure.identity import ManagedIdentityCredential

            self._credential = ManagedIdentityCredential(client_id=self._client_id)
        return self._credential

    def queue_service(self) -> QueueServiceClient:
        if self._queue_service is None:
            kwargs = dict(message_encode_policy=TextBase64EncodePolicy(),
                          message_decode_policy=TextBase64DecodePolicy(),
                          **_transport_options(self._queue_uri or "https://queue.core.windows.net"))
            if self._conn:
                self._queue_service = QueueServiceClient.from_connection_string(self._conn, **kwargs)
            else:
                self._queue_service = QueueServiceClient(self._queue_uri, credential=self._identity(),
                                                         **kwargs)
        return self._queue_service

    def queue(self, name: str) -> QueueClient:
        # Base64 both ways: the queue trigger's default messageEncoding.
        return self.queue_service().get_queue_client(
            name, message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy())

    def table_service(self) -> TableServiceClient:
        if self._table_service is None:
            options = _transport_options(self._table_uri or "https://table.core.windows.net")
            if self._conn:
                self._table_service = TableServiceClient.from_connection_string(self._conn, **options)
            else:
                self._table_service = TableServiceClient(self._table_uri, credential=self._identity(),
                                                         **options)
        return self._table_service

    def table(self, name: str) -> TableClient:
        return self.table_service().get_table_client(name)


class StorageQueueSender:
    """Puts event envelopes on the event queue (ingest, and replay of dead letters)."""

    def __init__(self, queue: QueueClient):
        self.queue = queue

    def send(self, message: str, delay_seconds: int = 0) -> None:
        """``delay_seconds``: the message stays invisible that long (the processor's retries)."""
        # time_to_live=-1: an event waits as long as it takes; the default (7 days) would lose it.
        self.queue.send_message(message, time_to_live=-1, visibility_timeout=delay_seconds or None)


def ensure_queue(queue: QueueClient) -> None:
    try:
        queue.create_queue()
    except ResourceExistsError:
        pass


def ensure_table(table: TableClient) -> None:
    try:
        table.create_table()
    except ResourceExistsError:
        pass

