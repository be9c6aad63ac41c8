"""Each adapter's translation of the vendor's own payloads (samples/webhooks, written from each
vendor's published examples) into canonical events, and the mapping-file loader."""

from __future__ import annotations

import json

import pytest

from shared.core.sources import hubspot, klaviyo, shopify, standard
from shared.core.sources.base import Unreadable, WebhookRequest
from shared.core.sources.declarative import DeclarativeAdapter, MappingError, load_mapping, parse_path
from shared.core.sources.signatures import Headers, Verified
from tests.support.repo import ROOT
from tests.support.webhook_fakes import WEBHOOKS


def request(source: str, body: bytes, **headers: str) -> WebhookRequest:
    return WebhookRequest(
        source=source, method="POST", url=f"http://localhost/api/webhooks/{source}", headers=Headers(headers), body=body
    )


def translate(adapter, path, verified=None, **headers):
    verified = verified or Verified()
    body = (WEBHOOKS / path).read_bytes()
    return adapter.translate(request(adapter.name, body, **headers), verified, json.loads(body))


def test_shopify_customer_create_2025_01_shape():
    t = translate(
        shopify.ADAPTER,
        "shopify/customers-create.json",
        **{"X-Shopify-Topic": "customers/create", "X-Shopify-Event-Id": "e-1"},
    )
    [item] = t.events
    assert item.sender_id == "706405506930370084"
    event = item.raw
    assert (event["eventId"], event["eventType"], event["occurredAt"]) == (
        "shopify:e-1",
        "customer.created",
        "2026-11-26T05:00:00-05:00",
    )
    customer = event["customer"]
    assert customer["email"] == "bob.biller@example.com"
    assert (customer["firstName"], customer["lastName"], customer["phone"]) == ("Bob", "Biller", "+12065550135")
    assert customer["currencyCode"] == "USD"
    assert "isOptedInMarketing" not in customer  # 2025-01: consent comes on its own topics
    assert customer["address"] == {
        "street": "1 Main St, Suite 200",
        "city": "Seattle",
        "name": "Bob Biller",
        "state": "WA",
        "postalCode": "98101",
        "country": "US",
    }


def test_shopify_update_before_2025_01_carries_consent_and_keeps_non_ascii():
    t = translate(
        shopify.ADAPTER,
        "shopify/customers-update-2024-10.json",
        **{"X-Shopify-Topic": "customers/update", "X-Shopify-Event-Id": "e-2"},
    )
    customer = t.events[0].raw["customer"]
    assert customer["isOptedInMarketing"] is True
    assert (customer["firstName"], customer["lastName"]) == ("Zoë", "Lefèvre")
    assert customer["phone"] is None  # Shopify says the customer has no phone: cleared
    assert customer["address"]["city"] == "Montréal" and customer["address"]["state"] == "QC"
    assert customer["address"]["postalCode"] == "h2x 3k8"  # normalised later, by validation


def test_shopify_consent_topics_change_only_their_field():
    t = translate(
        shopify.ADAPTER,
        "shopify/customers-email-marketing-consent-update.json",
        **{"X-Shopify-Topic": shopify.EMAIL_CONSENT_TOPIC, "X-Shopify-Event-Id": "e-3"},
    )
    [item] = t.events
    assert item.raw["customer"] == {"email": "bob.biller@example.com", "isOptedInMarketing": True}
    assert item.raw["occurredAt"] == "2026-11-26T05:00:00-05:00" and item.sender_id == "706405506930370084"
    t = translate(
        shopify.ADAPTER,
        "shopify/customers-marketing-consent-update.json",
        **{"X-Shopify-Topic": shopify.SMS_CONSENT_TOPIC, "X-Shopify-Event-Id": "e-4"},
    )
    assert t.events[0].raw["customer"] == {"phone": "+12065550199"}  # the email comes from the sender-id map


@pytest.mark.parametrize(
    "state, expected",
    [("subscribed", True), ("unsubscribed", False), ("not_subscribed", False), ("pending", None), ("redacted", None)],
)
def test_shopify_consent_states(state, expected):
    assert shopify._consent({"state": state}) is expected


def test_shopify_redact_and_other_topics():
    t = translate(shopify.ADAPTER, "shopify/customers-redact.json", **{"X-Shopify-Topic": "customers/redact"})
    [erasure] = t.erasures
    assert (erasure.sender_id, erasure.email) == ("706405506930370084", "bob.biller@example.com")
    assert t.events == []
    t = translate(shopify.ADAPTER, "shopify/customers-create.json", **{"X-Shopify-Topic": "orders/create"})
    assert t.ignored == ["orders/create"] and t.events == []
    with pytest.raises(Unreadable):
        shopify.ADAPTER.translate(request("shopify", b"[]", **{"X-Shopify-Topic": "customers/create"}), Verified(), [])


def test_klaviyo_batch_applies_consent_topics_and_ignores_the_rest():
    t = translate(klaviyo.ADAPTER, "klaviyo/email-marketing-subscription.json")
    [item] = t.events
    assert t.ignored == ["event:klaviyo.opened_email"]
    assert item.sender_id == "01KB0PROFILEADA"
    assert item.raw["eventId"] == "klaviyo:5xWZ8N3tYqA" and item.raw["occurredAt"] == "2026-11-26T10:00:00+00:00"
    customer = item.raw["customer"]
    assert customer["email"] == "ada.lovelace@example.com" and customer["isOptedInMarketing"] is True
    assert customer["address"] == {
        "street": "1 Main St",
        "city": "Seattle",
        "state": "WA",
        "postalCode": "98101",
        "country": "United States",
    }


