"""HTTP ingest: validate every event of a request, queue the valid ones, answer per event.

Pure decisions over injected ports (the queue sender, the clock, telemetry): ``function_app.py`` only
adapts the Functions request/response objects. Status codes:
- 202: every event queued; 207: some queued, some refused (``results`` per event);
- 422: every event refused; 400 / 413 / 415: the request itself is unusable;
- 503 + Retry-After: the queue could not take an event (the ids already queued are named, so the
  sender can retry only the rest, or all: a duplicate event id is harmless downstream).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, Unpack

from shared.core.contract import (
    MAX_LISTED_PROBLEMS,
    Accepted,
    EventError,
    EventOutcome,
    MultiStatus,
    NormalisedEvent,
    Problem,
)
from shared.core.envelope import MAX_MESSAGE_BYTES, Envelope
from shared.core.failures import classify_failure
from shared.core.json_body import MAX_DEPTH, BodyError, batch_events, parse_json_body, too_deep
from shared.core.ledger_rules import LedgerConflict, LedgerPort, OrderKey, expect_change
from shared.core.privacy import mask_pointer
from shared.core.settings import Settings
from shared.core.sources.models import WebhookProblem
from shared.core.sources.signatures import Reason
from shared.core.validation import EventResult, FieldProblem, validate_batch

if TYPE_CHECKING:  # adapters are injected; only their types are named here
    from shared.adapters.telemetry import Telemetry


log = logging.getLogger("customer_sync.ingest")

PROBLEM_JSON = "application/problem+json"
QUEUE_RETRY_AFTER_SECONDS = 30


class QueueSender(Protocol):
    def send(self, message: str) -> None: ...


@dataclass
class HttpResult:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def json(self) -> str:
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":"))


@dataclass
class IngestDeps:
    settings: Settings
    queue: QueueSender
    telemetry: Telemetry
    clock: Callable[[], datetime]
    ledger: LedgerPort | None = None  # the sync ledger, for marking email changes; None: no marks


class BatchRejected(Exception):
    """The request as a whole is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, title: str, detail: str):
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail


def _json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if not (media == "application/json" or (media.startswith("application/") and media.endswith("+json"))):
        return False
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


def read_batch(body: bytes, content_type: str | None, *, max_events: int, max_bytes: int) -> list[object]:
    """The events of a request body: one event object, an array, or ``{"events": [...]}``."""
    if not _json_media_type(content_type):
        raise BatchRejected(415, "Unsupported Media Type", "send application/json (UTF-8)")
    if len(body) > max_bytes:
        raise BatchRejected(413, "Content Too Large", f"the body exceeds {max_bytes} bytes")
    try:
        data = parse_json_body(body)
        if isinstance(data, (dict, list)) and too_deep(data, MAX_DEPTH):
            raise BodyError("too_deep", f"JSON nesting deeper than {MAX_DEPTH} levels")
        events = batch_events(data)
    except BodyError as wrong:
        raise BatchRejected(400, "Bad Request", wrong.detail) from None
    if len(events) > max_events:
        raise BatchRejected(413, "Content Too Large", f"at most {max_events} events per request")
    return events


def mark_expected_change(ledger: LedgerPort, event: NormalisedEvent, now: datetime, attempts: int = 3) -> bool:
    """Ingest's mark of an email change on the new address's entry (``ledger.expect_change``), with
    ETag-conditional writes. True when written. Best effort by design: the processor applies the
    change without it; the mark only wins the race against the sender's next events."""
    key = OrderKey.of(event)
    for _ in range(attempts):
        entry = ledger.read(event.email_hash)
        marked = expect_change(entry, event.email_hash, event.previous_email_hash, key, now)
        if marked is None:
            return False
        try:
            ledger.write(marked)
            return True
        except LedgerConflict:
            continue
    return False


