"""Error classification: the one place that decides what a failure means for an event.

Every failure the processor meets is turned into a ``Failure`` here and nowhere else:
- ``RETRY``: transient (timeouts, throttling, 5xx, storage hiccups, credentials that may be fixed by an
  operator); the event is tried again later, a bounded number of times, then dead-lettered.
- ``DEAD_LETTER``: permanent (Commerce refused the data, the message cannot be read); kept with its
  reason for replay after a fix, never retried on its own.
Invalid input at the HTTP edge never becomes an exception: the validator answers it with a 4xx.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared.core.commerce_errors import (
    CommerceAuthError,
    CommerceConnectionError,
    CommerceError,
    CommerceNotFoundError,
    CommercePermanentError,
    CommerceTimeoutError,
    CommerceTransientError,
    mask_text,
)
from shared.core.ledger_rules import LedgerConflict


class Disposition(str, Enum):
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


class MessageFormatError(ValueError):
    """A queue message that is not a readable event envelope: retrying cannot help."""


@dataclass(frozen=True)
class Failure:
    disposition: Disposition
    reason: str  # stable, searchable code: the dead-letter "reason" and a telemetry dimension
    message: str  # for operators; never contains an email or phone (see redact)
    error_resource_id: str | None = None
    status: int | None = None
    retry_after: float | None = None
    auth: bool = False  # a Commerce 401/403: operators must see it (CommerceAuthFailure)
    # False only when the failed call certainly changed nothing in Commerce (a 4xx, 429, 408/423,
    # a connection never made, no free slot). After a create or PATCH was sent, any other failure
    # (timeout, dropped connection, 5xx, a failed read-back, a storage error) leaves what Commerce holds
    # unknown, and the ledger says so until the customer is read again.
    may_have_committed: bool = True


def redact(text: str, limit: int = 500) -> str:
    """Free text made safe for logs and dead letters (emails, phones, tokens masked), bounded."""
    return mask_text(text)[:limit]


# Storage statuses worth retrying: the same convention as Commerce's (408, 429, 5xx but 501).
_TRANSIENT_STORAGE_STATUSES = frozenset({408, 409, 412, 423, 429, 500, 502, 503, 504})


_NOT_PROVISIONED = frozenset({"TableNotFound", "QueueNotFound"})


def _not_provisioned(error: HttpResponseError) -> str | None:
    # Azurite leaves error_code unset on some operations; the service's code is in the message then.
    code = getattr(error, "error_code", None)
    return code if code in _NOT_PROVISIONED else next((c for c in _NOT_PROVISIONED if c in str(error)), None)


def classify_failure(error: BaseException) -> Failure:
    """Classify any exception raised while processing one event."""
    if isinstance(error, CommerceError):
        if isinstance(error, CommerceAuthError):
            return _commerce_failure(error, Disposition.RETRY, "commerce_auth", auth=True)
        if isinstance(error, CommerceTransientError):
            return _commerce_failure(
                error, Disposition.RETRY, f"commerce_{_kind(error)}", retry_after=error.retry_after
            )
        if isinstance(error, CommerceNotFoundError):
            if error.operation in ("search", "create") and not error.error_resource_id:
                # Searching or creating never targets a missing customer: a bare 404 here means the
                # URL is wrong (COMMERCE_BASE_URL, api-version), which an operator must fix.
                return _commerce_failure(error, Disposition.RETRY, "commerce_endpoint_not_found")
            # The customer vanished between two calls (merged, deleted, async number replaced):
            # the next attempt resolves it by email again.
            return _commerce_failure(error, Disposition.RETRY, "commerce_not_found")
        if isinstance(error, CommercePermanentError):
            return _commerce_failure(error, Disposition.DEAD_LETTER, "commerce_rejected")
        return _commerce_failure(error, Disposition.RETRY, "commerce_error")
    if isinstance(error, LedgerConflict):
        # Our lease was taken over mid-sync (we overran it): the next attempt reads the ledger again.
        return Failure(Disposition.RETRY, "ledger_conflict", "the email's ledger entry changed under this worker")
    if isinstance(error, MessageFormatError):
        return Failure(Disposition.DEAD_LETTER, "unreadable_message", redact(str(error)))
    if isinstance(error, ClientAuthenticationError):
        return Failure(Disposition.RETRY, "storage_auth", redact(str(error)), auth=True)
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):
        return Failure(Disposition.RETRY, "storage_unavailable", redact(str(error)))
    if isinstance(error, HttpResponseError) and (missing := _not_provisioned(error)):
        # A queue or table the deployment should have created: an operator fixes it, nothing is lost.
        return Failure(Disposition.RETRY, "storage_not_provisioned", missing, status=error.status_code)
    if isinstance(error, HttpResponseError):
        status = error.status_code
        if status in _TRANSIENT_STORAGE_STATUSES or status is None:
            return Failure(Disposition.RETRY, "storage_unavailable", redact(str(error.reason or error)), status=status)
        return Failure(Disposition.DEAD_LETTER, "storage_rejected", redact(str(error.reason or error)), status=status)
    # A defect, or something unforeseen: retry (it may pass), then dead-letter with this reason.
    return Failure(Disposition.RETRY, "unexpected_error", redact(f"{type(error).__name__}: {error}"))


def _commerce_failure(
    error: CommerceError,
    disposition: Disposition,
    reason: str,
    *,
    auth: bool = False,
    retry_after: float | None = None,
) -> Failure:
    return Failure(
        disposition,
        reason,
        redact(str(error)),
        error_resource_id=error.error_resource_id,
        status=error.status,
        retry_after=retry_after,
        auth=auth,
        may_have_committed=not _refused(error),
    )


def safe_traceback(error: BaseException) -> str:
    """Where an exception came from, without its message (which may quote personal data):
    the exception types of the chain and the frames, innermost last."""
    parts: list[str] = []
    current: BaseException | None = error
    while current is not None and len(parts) < 5:
        frames = traceback.extract_tb(current.__traceback__)
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames[-6:]))
        parts.append(f"{type(current).__name__} at {where or '?'}")
        current = current.__cause__ or current.__context__
    return " | caused by ".join(parts)


def _refused(error: CommerceError) -> bool:
    """The call certainly did not change anything in Commerce."""
    if isinstance(error, CommerceTimeoutError):
        return not error.sent
    if isinstance(error, CommerceConnectionError):
        return not error.dropped
    if isinstance(error, (CommerceAuthError, CommerceNotFoundError)):
        return True
    if error.status is None:  # no response: refused only if the request never left
        return not getattr(error, "sent", False)
    # 4xx (429, 408 and 423 included) refuse before processing. A 5xx, or a 2xx whose body is
    # unusable, may follow a commit.
    return 400 <= error.status < 500


def _kind(error: CommerceTransientError) -> str:
    name = type(error).__name__.removeprefix("Commerce").removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() or "transient"
