"""What can go wrong when calling the Commerce Scale Unit, as one exception hierarchy.

docs/commerce-api.md ("Errors and ErrorResourceIds", "Unknowns") leaves the error envelope, the not-found status and
``Retry-After`` unknown, so classification uses the status *and* the ``ErrorResourceId``, and both
envelopes are parsed. ``STATUS_CLASSES`` is the one table mapping a status to a class; callers decide
what to do by class (transient: retry later; auth: an operator must fix settings; permanent: never
retry the same request).

Commerce messages can echo the input (an email, a phone number), so every text kept on an error is
masked by the generic patterns: ``str(error)`` is safe to log. Names and other values only the event
knows are masked where the event is known (``shared.core.privacy.mask_free_text``, in the processor).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from shared.core.privacy import mask_free_text

RUNTIME_PREFIX = "Microsoft_Dynamics_Commerce_Runtime_"


class CommerceError(Exception):
    """A Commerce call failed. Every text attribute is already masked (no email, phone or token)."""

    def __init__(
        self,
        message: str | None,
        *,
        operation: str,
        status: int | None = None,
        error_resource_id: str | None = None,
        member_names: Iterable[str] = (),
        retry_after: float | None = None,
    ):
        self.operation = operation
        self.status = status
        self.error_resource_id = error_resource_id
        self.message = mask_text(message) if message else message
        self.member_names = [mask_text(str(m)) for m in member_names]
        self.retry_after = retry_after
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [f"{self.operation}"]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.error_resource_id:
            parts.append(self.error_resource_id)
        text = " ".join(parts)
        if self.message:
            text += f": {self.message}"
        if self.member_names:
            text += f" (members: {', '.join(self.member_names)})"
        if self.retry_after is not None:
            text += f" (retry after {self.retry_after:g} s)"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    # Keyword-only attributes: rebuild from state (copy, pickle).
    def __reduce__(self) -> tuple[Callable[..., CommerceError], tuple[type[CommerceError], dict[str, Any]]]:
        return _restore, (type(self), self.__dict__.copy())


def _restore(cls: type[CommerceError], state: dict[str, Any]) -> CommerceError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message"))
    error.__dict__.update(state)
    return error


class CommerceTransientError(CommerceError):
    """Worth retrying later, with backoff (``retry_after`` when the server said how long)."""


class CommerceTimeoutError(CommerceTransientError):
    """Connect or read timeout: for a write, the server may or may not have applied it. ``sent`` is
    False when the request never left (connect timeout, no free slot under the concurrency limit)."""

    sent: bool = True


class CommerceConnectionError(CommerceTransientError):
    """Connection refused, reset or dropped before a response arrived. ``dropped`` is True when a
    connection existed and was lost mid-request (the request may have reached the server)."""

    dropped: bool = False


class CommerceThrottledError(CommerceTransientError):
    """HTTP 429."""


class CommerceServerError(CommerceTransientError):
    """408, 423, 500, 502, 503, 504 (and any other 5xx but 501)."""


class CommerceAuthError(CommerceError):
    """401/403, or the token could not be obtained: configuration an operator must fix."""


class CommerceNotFoundError(CommerceError):
    """404, or ErrorResourceId CustomerNotFound / ObjectNotFound."""


class CommercePermanentError(CommerceError):
    """501, other 4xx, or a success response whose body is unusable: retrying cannot help. ``sent`` is
    True when the failure came after the request left (a write may then have been applied)."""

    sent: bool = False


class CommerceValidationError(CommercePermanentError):
    """400 with a validation ErrorResourceId: the data sent was refused (see ``member_names``)."""


# The one table: HTTP status -> class. Statuses not listed fall back by range in ``class_for_status``.
STATUS_CLASSES: dict[int, type[CommerceError]] = {
    400: CommercePermanentError,  # refined to CommerceValidationError by ErrorResourceId
    401: CommerceAuthError,
    403: CommerceAuthError,
    404: CommerceNotFoundError,
    408: CommerceServerError,
    423: CommerceServerError,
    429: CommerceThrottledError,
    500: CommerceServerError,
    501: CommercePermanentError,
    502: CommerceServerError,
    503: CommerceServerError,
    504: CommerceServerError,
}

NOT_FOUND_IDS = frozenset({RUNTIME_PREFIX + "CustomerNotFound", RUNTIME_PREFIX + "ObjectNotFound"})
AUTH_IDS = frozenset({RUNTIME_PREFIX + "AuthenticationFailed"})
VALIDATION_IDS = frozenset(
    RUNTIME_PREFIX + name
    for name in (
        "RequiredValueNotFound",
        "InvalidEmailAddress",
        "InvalidCountryRegion",
        "InvalidStateProvince",
        "InvalidZipPostalCode",
        "InvalidAddress",
        "AggregateValidationError",
        "InvalidFormat",
    )
)


def class_for_status(status: int) -> type[CommerceError]:
    if status in STATUS_CLASSES:
        return STATUS_CLASSES[status]
    if 500 <= status <= 599:
        return CommerceServerError  # the sync-tool convention: 5xx but 501 is transient
    return CommercePermanentError  # other 4xx, and statuses no Commerce call should return


def is_validation_id(error_resource_id: str | None) -> bool:
    """Known validation ids, and unknown runtime ids that read like one (InvalidX, XValidationError)."""
    if not error_resource_id:
        return False
    if error_resource_id in VALIDATION_IDS:
        return True
    if not error_resource_id.startswith(RUNTIME_PREFIX):
        return False
    name = error_resource_id[len(RUNTIME_PREFIX) :]
    return name.startswith("Invalid") or "Validation" in name or name.startswith("Required")


def error_class_for(status: int, error_resource_id: str | None) -> type[CommerceError]:
    """Status first; for a non-transient 4xx the ErrorResourceId refines it (the status Commerce
    uses for not-found and auth failures is unknown, the id is not)."""
    cls = class_for_status(status)
    if not (400 <= status <= 499) or issubclass(cls, CommerceTransientError):
        return cls
    if error_resource_id in NOT_FOUND_IDS:
        return CommerceNotFoundError
    if error_resource_id in AUTH_IDS:
        return CommerceAuthError
    if status == 400 and is_validation_id(error_resource_id):
        return CommerceValidationError
    return cls


# --- masking ---------------------------------------------------------------------------------------
def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Text safe to log: emails, long digit runs (phones), JWTs/opaque tokens and given secrets masked,
    in any encoding (percent, JSON escapes, HTML entities) and case. The generic half of
    ``shared.core.privacy.mask_free_text``, which also masks the values an event sent."""
    return mask_free_text(text, secrets=secrets)


