"""Signing test deliveries the way each vendor does: with the vendor's own reference code where it
exists (``standardwebhooks``; ``hubspot-api-client``'s ``Signature``), else a plain HMAC written here
from the vendor's documentation (Shopify, Klaviyo, an HMAC header named in a mapping file)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

from hubspot.utils.signature import Signature
from standardwebhooks import Webhook


def shopify(
    body: bytes,
    secret: str,
    *,
    topic: str,
    event_id: str | None = "evt-shopify-1",
    webhook_id: str = "wh-1",
    shop: str = "sample-shop.myshopify.com",
    triggered_at: str = "2026-11-26T10:00:00.000Z",
    api_version: str = "2025-01",
) -> dict[str, str]:
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Hmac-Sha256": digest,
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Triggered-At": triggered_at,
        "X-Shopify-API-Version": api_version,
    }
    if event_id:
        headers["X-Shopify-Event-Id"] = event_id
    return headers


def standard(
    body: bytes, secret: str, *, msg_id: str = "msg_1", at: datetime | None = None, extra_signatures: list[str] = ()
) -> dict[str, str]:
    """Signed by the reference library: ``Webhook(secret).sign(msg_id, timestamp, data)``."""
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=at, data=body.decode("utf-8"))
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join([*extra_signatures, signature]),
    }


def hubspot(
    body: bytes, secret: str, *, uri: str, method: str = "POST", timestamp_ms: int | None = None
) -> dict[str, str]:
    """Signed by hubspot-api-client's ``Signature.get_signature(..., "v3", ...)``."""
    stamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    signature = Signature.get_signature(
        secret, body.decode("utf-8"), "v3", http_uri=uri, http_method=method, timestamp=stamp
    )
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": signature,
        "X-HubSpot-Request-Timestamp": stamp,
        "X-HubSpot-Signature-Version": "v3",
    }


def klaviyo(
    body: bytes, secret: str, *, webhook_id: str = "01KB0WEBHOOK001", timestamp: str = "2026-11-26T10:01:05+00:00"
) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "Klaviyo-Signature": digest,
        "Klaviyo-Timestamp": timestamp,
        "Klaviyo-Webhook-Id": webhook_id,
    }


def hmac_header(
    body: bytes, secret: str, *, header: str = "X-Cdp-Signature", prefix: str = "sha256=", delivery: str = "dlv-1"
) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", header: prefix + digest, "X-Cdp-Delivery": delivery}