def _mark_change(deps: IngestDeps, result: EventResult) -> None:
    """Best effort (see ``mark_expected_change``): a failure is logged and the event queued anyway."""
    try:
        if deps.ledger is not None and result.event is not None:
            mark_expected_change(deps.ledger, result.event, deps.clock())
    except Exception as error:  # noqa: BLE001 - the processor applies the change without the mark
        failure = classify_failure(error)
        log.warning(
            "event %s: could not mark the email change in the ledger (%s); queued anyway",
            result.event_id,
            failure.reason,
        )


class ProblemFields(TypedDict, total=False):
    """The optional members of a problem answer, present only when given."""

    errors: list[EventError]  # 422: every problem of every event, up to MAX_LISTED_PROBLEMS
    omittedProblems: int
    queuedEventIds: list[str]  # 503: what was queued before the queue failed


def problem(
    status: int,
    title: str,
    detail: str,
    correlation_id: str,
    *,
    reason: Reason | None = None,
    **fields: Unpack[ProblemFields],
) -> HttpResult:
    """An application/problem+json answer (``Problem``). ``reason``: a webhook's 401 says which check
    refused the delivery (``WebhookProblem``)."""
    kind = f"https://commerce-customer-sync/problems/{_slug(title)}"
    answer = (
        Problem(type=kind, title=title, status=status, detail=detail, correlationId=correlation_id, **fields)
        if reason is None
        else WebhookProblem(
            type=kind, title=title, status=status, detail=detail, correlationId=correlation_id, reason=reason, **fields
        )
    )
    return HttpResult(status, _body(answer), content_type=PROBLEM_JSON)


def _slug(title: str) -> str:
    return "-".join(title.lower().split())


def _body(answer: Accepted | MultiStatus | Problem) -> dict[str, Any]:
    """An answer as sent: the fields it was given, and ``omittedProblems`` only when some problems
    were left out (the models publish it as absent when 0)."""
    return answer.model_dump(exclude_unset=True, exclude=None if answer.omittedProblems else {"omittedProblems"})


class _Listing:
    """The problems one answer lists: at most MAX_LISTED_PROBLEMS in all, the rest only counted
    (``omittedProblems``), so the answer stays small whatever the request holds."""

    def __init__(self) -> None:
        self.room = MAX_LISTED_PROBLEMS
        self.omitted = 0

    def __call__(self, result: EventResult, problems: list[FieldProblem], counted: int = 0) -> list[EventError]:
        listed = problems[: self.room]
        self.room -= len(listed)
        self.omitted += len(problems) - len(listed) + counted
        # A pointer names a property the sender chose (an unknown key can be anything, even an email).
        return [
            EventError(
                index=result.index,
                eventId=result.event_id,
                pointer=mask_pointer(p.pointer),
                message=p.message,
                code=p.code,
            )
            for p in listed
        ]


def wrap_valid(
    results: list[EventResult], now: datetime, correlation_id: str
) -> tuple[dict[int, str], dict[int, list[FieldProblem]]]:
    """The queue message of each valid event (by index), and the events too large for one.
    Dropped fields are logged here, by pointer and code (never their values)."""
    envelopes: dict[int, str] = {}
    oversized: dict[int, list[FieldProblem]] = {}
    for result in results:
        if result.event is None:
            continue
        text = Envelope.wrap(result.event, ingested_at=now, correlation_id=correlation_id).to_json()
        if len(text.encode("utf-8")) > MAX_MESSAGE_BYTES:
            oversized[result.index] = [
                FieldProblem(
                    pointer="", code="too_large", message=f"the normalised event exceeds {MAX_MESSAGE_BYTES} bytes"
                )
            ]
            continue
        envelopes[result.index] = text
    # At most MAX_LISTED_PROBLEMS lines per request, like the answer: 500 events of 21 dropped
    # fields each must not become 10,500 log lines.
    dropped = [(r, w) for r in results for w in r.warnings]
    for result, warning in dropped[:MAX_LISTED_PROBLEMS]:
        log.warning(
            "event %s index %d: field dropped at %s: %s",
            result.event_id,
            result.index,
            mask_pointer(warning.pointer),
            warning.code,
        )
    if len(dropped) > MAX_LISTED_PROBLEMS:
        log.warning("%d more dropped fields in this request, not logged one by one", len(dropped) - MAX_LISTED_PROBLEMS)
    return envelopes, oversized


