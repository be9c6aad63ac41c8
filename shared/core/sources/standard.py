"""Standard Webhooks (standardwebhooks.com): any sender that signs with ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature`` and sends our canonical event contract as the body
(one event, an array, or ``{"events": [...]}``, as ``POST /api/customers/events`` takes).

Every ``v1,`` signature in the header is tried against every active secret (rotation); the timestamp
must be within 5 minutes (``toleranceSeconds`` per source); ``webhook-id`` is the delivery's
idempotency key. ``v1a,`` (ed25519) signatures are not accepted. The events keep their own ids: the
sender owns them, as on the canonical route.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.core.json_body import BodyError, batch_events
from shared.core.sources.base import CanonicalEvent, Translation, Unreadable, WebhookRequest, digest
from shared.core.sources.config import SourceOptions
from shared.core.sources.signatures import Verified, verify_standard


class StandardWebhooksAdapter:
    name = "standard"
    scheme = "standard"

    def verify(
        self,
        request: WebhookRequest,
        secrets: Sequence[str],
        now: datetime,
        options: SourceOptions,
        public_base_url: str,
    ) -> Verified:
        return verify_standard(request.body, request.headers, secrets, now, options.tolerance_seconds)

    def delivery_key(self, request: WebhookRequest, verified: Verified, body: Any) -> str:
        return verified.delivery_id or digest(request.body)

    def translate(self, request: WebhookRequest, verified: Verified, body: Any) -> Translation:
        try:
            items = batch_events(body)
        except BodyError as wrong:
            raise Unreadable(wrong.code) from None
        # A non-object item is refused by validation, like any other invalid event.
        return Translation(topic="events", events=[CanonicalEvent(item) for item in items])


ADAPTER = StandardWebhooksAdapter()
