"""Send a sample delivery to a webhook source, signed as that sender signs it (local runs and demos).

    python -m tools.webhook shopify samples/webhooks/shopify/customers-create.json
    python -m tools.webhook shopify samples/webhooks/shopify/customers-update-2024-10.json --topic customers/update
    python -m tools.webhook klaviyo samples/webhooks/klaviyo/email-marketing-subscription.json
    python -m tools.webhook hubspot samples/webhooks/hubspot/workflow-contact.json
    python -m tools.webhook standard samples/event.json
    python -m tools.webhook example-cdp samples/webhooks/example-cdp/profiles.json

The secret is the source's first one in WEBHOOK_SECRETS of the local settings file (local.settings.json,
else the sample) unless --secret is given; the body is sent byte for byte as the file holds it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from shared.core.sources.declarative import load_mapping
from shared.core.sources.signatures import standard_secret

ROOT = Path(__file__).resolve().parent.parent


def _settings() -> dict[str, str]:
    from tools.local_settings import read_settings, settings_path

    path = settings_path(ROOT)
    return read_settings(path)[0] if path else {}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sign(source: str, body: bytes, secret: str, url: str, topic: str | None, settings: dict[str, str]) -> dict:
    headers = {"Content-Type": "application/json"}
    delivery = f"demo-{uuid.uuid4().hex[:12]}"
    now = int(time.time())
    if source == "shopify":
        headers |= {
            "X-Shopify-Topic": topic or "customers/create",
            "X-Shopify-Event-Id": delivery,
            "X-Shopify-Webhook-Id": delivery,
            "X-Shopify-Shop-Domain": "sample-shop.myshopify.com",
            "X-Shopify-API-Version": "2025-01",
            "X-Shopify-Hmac-Sha256": _b64(hmac.new(secret.encode(), body, hashlib.sha256).digest()),
        }
    elif source == "standard":
        signed = f"{delivery}.{now}.".encode() + body
        headers |= {
            "webhook-id": delivery,
            "webhook-timestamp": str(now),
            "webhook-signature": "v1," + _b64(hmac.new(standard_secret(secret), signed, hashlib.sha256).digest()),
        }
    elif source == "hubspot":
        stamp = str(now * 1000)
        signed = ("POST" + url).encode() + body + stamp.encode()
        headers |= {
            "X-HubSpot-Request-Timestamp": stamp,
            "X-HubSpot-Signature-Version": "v3",
            "X-HubSpot-Signature-v3": _b64(hmac.new(secret.encode(), signed, hashlib.sha256).digest()),
        }
    elif source == "klaviyo":
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now))
        meta = json.loads(body).get("meta", {})
        headers |= {
            "Klaviyo-Timestamp": stamp,
            "Klaviyo-Webhook-Id": str(meta.get("klaviyo_webhook_id", "")),
            "Klaviyo-Signature": hmac.new(secret.encode(), body + stamp.encode(), hashlib.sha256).hexdigest(),
        }
    else:
        folder = Path(settings.get("WEBHOOK_MAPPINGS_DIR") or "webhook_mappings")
        folder = folder if folder.is_absolute() else ROOT / folder
        spec = load_mapping(source, (folder / f"{source}.json").read_text(encoding="utf-8"))
        if spec.hmac is None:
            raise SystemExit(f"{source}: its mapping uses the {spec.scheme} scheme; send it as that source does")
        digest = hmac.new(secret.encode(), body, getattr(hashlib, spec.hmac.algorithm)).digest()
        value = digest.hex() if spec.hmac.encoding == "hex" else _b64(digest)
        headers[spec.hmac.header] = spec.hmac.prefix + value
        if spec.delivery_header:
            headers[spec.delivery_header] = delivery
    return headers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.webhook", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source")
    parser.add_argument("file", type=Path)
    parser.add_argument("--topic", help="Shopify topic (default customers/create)")
    parser.add_argument("--secret", help="signing secret (default: the local settings' first one)")
    parser.add_argument("--base-url", default="http://localhost:7071", help="the local host's address")
    args = parser.parse_args(argv)
    settings = _settings()
    secret = args.secret
    if secret is None:
        secrets = json.loads(settings.get("WEBHOOK_SECRETS") or "{}").get(args.source) or []
        if not secrets:
            print(f"no secret for {args.source} in WEBHOOK_SECRETS: pass --secret", file=sys.stderr)
            return 2
        secret = secrets[0] if isinstance(secrets, list) else secrets
    body = args.file.read_bytes()
    url = f"{args.base_url.rstrip('/')}/api/webhooks/{args.source}"
    request = urllib.request.Request(
        url, data=body, method="POST", headers=sign(args.source, body, secret, url, args.topic, settings)
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(response.status, response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        print(error.code, error.read().decode("utf-8"))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
