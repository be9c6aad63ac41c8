"""Signature checks of webhook deliveries, over the raw bytes of the request, before any parsing.

Every check takes the body exactly as received (``bytes``), the request's headers (looked up without
regard to case) and the source's active secrets (at least one; two or more during a rotation), and
returns normally only when one secret produces one of the signatures the request carries. Digests are
compared with ``hmac.compare_digest`` (constant time in the digest's length) and every secret is tried
whatever the earlier ones gave, so the answer's timing says nothing about which secret or byte failed.

A refusal is a ``SignatureRejected`` whose ``reason`` is one of ``REASONS``: the reason is safe to log
and to report (it never quotes a header, a digest or a secret).

Schemes (docs/sources.md has each vendor's reference):
- ``standard``: Standard Webhooks v1 (``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` with
  space-separated ``v1,<base64>`` entries; the secret is ``whsec_<base64>`` or bare base64).
- ``shopify``: ``X-Shopify-Hmac-Sha256`` = base64 HMAC-SHA256 of the body with the app's client secret.
- ``hubspot-v3``: ``X-HubSpot-Signature-v3`` = base64 HMAC-SHA256 of method + URI + body + timestamp
  (``X-HubSpot-Request-Timestamp``, milliseconds), within 5 minutes.
- ``klaviyo``: ``Klaviyo-Signature`` = hex HMAC-SHA256 of the body followed by ``Klaviyo-Timestamp``.
- ``hmac``: one header holding an HMAC of the body, with the algorithm, encoding and prefix a mapping
  file names (``shared.core.sources.declarative``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from _hashlib import HASH  # what hashlib's constructors return; typeshed names it only here

DEFAULT_TOLERANCE_SECONDS = 300  # Standard Webhooks and HubSpot: 5 minutes either way

Reason = Literal[
    "unknown_source",
    "no_secret",
    "missing_signature",
    "malformed_signature",
    "bad_signature",
    "expired",
    "unsupported_signature",
    "shop_not_allowed",
    "webhook_id_mismatch",
]
REASONS: tuple[Reason, ...] = get_args(Reason)

ALGORITHMS: dict[str, Callable[[], HASH]] = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "sha512": hashlib.sha512}


class SignatureRejected(Exception):
    """The delivery is not authentic (or cannot be shown to be): answered 401, nothing queued."""

    def __init__(self, reason: Reason):
        assert reason in REASONS, reason
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Verified:
    """What a successful check learnt from the signed headers."""

    delivery_id: str | None = None  # the sender's idempotency key, when the scheme has one
    timestamp: datetime | None = None  # the signed send time, when the scheme has one


class Headers:
    """Case-insensitive, read-only view of request headers."""

    def __init__(self, headers: Mapping[str, str]):
        self._values = {str(k).lower(): str(v) for k, v in headers.items()}

    def get(self, name: str) -> str | None:
        value = self._values.get(name.lower())
        return value if value is None else value.strip()

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._values


def _mac(secret: bytes, data: bytes, algorithm: Callable[[], HASH] = hashlib.sha256) -> bytes:
    return hmac.new(secret, data, algorithm).digest()


def _any_match(candidates: Sequence[bytes], expected: Sequence[bytes]) -> bool:
    """True when some candidate equals some expected digest; every pair is compared."""
    matched = False
    for candidate in candidates:
        for digest in expected:
            matched |= hmac.compare_digest(candidate, digest)
    return matched


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRejected("malformed_signature") from None


def _require_secrets(secrets: Sequence[str]) -> None:
    if not secrets:
        raise SignatureRejected("no_secret")


def _within(moment: datetime, now: datetime, tolerance: float) -> None:
    if abs((now - moment).total_seconds()) > tolerance:
        raise SignatureRejected("expired")


def _epoch(text: str | None, *, millis: bool = False) -> datetime:
    if not text or not text.isdigit() or len(text) > 16:
        raise SignatureRejected("malformed_signature")
    value = int(text) / (1000 if millis else 1)
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise SignatureRejected("malformed_signature") from None


# --- Standard Webhooks ---------------------------------------------------------------------------


def standard_secret(secret: str) -> bytes:
    """The key bytes of a Standard Webhooks secret: ``whsec_`` + base64 (the prefix is optional).
    Decoded as the reference library (``standardwebhooks``) decodes it, padding and all, so that any
    secret a sender's own library accepts gives the same key here."""
    text = secret.strip().removeprefix("whsec_")
    try:
        key = base64.b64decode(text + "==")
    except (binascii.Error, ValueError):
        raise ValueError("a Standard Webhooks secret is whsec_ followed by base64") from None
    if not key:
        raise ValueError("a Standard Webhooks secret must not be empty")
    return key


def verify_standard(
    body: bytes, headers: Headers, secrets: Sequence[str], now: datetime, tolerance: float = DEFAULT_TOLERANCE_SECONDS
) -> Verified:
    _require_secrets(secrets)
    msg_id, stamp, signature = (
        headers.get("webhook-id"),
        headers.get("webhook-timestamp"),
        headers.get("webhook-signature"),
    )
    if not (msg_id and stamp and signature):
        raise SignatureRejected("missing_signature")
    moment = _epoch(stamp)
    _within(moment, now, tolerance)
    given = []
    unsupported = False
    for entry in signature.split(" "):
        version, _, value = entry.partition(",")
        if version == "v1" and value:
            given.append(_b64(value))
        elif entry:
            unsupported = True  # v1a (ed25519) and future versions: not accepted here
    if not given:
        raise SignatureRejected("unsupported_signature" if unsupported else "malformed_signature")
    signed = msg_id.encode("utf-8") + b"." + stamp.encode("ascii") + b"." + body
    expected = [_mac(standard_secret(s), signed) for s in secrets]
    if not _any_match(given, expected):
        raise SignatureRejected("bad_signature")
    return Verified(delivery_id=msg_id, timestamp=moment)