# --- parsing ---------------------------------------------------------------------------------------
def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict):  # OData v3 style {"lang": "en-US", "value": "..."}
        return _text(value.get("value"))
    return None


def _names(value: Any) -> list[str]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    if isinstance(value, str) and value:
        return [value]
    return []


def _flat(obj: dict[str, Any]) -> tuple[str | None, str | None, list[str]]:
    rid = _text(obj.get("ErrorResourceId"))
    msg = _text(obj.get("LocalizedMessage")) or _text(obj.get("Message")) or _text(obj.get("ErrorMessage"))
    names = _names(obj.get("MemberNames"))
    # Aggregate validation errors carry their parts in ValidationResults.
    for part in obj.get("ValidationResults") or []:
        if isinstance(part, dict):
            for name in _names(part.get("MemberNames")):
                if name not in names:
                    names.append(name)
            msg = msg or _text(part.get("LocalizedMessage"))
    return rid, msg, names


def parse_error_body(body: bytes | str | None) -> tuple[str | None, str | None, list[str]]:
    """``(error_resource_id, message, member_names)`` from an OData ``{"error": {...}}`` body, a
    flat Commerce ``{"ErrorResourceId", "LocalizedMessage", "MemberNames"}`` body, or junk (then
    ``(None, None, [])``). The message is returned as sent; CommerceError masks it."""
    if body is None:
        return None, None, []
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    try:
        obj = json.loads(body.lstrip("\ufeff"))
    except ValueError:
        return None, None, []
    if not isinstance(obj, dict):
        return None, None, []
    error = obj.get("error")
    if isinstance(error, dict):
        inner = error.get("innererror")
        rid, msg, names = _flat(inner if isinstance(inner, dict) else {})
        rid = rid or _text(error.get("code"))
        msg = msg or _text(error.get("message"))
        for detail in error.get("details") or []:
            if isinstance(detail, dict):
                target = _text(detail.get("target"))
                if target and target not in names:
                    names.append(target)
                msg = msg or _text(detail.get("message"))
                rid = rid or _text(detail.get("code"))
        return rid, msg, names
    return _flat(obj)


def parse_retry_after(value: str | None, now: float | datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date (relative to
    ``now``, epoch seconds or an aware datetime; default the current time). A date already past means
    0.0 (retry now). Negative, empty or unparseable values give None (fall back to backoff)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(int(value))
    try:
        seconds = float(value)  # lenient: some servers send "1.5"
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT
        when = when.replace(tzinfo=UTC)
    if now is None:
        now_ts = datetime.now(UTC).timestamp()
    elif isinstance(now, datetime):
        now_ts = (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp()
    else:
        now_ts = float(now)
    return max(0.0, when.timestamp() - now_ts)


class ResponseLike(Protocol):
    # Read-only members, so requests.Response (whose content is a property) is one.
    @property
    def status_code(self) -> int: ...
    @property
    def content(self) -> bytes: ...
    @property
    def headers(self) -> Any: ...  # a case-insensitive mapping


_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.]{1,200}$")


def error_from_response(
    operation: str, response: ResponseLike, *, secrets: Iterable[str] = (), now: float | None = None
) -> CommerceError:
    """The CommerceError for a non-success response (``secrets``: extra strings to mask, e.g. the
    token the request carried)."""
    status = int(response.status_code)
    rid, msg, names = parse_error_body(response.content)
    cls = error_class_for(status, rid)
    if rid is not None and not _IDENTIFIER.match(rid):
        rid = mask_text(rid, secrets)
    if msg is None:
        msg = "no usable error body" if not response.content else "non-JSON or unrecognised error body"
    else:
        msg = mask_text(msg, secrets)[:1000]
    retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
    return cls(
        msg, operation=operation, status=status, error_resource_id=rid, member_names=names, retry_after=retry_after
    )
