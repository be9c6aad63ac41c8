"""Queue depth and oldest-message age as metrics (Storage's own queue metric is account-wide and
hourly, so it cannot watch one queue), dead-letter retention, and the messages no trigger will take.

Those stranded messages exist because of how the Functions host reads a queue: a message that is not
base64 (a sender that skipped the encoding) goes to ``<queue>-poison`` at once; the poison collector's
trigger cannot decode it either, so the host moves it on to ``<queue>-poison-poison``, which no trigger
reads. Where that queue cannot be written (in Azure the identity has roles on the two provisioned queues
only), the move fails and the message keeps coming back in ``<queue>-poison`` instead. So each run
reads both queues as stored (no base64 decoding assumed) and keeps what no trigger can read as a dead
letter (``unreadable_message``; a readable message in the last queue, whose collection failed
``maxDequeueCount`` times, as ``max_dequeue_exceeded``), deleting each message only once its dead
letter is written. Messages the poison collector can read are left to it.

A message whose dead letter cannot be written stays queued (invisible for ``_HOLD_SECONDS``, so this run
does not take it again). When the message itself made the write fail (the store refused it as invalid,
or it could not be encoded) the run goes on with the next one: one such message must not stop the
collection of every message behind it, run after run. It stops at once when the store itself fails
(unreachable, throttling, a 5xx), and after ``FAILURES_PER_RUN`` failures of either kind in a queue.
"""

from __future__ import annotations

import binascii
import logging
from base64 import b64decode
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.storage.queue import QueueClient
from azure.storage.queue import QueueMessage as StoredMessage

if TYPE_CHECKING:  # adapters are injected; only their types are named here
    from shared.adapters.dead_letter_table import DeadLetterStore
    from shared.adapters.telemetry import Telemetry


log = logging.getLogger("customer_sync.queue_monitor")

# Per queue and run, so a flood of bad messages costs each run a bounded time; the rest wait for the next.
STRANDED_PER_RUN = 64
FAILURES_PER_RUN = 8  # per queue and run
_PAGE = 32  # the most one receive returns
# Long enough to write the dead letter; a run that dies meanwhile leaves the message to the next one.
_HOLD_SECONDS = 60
_BASE64_WHITESPACE = str.maketrans("", "", " \t\r\n")


@dataclass(frozen=True)
class QueueReading:
    queue: str
    depth: int
    oldest_age_s: float


@dataclass(frozen=True)
class StrandedQueues:
    """Clients that read the queues as stored, and the dead-letter write: ``keep(body, dequeue_count,
    readable)`` raises when the dead letter could not be written."""

    poison: QueueClient  # <events>-poison
    last: QueueClient  # <events>-poison-poison
    keep: Callable[[str | bytes, int, bool], object]
    limit: int = STRANDED_PER_RUN


def host_readable(content: str | None) -> bytes | None:
    """The body a queue trigger would get, or None when the host cannot read the message: base64 as
    .NET decodes it (spaces, tabs and line breaks skipped, nothing else outside the alphabet), and
    UTF-8 text, which the trigger binding requires."""
    try:
        body = b64decode((content or "").translate(_BASE64_WHITESPACE).encode("ascii"), validate=True)
        body.decode("utf-8")
    except (binascii.Error, UnicodeError):
        return None
    return body


def read_queue(queue: QueueClient, now: datetime) -> QueueReading:
    depth = queue.get_queue_properties().approximate_message_count or 0
    oldest = 0.0
    # peek sees only visible messages: a backlog waiting on retries shows in depth, not in age.
    for message in queue.peek_messages(max_messages=1):
        if message.inserted_on:
            oldest = max(0.0, (now - message.inserted_on).total_seconds())
    return QueueReading(queue.queue_name, depth, oldest)


def _receive(queue: QueueClient, count: int) -> list[StoredMessage]:
    pages = queue.receive_messages(messages_per_page=count, visibility_timeout=_HOLD_SECONDS).by_page()
    return list(next(pages, []))