def test_klaviyo_delivery_key_is_the_same_for_every_attempt():
    body = json.loads((WEBHOOKS / "klaviyo/email-marketing-subscription.json").read_text())
    again = {**body, "meta": {**body["meta"], "timestamp": "2026-11-26T10:31:05+00:00"}}
    key = klaviyo.ADAPTER.delivery_key(request("klaviyo", b"a"), Verified(), body)
    assert key == klaviyo.ADAPTER.delivery_key(request("klaviyo", b"b"), Verified(), again)


def test_hubspot_default_and_customised_bodies():
    t = translate(hubspot.ADAPTER, "hubspot/workflow-contact.json")
    [item] = t.events
    assert item.sender_id == "3234574"
    assert item.raw["eventId"] == "hubspot:3234574:1795687200000"
    assert item.raw["occurredAt"] == "2026-11-26T10:00:00+00:00"
    customer = item.raw["customer"]
    assert (customer["email"], customer["firstName"], customer["lastName"]) == (
        "katherine.johnson@example.com",
        "Katherine",
        "Johnson",
    )
    assert "isOptedInMarketing" not in customer  # hs_email_optout false says nothing about an opt-in
    assert customer["address"]["state"] == "Washington" and customer["address"]["country"] == "United States"
    t = translate(hubspot.ADAPTER, "hubspot/workflow-custom-body.json")
    customer = t.events[0].raw["customer"]
    assert customer == {
        "email": "katherine.goble@example.com",
        "firstName": "Katherine",
        "lastName": "Goble",
        "isOptedInMarketing": False,
    }
    assert t.events[0].sender_id == "3234574"


def test_hubspot_signed_uri_uses_the_public_base():
    assert (
        hubspot.signed_uri("http://127.0.0.1:7071/api/webhooks/hubspot?code=k", "https://sync.example.com")
        == "https://sync.example.com/api/webhooks/hubspot?code=k"
    )
    assert hubspot.signed_uri("http://h/api/webhooks/hubspot", "") == "http://h/api/webhooks/hubspot"


def test_standard_keeps_the_canonical_events_as_sent():
    body = (ROOT / "samples" / "batch.json").read_bytes()
    t = standard.ADAPTER.translate(request("standard", body), Verified(), json.loads(body))
    assert (
        [e.raw for e in t.events] == json.loads(body)["events"]
        if isinstance(json.loads(body), dict)
        else [e.raw for e in t.events] == json.loads(body)
    )


def test_the_sample_mapping_file_translates_its_sample():
    spec = load_mapping("example-cdp", (WEBHOOKS / "mappings" / "example-cdp.json").read_text())
    adapter = DeclarativeAdapter(spec)
    t = translate(adapter, "example-cdp/profiles.json")
    assert t.ignored == ["profile.merged"]
    [item] = t.events
    assert item.sender_id == "p-4471"
    assert item.raw["eventId"] == "example-cdp:chg-000187"
    assert item.raw["eventType"] == "customer.created"
    assert item.raw["occurredAt"] == "2026-11-26T10:00:00+00:00"
    customer = item.raw["customer"]
    assert customer["isOptedInMarketing"] is True and customer["language"] == "en-US"
    assert customer["address"]["country"] == "US" and customer["address"]["postalCode"] == "98101"


def test_mapping_defaults_fill_what_the_record_lacks():
    spec = load_mapping(
        "m",
        json.dumps(
            {
                "signature": {"scheme": "standard"},
                "fields": {"eventId": "id", "occurredAt": "at", "customer.email": "mail"},
                "defaults": {
                    "customer.customerGroup": "30",
                    "customer.address.country": "DE",
                    "eventType": "customer.updated",
                },
            }
        ),
    )
    t = DeclarativeAdapter(spec).translate(
        request("m", b""), Verified(), [{"id": 7, "at": "2026-11-26T10:00:00Z", "mail": "a@example.com"}]
    )
    assert t.events[0].raw == {
        "specVersion": "1.0",
        "source": "m",
        "eventId": "m:7",
        "occurredAt": "2026-11-26T10:00:00Z",
        "eventType": "customer.updated",
        "customer": {"email": "a@example.com", "customerGroup": "30", "address": {"country": "DE"}},
    }


def test_paths():
    assert parse_path("a.b.0.c") == ("a", "b", 0, "c")
    assert parse_path('traits["first.name"].x') == ("traits", "first.name", "x")
    with pytest.raises(MappingError):
        parse_path("a..b")


@pytest.mark.parametrize(
    "mapping, message",
    [
        ({"signature": {"scheme": "md5"}, "fields": {}}, "signature.scheme"),
        ({"signature": {"scheme": "hmac"}, "fields": {}}, "header is required"),
        (
            {"signature": {"scheme": "standard"}, "fields": {"eventId": "i", "occurredAt": "t", "customer.emial": "e"}},
            "not a contract field",
        ),
        ({"signature": {"scheme": "standard"}, "fields": {"occurredAt": "t", "customer.email": "e"}}, "eventId"),
        ({"signature": {"scheme": "standard"}, "fields": {"eventId": "i", "customer.email": "e"}}, "occurredAt"),
        (
            {
                "signature": {"scheme": "standard"},
                "fields": {"eventId": "i", "customer.email": "e", "occurredAt": {"path": "t", "format": "x"}},
            },
            "format",
        ),
        ({"signature": {"scheme": "standard", "header": "x"}, "fields": {}}, "takes no other keys"),
        ({"signature": {"scheme": "standard"}, "fields": {}, "extra": 1}, "unknown keys"),
    ],
)
def test_mapping_errors_say_what_is_wrong(mapping, message):
    with pytest.raises(MappingError, match=message):
        load_mapping("m", json.dumps(mapping))
