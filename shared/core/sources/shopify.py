"""Shopify webhooks (HTTPS deliveries, JSON format).

Headers (shopify.dev, "Verify webhook deliveries" and the webhook topic reference):
``X-Shopify-Hmac-Sha256`` (base64 HMAC-SHA256 of the raw body, keyed by the app's client secret),
``X-Shopify-Topic``, ``X-Shopify-Event-Id`` (the same for every delivery of one event),
``X-Shopify-Webhook-Id`` (one delivery), ``X-Shopify-Triggered-At``, ``X-Shopify-Shop-Domain`` and
``X-Shopify-API-Version``. Only the body is signed; the headers are not.

Topics:
- ``customers/create``, ``customers/update``: the customer (REST ``Customer`` shape). Before API
  2025-01 it also carries ``email_marketing_consent`` (and the older ``accepts_marketing``), which
  map to ``isOptedInMarketing``; from 2025-01 it does not, and the consent is left unchanged.
- ``customers/email_marketing_consent_update``: ``customer_id``, ``email_address`` and
  ``email_marketing_consent``: only the opt-in changes.
- ``customers/marketing_consent_update`` (SMS): ``id``, ``phone`` and ``sms_marketing_consent``: only
  the phone is taken (the contract has one consent flag, which follows email marketing).
- ``customers/redact`` (mandatory privacy topic): an erasure request.
- any other topic: acknowledged and counted as ignored.

``updated_at`` orders customer events (``consent_updated_at`` for consent topics, and
``X-Shopify-Triggered-At`` when a payload has neither).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.core.sources.base import (
    CanonicalEvent,
    Erasure,
    Translation,
    Unreadable,
    WebhookRequest,
    as_object,
    dig,
    digest,
    event_id,
    put,
    text_or_none,
)
from shared.core.sources.config import SourceOptions
from shared.core.sources.signatures import SignatureRejected, Verified, verify_shopify

CUSTOMER_TOPICS = {"customers/create": "customer.created", "customers/update": "customer.updated"}
EMAIL_CONSENT_TOPIC = "customers/email_marketing_consent_update"
SMS_CONSENT_TOPIC = "customers/marketing_consent_update"
REDACT_TOPIC = "customers/redact"
HANDLED_TOPICS = (*CUSTOMER_TOPICS, EMAIL_CONSENT_TOPIC, SMS_CONSENT_TOPIC, REDACT_TOPIC)

# email_marketing_consent.state -> isOptedInMarketing; pending (double opt-in not confirmed yet),
# redacted and invalid leave the consent as it is.
CONSENT_STATES = {"subscribed": True, "not_subscribed": False, "unsubscribed": False}


def _consent(consent: Any) -> bool | None:
    state = dig(consent, "state")
    return CONSENT_STATES.get(state.lower()) if isinstance(state, str) else None


def _street(address: dict[str, Any]) -> str | None:
    parts = [p.strip() for p in (text_or_none(address.get("address1")), text_or_none(address.get("address2"))) if p]
    return ", ".join(parts) or None


def _address(customer: dict[str, Any]) -> dict[str, Any] | None:
    """The customer's default address in the contract's shape (Shopify always sends the whole
    address: missing clearable parts are sent as null, so the primary address matches Shopify's)."""
    chosen = customer.get("default_address")
    if not isinstance(chosen, dict):
        listed = [a for a in customer.get("addresses") or [] if isinstance(a, dict)]
        chosen = next((a for a in listed if a.get("default") is True), listed[0] if listed else None)
    if not isinstance(chosen, dict):
        return None
    out: dict[str, Any] = {}
    put(out, "street", _street(chosen))
    put(out, "city", text_or_none(chosen.get("city")))
    out["name"] = text_or_none(chosen.get("name"))
    out["state"] = text_or_none(chosen.get("province_code")) or text_or_none(chosen.get("province"))
    out["postalCode"] = text_or_none(chosen.get("zip"))
    put(out, "country", text_or_none(chosen.get("country_code")) or text_or_none(chosen.get("country")))
    return out


class ShopifyAdapter:
    name = "shopify"
    scheme = "shopify"

    def verify(
        self,
        request: WebhookRequest,
        secrets: Sequence[str],
        now: datetime,
        options: SourceOptions,
        public_base_url: str,
    ) -> Verified:
        verified = verify_shopify(request.body, request.headers, secrets)
        if options.shop_domains:
            shop = (request.headers.get("X-Shopify-Shop-Domain") or "").lower()
            if shop not in options.shop_domains:
                raise SignatureRejected("shop_not_allowed")
        return verified

    def delivery_key(self, request: WebhookRequest, verified: Verified, body: Any) -> str:
        return verified.delivery_id or digest(request.body)

    def _event_id(self, request: WebhookRequest) -> str:
        given = request.headers.get("X-Shopify-Event-Id") or request.headers.get("X-Shopify-Webhook-Id")
        return event_id(self.name, given) or f"{self.name}:{digest(request.body)}"

    def translate(self, request: WebhookRequest, verified: Verified, body: Any) -> Translation:
        topic = (request.headers.get("X-Shopify-Topic") or "").strip().lower()
        if topic not in HANDLED_TOPICS:
            return Translation(ignored=[topic or "(no topic)"], topic=topic)
        if not isinstance(body, dict):
            raise Unreadable("not_an_object")
        triggered = request.headers.get("X-Shopify-Triggered-At")
        if topic == REDACT_TOPIC:
            erased = as_object(body.get("customer"))
            return Translation(
                topic=topic,
                erasures=[
                    Erasure(
                        sender_id=text_or_none(erased.get("id")),
                        email=text_or_none(erased.get("email")),
                        topic=topic,
                    )
                ],
            )
        event: dict[str, Any] = {
            "specVersion": "1.0",
            "eventId": self._event_id(request),
            "eventType": CUSTOMER_TOPICS.get(topic, "customer.updated"),
            "source": self.name,
        }
        customer: dict[str, Any] = {}
        if topic in CUSTOMER_TOPICS:
            sender_id = text_or_none(body.get("id"))
            put(
                event,
                "occurredAt",
                text_or_none(body.get("updated_at")) or text_or_none(body.get("created_at")) or triggered,
            )
            put(customer, "email", text_or_none(body.get("email")))
            put(customer, "firstName", text_or_none(body.get("first_name")))
            put(customer, "lastName", text_or_none(body.get("last_name")))
            if "phone" in body:
                customer["phone"] = text_or_none(body.get("phone"))  # null: the customer has none
            put(customer, "currencyCode", text_or_none(body.get("currency")))
            put(customer, "createdDateTime", text_or_none(body.get("created_at")))
            consent = _consent(body.get("email_marketing_consent"))
            if consent is None and isinstance(body.get("accepts_marketing"), bool):
                consent = body["accepts_marketing"]  # API versions before email_marketing_consent
            put(customer, "isOptedInMarketing", consent)
            address = _address(body)
            if address is not None:
                customer["address"] = address
        elif topic == EMAIL_CONSENT_TOPIC:
            sender_id = text_or_none(body.get("customer_id"))
            consent = body.get("email_marketing_consent")
            put(event, "occurredAt", text_or_none(dig(consent, "consent_updated_at")) or triggered)
            put(customer, "email", text_or_none(body.get("email_address")))
            put(customer, "isOptedInMarketing", _consent(consent))
        else:  # SMS marketing consent
            sender_id = text_or_none(body.get("id")) or text_or_none(body.get("customer_id"))
            put(
                event, "occurredAt", text_or_none(dig(body, "sms_marketing_consent", "consent_updated_at")) or triggered
            )
            put(customer, "phone", text_or_none(body.get("phone")))
        event["customer"] = customer
        return Translation(topic=topic, events=[CanonicalEvent(event, sender_id=sender_id, topic=topic)])


ADAPTER = ShopifyAdapter()
