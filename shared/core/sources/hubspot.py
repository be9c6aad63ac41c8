"""HubSpot: a workflow's "Send a webhook" action, signed with HubSpot's signature v3.

Signature (developers.hubspot.com, "Validating requests"): ``X-HubSpot-Signature-v3`` = base64
HMAC-SHA256, keyed by the app's client secret, of method + URI + body + ``X-HubSpot-Request-Timestamp``
(milliseconds; refused when more than 5 minutes away). HubSpot signs the URI it called: behind the
Functions front end the worker may see another, so ``WEBHOOK_PUBLIC_BASE_URL`` names the scheme and
host HubSpot was given, and the worker's path and query are appended to it.

Body: the enrolled contact. Both shapes HubSpot sends are read: the default body (the contact record,
``properties.<name>.value``, with ``vid``/``canonical-vid``) and a customised body of chosen properties
(``{"email": ..., "firstname": ..., "hs_object_id": ...}``); an array of either is several events.
Properties used: email, firstname, lastname, phone, address, city, state, zip, country,
hs_email_optout, createdate, lastmodifieddate, hs_object_id. Everything else is ignored.

HubSpot sends no delivery id: the event id is the object id with ``lastmodifieddate`` (the same for
every retry of one change), else a digest of the body.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from shared.core.sources.base import (
    CanonicalEvent,
    Translation,
    Unreadable,
    WebhookRequest,
    digest,
    epoch_to_iso,
    event_id,
    put,
    text_or_none,
)
from shared.core.sources.config import SourceOptions
from shared.core.sources.signatures import Verified, verify_hubspot_v3


def signed_uri(request_url: str, public_base_url: str) -> str:
    """The URI HubSpot signed: the public base with the request's path and query, when configured."""
    if not public_base_url:
        return request_url
    parts = urlsplit(request_url)
    return public_base_url.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")


def _properties(record: dict[str, Any]) -> dict[str, Any]:
    props = record.get("properties")
    if isinstance(props, dict):  # the contact record: {"email": {"value": ...}, ...}
        return {k: (v.get("value") if isinstance(v, dict) else v) for k, v in props.items()}
    return record  # a customised body of chosen properties


def _object_id(record: dict[str, Any], props: dict[str, Any]) -> str | None:
    for value in (
        props.get("hs_object_id"),
        record.get("canonical-vid"),
        record.get("vid"),
        record.get("objectId"),
        record.get("hs_object_id"),
    ):
        if text_or_none(value):
            return text_or_none(value)
    return None


def _moment(value: Any) -> str | None:
    return epoch_to_iso(value) or text_or_none(value)


def _optout(value: Any) -> bool | None:
    """hs_email_optout ("Unsubscribed from all email") true means no consent; false says nothing about
    an opt-in, so it leaves the consent as it is."""
    if value is True or (isinstance(value, str) and value.strip().lower() == "true"):
        return False
    return None


class HubSpotAdapter:
    name = "hubspot"
    scheme = "hubspot-v3"

    def verify(
        self,
        request: WebhookRequest,
        secrets: Sequence[str],
        now: datetime,
        options: SourceOptions,
        public_base_url: str,
    ) -> Verified:
        return verify_hubspot_v3(
            request.body,
            request.headers,
            secrets,
            method=request.method,
            uri=signed_uri(request.url, public_base_url),
            now=now,
            tolerance=options.tolerance_seconds,
        )

    @staticmethod
    def _records(body: Any) -> list[dict[str, Any]]:
        records = body if isinstance(body, list) else [body]
        if not records or not all(isinstance(r, dict) for r in records):
            raise Unreadable("not_a_hubspot_object")
        return records

    def _event_id(self, record: dict[str, Any], request: WebhookRequest, index: int) -> str:
        props = _properties(record)
        object_id, modified = _object_id(record, props), text_or_none(props.get("lastmodifieddate"))
        given = f"{object_id}:{modified}" if object_id and modified else None
        return event_id(self.name, given) or f"{self.name}:{digest(request.body, str(index))}"

    def delivery_key(self, request: WebhookRequest, verified: Verified, body: Any) -> str:
        return digest(*(self._event_id(r, request, i) for i, r in enumerate(self._records(body))))

    def translate(self, request: WebhookRequest, verified: Verified, body: Any) -> Translation:
        translation = Translation(topic="workflow")
        signed_at = verified.timestamp.isoformat() if verified.timestamp else None
        for index, record in enumerate(self._records(body)):
            props = _properties(record)
            event: dict[str, Any] = {
                "specVersion": "1.0",
                "eventId": self._event_id(record, request, index),
                "eventType": "customer.updated",
                "source": self.name,
            }
            put(event, "occurredAt", _moment(props.get("lastmodifieddate")) or signed_at)
            customer: dict[str, Any] = {}
            put(customer, "email", text_or_none(props.get("email")))
            put(customer, "firstName", text_or_none(props.get("firstname")))
            put(customer, "lastName", text_or_none(props.get("lastname")))
            put(customer, "phone", text_or_none(props.get("phone")))
            put(customer, "isOptedInMarketing", _optout(props.get("hs_email_optout")))
            put(customer, "createdDateTime", _moment(props.get("createdate")))
            country = text_or_none(props.get("country"))
            if country:
                address: dict[str, Any] = {"country": country}
                put(address, "street", text_or_none(props.get("address")))
                put(address, "city", text_or_none(props.get("city")))
                put(address, "state", text_or_none(props.get("state")))
                put(address, "postalCode", text_or_none(props.get("zip")))
                customer["address"] = address
            event["customer"] = customer
            translation.events.append(CanonicalEvent(event, sender_id=_object_id(record, props), topic="workflow"))
        return translation


ADAPTER = HubSpotAdapter()
