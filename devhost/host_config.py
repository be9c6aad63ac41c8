"""What the local host reads from host.json, with the Functions host's documented defaults.

Only the parts this host reproduces are modelled: ``extensions.queues``, ``extensions.http.routePrefix``
and ``functionTimeout`` (used to size the in-flight visibility of a received queue message).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# d.hh:mm:ss[.fff] or hh:mm:ss[.fff] — the .NET TimeSpan text form host.json uses.
_TIMESPAN = re.compile(r"^(?:(?P<d>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d+)?)$")


def parse_timespan(text: str) -> timedelta:
    match = _TIMESPAN.match(text.strip())
    if not match:
        raise ValueError(f"not a TimeSpan (expected [d.]hh:mm:ss): {text!r}")
    return timedelta(
        days=int(match["d"] or 0), hours=int(match["h"]), minutes=int(match["m"]), seconds=float(match["s"])
    )


class QueueOptions(BaseModel):
    """host.json ``extensions.queues``; field defaults are the host's documented defaults."""

    model_config = ConfigDict(frozen=True)

    batch_size: int = Field(16, ge=1, le=32)
    new_batch_threshold: int = Field(ge=0)
    max_dequeue_count: int = Field(5, ge=1)
    visibility_timeout: timedelta = timedelta(0)
    max_polling_interval: timedelta = timedelta(minutes=1)
    message_encoding: str = "base64"

    @property
    def max_concurrency(self) -> int:
        # The host fetches a new batch once in-flight work drops to newBatchThreshold, so at most
        # batchSize + newBatchThreshold invocations run at once per queue.
        return self.batch_size + self.new_batch_threshold


class HostOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    queues: QueueOptions
    route_prefix: str = "api"
    function_timeout: timedelta = timedelta(minutes=5)


def host_options(raw: Mapping[str, Any], *, cpu_count: int | None = None) -> HostOptions:
    """Pure: host.json content -> HostOptions. ``cpu_count`` feeds the newBatchThreshold default."""
    cores = cpu_count or os.cpu_count() or 1
    extensions = raw.get("extensions") or {}
    q = extensions.get("queues") or {}
    batch_size = int(q.get("batchSize", 16))
    encoding = str(q.get("messageEncoding", "base64")).lower()
    if encoding not in ("base64", "none"):
        raise ValueError(f"extensions.queues.messageEncoding must be base64 or none, not {encoding!r}")
    queues = QueueOptions(
        batch_size=batch_size,
        # Documented default: batchSize/2 x number of cores.
        new_batch_threshold=int(q.get("newBatchThreshold", (batch_size // 2) * cores)),
        max_dequeue_count=int(q.get("maxDequeueCount", 5)),
        visibility_timeout=parse_timespan(q["visibilityTimeout"]) if "visibilityTimeout" in q else timedelta(0),
        max_polling_interval=_polling_interval(q.get("maxPollingInterval")),
        message_encoding=encoding,
    )
    http = extensions.get("http") or {}
    timeout = raw.get("functionTimeout")
    return HostOptions(
        queues=queues,
        route_prefix=str(http.get("routePrefix", "api")).strip("/"),
        function_timeout=parse_timespan(timeout) if timeout else timedelta(minutes=5),
    )


def _polling_interval(value: Any) -> timedelta:
    if value is None:
        return timedelta(minutes=1)
    if isinstance(value, (int, float)):  # the host also accepts milliseconds as a number
        return timedelta(milliseconds=value)
    return parse_timespan(str(value))


def load_host_json(source: Mapping[str, Any] | Path | str) -> dict[str, Any]:
    if isinstance(source, Mapping):
        return dict(source)
    return json.loads(Path(source).read_text(encoding="utf-8"))