def _collect_from(queue: QueueClient, stranded: StrandedQueues, *, last: bool) -> int:
    """Dead-letter what no trigger can read in ``queue``; in the last queue, everything."""
    kept, failed, stopped, seen, left_to_collector = 0, 0, False, 0, []
    try:
        while seen < stranded.limit and not stopped:
            batch = _receive(queue, min(_PAGE, stranded.limit - seen))
            if not batch:
                break
            seen += len(batch)
            for message in batch:
                if stopped:
                    break  # the rest of the batch comes back after _HOLD_SECONDS, for the next run
                body = host_readable(message.content)
                if body is not None and not last:
                    left_to_collector.append(message)
                    continue
                try:
                    if body is None:
                        stranded.keep(message.content or "", message.dequeue_count or 1, False)
                    else:
                        stranded.keep(body, message.dequeue_count or 1, True)
                except Exception as error:  # noqa: BLE001 - whatever the store raised, the message stays
                    failed += 1
                    log.warning(
                        "a stranded message on %s stays queued: dead letter not written (%s)",
                        queue.queue_name,
                        type(error).__name__,
                    )
                    # A failing store: the next message would fare no better.
                    stopped = failed >= FAILURES_PER_RUN or not _message_failed(error)
                    continue
                # Only now: a message is never gone before its dead letter exists.
                _quietly(partial(queue.delete_message, message, pop_receipt=message.pop_receipt), "delete", queue)
                kept += 1
    except ResourceNotFoundError:
        pass  # never created: the host makes poison queues on first use, so nothing was stranded there
    except HttpResponseError as error:
        if error.status_code == 403 and last:
            # The identity has no role on it (infra/ provisions only the two queues the app uses), so
            # the host cannot move anything there either: those messages stay in <queue>-poison.
            log.info("queue %s not readable (403): nothing can be stranded there", queue.queue_name)
        else:
            log.warning(
                "could not collect stranded messages from %s: %s %s",
                queue.queue_name,
                type(error).__name__,
                error.status_code,
            )
    except (AzureError, OSError) as error:
        log.warning("could not collect stranded messages from %s: %s", queue.queue_name, type(error).__name__)
    if failed:
        log.warning(
            "%d stranded message(s) on %s could not be kept as dead letters this run%s; they stay queued for the next",
            failed,
            queue.queue_name,
            ", collection stopped there" if stopped else "",
        )
    for message in left_to_collector:  # held only while this run looked at the rest
        _quietly(
            partial(queue.update_message, message, pop_receipt=message.pop_receipt, visibility_timeout=0),
            "release",
            queue,
        )
    return kept


def _message_failed(error: Exception) -> bool:
    """True when the message made the dead-letter write fail (invalid for the store, or not
    encodable), so the next one may well succeed; False when the store did."""
    if isinstance(error, HttpResponseError):
        return error.status_code in (400, 413)  # e.g. PropertyValueTooLarge, InvalidInput, EntityTooLarge
    return not isinstance(error, (AzureError, OSError))


def _quietly(action: Callable[[], object], what: str, queue: QueueClient) -> None:
    try:
        action()
    except (AzureError, OSError) as error:
        # It comes back after _HOLD_SECONDS; a second dead letter for it replaces the first (same key).
        log.warning("could not %s a message on %s: %s", what, queue.queue_name, type(error).__name__)


def collect_stranded(stranded: StrandedQueues) -> int:
    """Dead letters written this run for messages no trigger will take (both queues)."""
    kept = _collect_from(stranded.poison, stranded, last=False) + _collect_from(stranded.last, stranded, last=True)
    if kept:
        log.warning("kept %d message(s) no queue trigger could take as dead letters", kept)
    return kept


def report(
    queues: list[QueueClient],
    deadletters: DeadLetterStore,
    retention_days: int,
    telemetry: Telemetry,
    now: datetime,
    *,
    stranded: Sequence[StrandedQueues] = (),
) -> list[QueueReading]:
    for pair in stranded:  # first, so the readings and the dead-letter count below include its work
        collect_stranded(pair)
    readings = [read_queue(q, now) for q in queues]
    for r in readings:
        telemetry.queue_metrics(r.queue, r.depth, r.oldest_age_s)
        log.info("queue %s depth %d oldest %.0fs", r.queue, r.depth, r.oldest_age_s)
    purged = deadletters.purge_older_than(retention_days, now)
    held = deadletters.count()
    telemetry.deadletter_count(held)
    log.info("dead letters held %d, purged %d older than %d days", held, purged, retention_days)
    return readings