def send_valid(
    results: list[EventResult], envelopes: dict[int, str], deps: IngestDeps, correlation_id: str
) -> tuple[list[str], Exception | None]:
    """Queue the wrapped events in index order (marking email changes in the ledger first). Stops at
    the first queue failure, which is logged and reported (``IngestFailure``): the ids queued until
    then, and the error (None when every event is queued)."""
    queued: list[str] = []
    for result in results:
        event = result.event
        if result.index not in envelopes or event is None:
            continue
        if deps.ledger is not None and event.changes_email:
            _mark_change(deps, result)
        try:
            deps.queue.send(envelopes[result.index])
        except Exception as error:  # noqa: BLE001 - any storage failure is classified, not swallowed
            failure = classify_failure(error)
            log.error(
                "queue unavailable after %d of %d events: %s (%s)",
                len(queued),
                len(envelopes),
                failure.reason,
                failure.message,
            )
            deps.telemetry.ingested("queued", len(queued))
            deps.telemetry.ingest_failure(status=503, reason=failure.reason, correlation_id=correlation_id)
            return queued, error
        queued.append(event.event_id)
    return queued, None


def handle_ingest(body: bytes, content_type: str | None, correlation_id: str, deps: IngestDeps) -> HttpResult:
    settings = deps.settings
    try:
        items = read_batch(
            body, content_type, max_events=settings.ingest_max_events, max_bytes=settings.ingest_max_body_bytes
        )
    except BatchRejected as refused:
        deps.telemetry.ingested("rejected_request", 1)
        return problem(refused.status, refused.title, refused.detail, correlation_id)

    now = deps.clock()
    results = validate_batch(items, now=now, settings=settings.mapping, hash_key=settings.email_hash_key)
    envelopes, oversized = wrap_valid(results, now, correlation_id)

    listing = _Listing()

    def errors(result: EventResult) -> list[EventError]:
        # A rejected event lists no warnings: they are counted with its unlisted problems.
        return listing(result, result.errors + oversized.get(result.index, []), result.omitted + len(result.warnings))

    if not envelopes:
        deps.telemetry.ingested("rejected", len(results))
        return problem(
            422,
            "Invalid events",
            "No event in the request is valid; nothing was queued.",
            correlation_id,
            errors=[e for r in results for e in errors(r)],
            omittedProblems=listing.omitted,
        )

    queued, failure = send_valid(results, envelopes, deps, correlation_id)
    if failure is not None:
        result_503 = problem(
            503,
            "Queue unavailable",
            "The event queue could not be reached. Events listed in queuedEventIds were queued; "
            "send the others again later.",
            correlation_id,
            queuedEventIds=queued,
        )
        result_503.headers["Retry-After"] = str(QUEUE_RETRY_AFTER_SECONDS)
        return result_503

    deps.telemetry.ingested("queued", len(queued))
    rejected = len(results) - len(queued)
    deps.telemetry.ingested("rejected", rejected)
    log.info("queued %d event(s), refused %d", len(queued), rejected)
    if rejected == 0:
        warnings = [w for r in results for w in listing(r, r.warnings, r.omitted)]
        accepted = Accepted(
            accepted=queued, correlationId=correlation_id, warnings=warnings, omittedProblems=listing.omitted
        )
        return HttpResult(202, _body(accepted))
    outcomes = [
        EventOutcome(
            index=r.index,
            eventId=r.event_id,
            status="accepted" if r.index in envelopes else "rejected",
            errors=[] if r.index in envelopes else errors(r),
            warnings=listing(r, r.warnings, r.omitted) if r.index in envelopes else [],
        )
        for r in results
    ]
    return HttpResult(
        207, _body(MultiStatus(results=outcomes, correlationId=correlation_id, omittedProblems=listing.omitted))
    )
