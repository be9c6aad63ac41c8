"""Klaviyo system webhooks (Klaviyo's Webhooks API; only some plans have them).

Headers (developers.klaviyo.com, "Working with system webhooks"): ``Klaviyo-Webhook-Id`` (the
webhook, not the delivery), ``Klaviyo-Signature`` (HMAC-SHA256) and ``Klaviyo-Timestamp``. The body is
``{"data": [{"topic", "external_id", "payload"}, ...], "meta": {"klaviyo_account_id",
"klaviyo_webhook_id", "timestamp"}}``: one delivery, many events. ``meta.klaviyo_webhook_id`` must equal
the header, as Klaviyo tells receivers to check. Each ``payload`` has the shape of a Get Event answer
(``data.attributes.datetime``, ``data.relationships.profile.data.id``) and, when Klaviyo includes the
profile, ``included[]`` with the profile's ``email``, ``phone_number``, ``first_name``,
``last_name`` and ``location``.

Topics applied: email marketing subscribed / unsubscribed (``isOptedInMarketing``, and the profile's
fields when included). Every other topic (opens, clicks, SMS...) is acknowledged and ignored. A
profile whose email the payload does not give is found in the sender-id map, from an earlier event.

What is not confirmed against a live delivery (docs/sources.md): the exact signed string (body then
timestamp, hex digest), the timestamp's format, and the profile's presence in ``included``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.core.sources.base import (
    CanonicalEvent,
    Translation,
    Unreadable,
    WebhookRequest,
    as_object,
    dig,
    digest,
    epoch_to_iso,
    event_id,
    put,
    text_or_none,
)
from shared.core.sources.config import SourceOptions
from shared.core.sources.signatures import SignatureRejected, Verified, verify_klaviyo

# The metric part of the topic id (event:klaviyo.<metric>) -> isOptedInMarketing.
CONSENT_TOPICS = {"subscribed_to_email_marketing": True, "unsubscribed_from_email_marketing": False}


def _metric(topic: str) -> str:
    return topic.rsplit(".", 1)[-1].lower() if topic.startswith("event:") else topic.lower()


def _profile(payload: dict[str, Any], profile_id: str | None) -> dict[str, Any]:
    for item in payload.get("included") or []:
        if (
            isinstance(item, dict)
            and item.get("type") == "profile"
            and (profile_id is None or str(item.get("id")) == profile_id)
        ):
            attributes = item.get("attributes")
            return attributes if isinstance(attributes, dict) else {}
    return {}


def _address(location: Any) -> dict[str, Any] | None:
    if not isinstance(location, dict) or not text_or_none(location.get("country")):
        return None
    out: dict[str, Any] = {}
    street = ", ".join(
        p.strip() for p in (text_or_none(location.get("address1")), text_or_none(location.get("address2"))) if p
    )
    put(out, "street", street or None)
    put(out, "city", text_or_none(location.get("city")))
    put(out, "state", text_or_none(location.get("region")))
    put(out, "postalCode", text_or_none(location.get("zip")))
    out["country"] = text_or_none(location.get("country"))
    return out


class KlaviyoAdapter:
    name = "klaviyo"
    scheme = "klaviyo"

    def verify(
        self,
        request: WebhookRequest,
        secrets: Sequence[str],
        now: datetime,
        options: SourceOptions,
        public_base_url: str,
    ) -> Verified:
        return verify_klaviyo(request.body, request.headers, secrets, now)

    @staticmethod
    def _items(body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise Unreadable("not_a_klaviyo_delivery")
        return [item for item in body["data"] if isinstance(item, dict)]

    @staticmethod
    def _external_id(item: dict[str, Any]) -> str | None:
        return text_or_none(item.get("external_id")) or text_or_none(dig(item, "payload", "data", "id"))

    def check_body(self, request: WebhookRequest, body: Any) -> None:
        """Klaviyo: a body whose meta.klaviyo_webhook_id differs from the header is not processed."""
        header = request.headers.get("Klaviyo-Webhook-Id")
        inside = dig(body, "meta", "klaviyo_webhook_id")
        if header and inside is not None and str(inside) != header:
            raise SignatureRejected("webhook_id_mismatch")

    def delivery_key(self, request: WebhookRequest, verified: Verified, body: Any) -> str:
        # Klaviyo's headers name the webhook, not the delivery, and meta.timestamp changes per attempt:
        # the set of event ids is what every attempt of one delivery shares.
        ids = sorted(filter(None, (self._external_id(i) for i in self._items(body))))
        return digest(*ids) if ids else digest(request.body)

    def translate(self, request: WebhookRequest, verified: Verified, body: Any) -> Translation:
        translation = Translation(topic="data[]")
        for index, item in enumerate(self._items(body)):
            topic = str(item.get("topic") or "")
            metric = _metric(topic)
            if metric not in CONSENT_TOPICS:
                translation.ignored.append(topic or "(no topic)")
                continue
            payload = as_object(item.get("payload"))
            data = as_object(payload.get("data"))
            attributes = as_object(data.get("attributes"))
            profile_id = text_or_none(dig(data, "relationships", "profile", "data", "id"))
            profile = _profile(payload, profile_id)
            ext = self._external_id(item) or digest(request.body, str(index))
            event: dict[str, Any] = {
                "specVersion": "1.0",
                "eventId": event_id(self.name, ext),
                "eventType": "customer.updated",
                "source": self.name,
            }
            put(
                event,
                "occurredAt",
                text_or_none(attributes.get("datetime")) or epoch_to_iso(attributes.get("timestamp")),
            )
            customer: dict[str, Any] = {}
            put(
                customer,
                "email",
                text_or_none(profile.get("email")) or text_or_none(dig(attributes, "event_properties", "$email")),
            )
            put(customer, "firstName", text_or_none(profile.get("first_name")))
            put(customer, "lastName", text_or_none(profile.get("last_name")))
            put(customer, "phone", text_or_none(profile.get("phone_number")))
            customer["isOptedInMarketing"] = CONSENT_TOPICS[metric]
            address = _address(profile.get("location"))
            if address is not None:
                customer["address"] = address
            event["customer"] = customer
            translation.events.append(CanonicalEvent(event, sender_id=profile_id, topic=topic))
        return translation


ADAPTER = KlaviyoAdapter()
