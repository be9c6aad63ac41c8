"""Event id and correlation id on every log line written while one event or request is handled.

The triggers set the ids once per invocation (``with log_context(...)``); a filter on each of the
product's loggers copies them onto every record as attributes (customDimensions in Application
Insights) and appends them to the message text for plain-text logs. Only identifiers go in here:
the email appears as its keyed hash, never in clear.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

# Read-only default: each log_context sets a new dict, none is ever mutated in place.
_ids: ContextVar[Mapping[str, str]] = ContextVar("customer_sync_log_ids", default=MappingProxyType({}))

# The loggers of the product's own code (children do not inherit a parent logger's filters).
LOGGER_NAMES = (
    "customer_sync",
    "customer_sync.ingest",
    "customer_sync.processor",
    "customer_sync.telemetry",
    "customer_sync.runtime",
    "customer_sync.queue_monitor",
    "shared.adapters.commerce.client",
)


@contextmanager
def log_context(**ids: str | None) -> Iterator[None]:
    token = _ids.set({**_ids.get(), **{k: v for k, v in ids.items() if v}})
    try:
        yield
    finally:
        _ids.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ids = _ids.get()
        if ids and not getattr(record, "_log_ids_added", False):
            for key, value in ids.items():
                if not hasattr(record, key):
                    setattr(record, key, value)
            suffix = " ".join(f"{k}={v}" for k, v in ids.items()).replace("%", "%%")
            record.msg = f"{record.msg} [{suffix}]"
            record._log_ids_added = True
        return True


_FILTER = ContextFilter()


def install() -> None:
    """Idempotent: attach the filter to every product logger."""
    for name in LOGGER_NAMES:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