# --- Shopify ---------------------------------------------------------------------------------------


def verify_shopify(body: bytes, headers: Headers, secrets: Sequence[str]) -> Verified:
    _require_secrets(secrets)
    signature = headers.get("X-Shopify-Hmac-Sha256")
    if not signature:
        raise SignatureRejected("missing_signature")
    given = [_b64(signature)]
    expected = [_mac(s.encode("utf-8"), body) for s in secrets]
    if not _any_match(given, expected):
        raise SignatureRejected("bad_signature")
    return Verified(delivery_id=headers.get("X-Shopify-Event-Id") or headers.get("X-Shopify-Webhook-Id"))


# --- HubSpot v3 ------------------------------------------------------------------------------------

# HubSpot decodes exactly these percent-escapes of the URI before signing (its v3 validation guide);
# any other escape stays as it was sent.
_HUBSPOT_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}


def hubspot_uri(uri: str) -> str:
    out, i = [], 0
    while i < len(uri):
        escape = uri[i : i + 3].upper()
        if uri[i] == "%" and escape in _HUBSPOT_DECODED:
            out.append(_HUBSPOT_DECODED[escape])
            i += 3
        else:
            out.append(uri[i])
            i += 1
    return "".join(out)


def verify_hubspot_v3(
    body: bytes,
    headers: Headers,
    secrets: Sequence[str],
    *,
    method: str,
    uri: str,
    now: datetime,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> Verified:
    _require_secrets(secrets)
    signature, stamp = headers.get("X-HubSpot-Signature-v3"), headers.get("X-HubSpot-Request-Timestamp")
    if not (signature and stamp):
        raise SignatureRejected("missing_signature")
    moment = _epoch(stamp, millis=True)
    # HubSpot: reject a timestamp older than 5 minutes (and, here, one from the future too).
    _within(moment, now, tolerance)
    signed = (method.upper() + hubspot_uri(uri)).encode("utf-8") + body + stamp.encode("ascii")
    given = [_b64(signature)]
    expected = [_mac(s.encode("utf-8"), signed) for s in secrets]
    if not _any_match(given, expected):
        raise SignatureRejected("bad_signature")
    return Verified(timestamp=moment)


# --- Klaviyo ---------------------------------------------------------------------------------------


def _klaviyo_time(text: str) -> datetime | None:
    if text.isdigit():
        return _epoch(text, millis=len(text) > 11)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def verify_klaviyo(
    body: bytes, headers: Headers, secrets: Sequence[str], now: datetime, tolerance: float | None = None
) -> Verified:
    """Klaviyo documents an HMAC-SHA256 in ``Klaviyo-Signature`` and the send time in
    ``Klaviyo-Timestamp``; the signed string (body, then timestamp; hex digest) is as implemented by
    the integrations that publish their code, and is not confirmed by a live delivery here
    (docs/sources.md). ``tolerance`` None: the timestamp is signed but not bounded."""
    _require_secrets(secrets)
    signature, stamp = headers.get("Klaviyo-Signature"), headers.get("Klaviyo-Timestamp")
    if not (signature and stamp):
        raise SignatureRejected("missing_signature")
    try:
        given = [bytes.fromhex(signature)]
    except ValueError:
        raise SignatureRejected("malformed_signature") from None
    moment = _klaviyo_time(stamp)
    if tolerance is not None:
        if moment is None:
            raise SignatureRejected("malformed_signature")
        _within(moment, now, tolerance)
    signed = body + stamp.encode("utf-8")
    expected = [_mac(s.encode("utf-8"), signed) for s in secrets]
    if not _any_match(given, expected):
        raise SignatureRejected("bad_signature")
    return Verified(timestamp=moment)


# --- a named HMAC header (declarative sources) ---------------------------------------------------


@dataclass(frozen=True)
class HmacHeaderScheme:
    header: str
    algorithm: str = "sha256"
    encoding: str = "base64"  # or "hex"
    prefix: str = ""  # e.g. "sha256=" before the digest

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}")
        if self.encoding not in ("base64", "hex"):
            raise ValueError("encoding must be base64 or hex")
        if not self.header:
            raise ValueError("header is required")


def verify_hmac_header(body: bytes, headers: Headers, secrets: Sequence[str], scheme: HmacHeaderScheme) -> Verified:
    _require_secrets(secrets)
    value = headers.get(scheme.header)
    if not value:
        raise SignatureRejected("missing_signature")
    if scheme.prefix:
        if not value.lower().startswith(scheme.prefix.lower()):
            raise SignatureRejected("malformed_signature")
        value = value[len(scheme.prefix) :]
    if scheme.encoding == "hex":
        try:
            given = [bytes.fromhex(value)]
        except ValueError:
            raise SignatureRejected("malformed_signature") from None
    else:
        given = [_b64(value)]
    algorithm = ALGORITHMS[scheme.algorithm]
    expected = [_mac(s.encode("utf-8"), body, algorithm) for s in secrets]
    if not _any_match(given, expected):
        raise SignatureRejected("bad_signature")
    return Verified()
