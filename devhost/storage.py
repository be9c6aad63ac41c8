"""Storage connection strings and the queues/tables the local run needs."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from azure.core.exceptions import ResourceExistsError

from devhost.azurite import ACCOUNT, DEV_KEY

log = logging.getLogger("devhost.storage")
DEFAULT_PORTS = {"blob": 10000, "queue": 10001, "table": 10002}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def expand_connection_string(value: str) -> str:
    """``UseDevelopmentStorage=true`` -> the explicit Azurite connection string on the default ports."""
    if re.fullmatch(r"\s*usedevelopmentstorage\s*=\s*true\s*;?\s*", value, flags=re.IGNORECASE):
        return f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={DEV_KEY};" + "".join(
            f"{service.capitalize()}Endpoint=http://127.0.0.1:{port}/{ACCOUNT};"
            for service, port in DEFAULT_PORTS.items()
        )
    return value


def local_storage_ports(connection_string: str) -> dict[str, int] | None:
    """Ports of blob/queue/table when every endpoint is on this machine (an Azurite to start), else None."""
    parts = dict(p.split("=", 1) for p in expand_connection_string(connection_string).split(";") if "=" in p)
    ports = {}
    for service in DEFAULT_PORTS:
        endpoint = parts.get(f"{service.capitalize()}Endpoint")
        if not endpoint:
            return None
        url = urlsplit(endpoint)
        if url.hostname not in LOOPBACK or url.port is None:
            return None
        ports[service] = url.port
    return ports


def connection_for(name: str, env: Mapping[str, str], default_connection: str | None = None) -> str:
    """The connection string a binding's ``connection`` names (AzureWebJobsStorage when empty)."""
    name = name or "AzureWebJobsStorage"
    if name == "AzureWebJobsStorage" and default_connection:
        return expand_connection_string(default_connection)
    for key in (name, f"AzureWebJobs{name}"):
        if env.get(key):
            return expand_connection_string(env[key])
    raise ValueError(
        f"storage connection {name!r} is not set (identity-based connections are not supported by the local host)"
    )


def ensure_queues(connection_string: str, names: Iterable[str]) -> None:
    from azure.storage.queue import QueueServiceClient

    service = QueueServiceClient.from_connection_string(expand_connection_string(connection_string))
    for name in names:
        try:
            service.create_queue(name)
        except ResourceExistsError:
            pass


def ensure_tables(connection_string: str, names: Iterable[str]) -> None:
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(expand_connection_string(connection_string))
    for name in names:
        service.create_table_if_not_exists(name)


def clear_table(connection_string: str, name: str) -> int:
    """Delete every entity of a table (a local, small one); returns how many there were."""
    from azure.data.tables import TableClient

    table = TableClient.from_connection_string(expand_connection_string(connection_string), name)
    count = 0
    for entity in table.list_entities(select=["PartitionKey", "RowKey"]):
        table.delete_entity(entity["PartitionKey"], entity["RowKey"])
        count += 1
    return count
