"""Signed webhooks end to end: the vendor's own payload (samples/webhooks), signed as the vendor signs
(standardwebhooks and hubspot-api-client where they exist, a plain HMAC otherwise), posted to the local
Functions host, queued on Azurite, processed, and read back from the Commerce emulator."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC
from pathlib import Path

import pytest
import requests

from tests.support import webhook_signing as sign

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WEBHOOKS = ROOT / "samples" / "webhooks"
SHOPIFY = "local-dev-shopify-secret"
CREATE = (WEBHOOKS / "shopify/customers-create.json").read_bytes()


def webhook_settings(**extra: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return {"WEBHOOK_DELIVERY_TABLE_NAME": f"whd{suffix}", "WEBHOOK_IDENTITY_TABLE_NAME": f"whi{suffix}", **extra}


@pytest.fixture
def stack(stack_factory):
    return stack_factory(settings=webhook_settings())


def post(stack, source: str, body: bytes, headers: dict) -> requests.Response:
    return requests.post(f"{stack.host.http_url}/webhooks/{source}", data=body, headers=headers, timeout=30)


def shopify(
    stack, body: bytes = CREATE, topic: str = "customers/create", event_id: str = "evt-1", secret: str = SHOPIFY, **kw
) -> requests.Response:
    return post(stack, "shopify", body, sign.shopify(body, secret, topic=topic, event_id=event_id, **kw))


def customers_with(emulator, email: str) -> list[dict]:
    return [c for c in emulator.customers() if (c.get("Email") or "").lower() == email.lower()]


def opted_in(customer: dict) -> bool:
    [contact] = [c for c in customer["Contacts"] if c["AddressTypeValue"] == 2]
    return contact["IsOptedInMarketing"]


def queue_is_empty(stack) -> bool:
    return stack.raw_queue_messages(stack.runtime.settings.events_queue) == []


# --- every source, ending with the right customer in Commerce ------------------------------------


def test_shopify_customer_create_becomes_a_commerce_customer_within_shopify_s_5_seconds(stack):
    started = time.monotonic()
    response = shopify(stack)
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert elapsed < 5, f"Shopify waits 5 s; answered in {elapsed:.2f} s"
    assert response.json()["accepted"] == ["shopify:evt-1"]
    stack.wait()
    [customer] = customers_with(stack.emulator, "bob.biller@example.com")
    assert (customer["FirstName"], customer["LastName"], customer["Phone"]) == ("Bob", "Biller", "+12065550135")
    [address] = customer["Addresses"]
    assert (
        address["Street"],
        address["City"],
        address["State"],
        address["ZipCode"],
        address["ThreeLetterISORegionName"],
    ) == ("1 Main St, Suite 200", "Seattle", "WA", "98101", "USA")
    assert customer["CurrencyCode"] == "USD"


def test_shopify_update_before_2025_01_with_non_ascii_text_and_consent(stack):
    body = (WEBHOOKS / "shopify/customers-update-2024-10.json").read_bytes()
    assert shopify(stack, body, topic="customers/update", event_id="evt-zoe").status_code == 200
    stack.wait()
    [customer] = customers_with(stack.emulator, "zoe.lefevre@example.com")
    assert (customer["FirstName"], customer["LastName"]) == ("Zoë", "Lefèvre")
    [address] = customer["Addresses"]
    assert (address["City"], address["State"], address["ZipCode"]) == ("Montréal", "QC", "H2X 3K8")
    assert opted_in(customer) is True


def test_klaviyo_batch_subscribes_the_profile(stack):
    body = (WEBHOOKS / "klaviyo/email-marketing-subscription.json").read_bytes()
    response = post(stack, "klaviyo", body, sign.klaviyo(body, "local-dev-klaviyo-secret"))
    assert response.status_code == 200, response.text
    assert response.json()["ignored"] == ["event:klaviyo.opened_email"]
    stack.wait()
    [customer] = customers_with(stack.emulator, "ada.lovelace@example.com")
    assert (customer["FirstName"], customer["LastName"]) == ("Ada", "Lovelace") and opted_in(customer)


def test_hubspot_workflow_webhook_behind_the_front_end(stack_factory):
    stack = stack_factory(settings=webhook_settings(WEBHOOK_PUBLIC_BASE_URL="https://sync.example.com"))
    body = (WEBHOOKS / "hubspot/workflow-contact.json").read_bytes()
    # HubSpot signs the URL it was given; the local host sees http://127.0.0.1:<port>/api/...
    headers = sign.hubspot(
        body, "local-dev-hubspot-secret", uri="https://sync.example.com/api/webhooks/hubspot?code=the-key"
    )
    response = requests.post(
        f"{stack.host.http_url}/webhooks/hubspot?code=the-key", data=body, headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text
    stack.wait()
    [customer] = customers_with(stack.emulator, "katherine.johnson@example.com")
    assert customer["FirstName"] == "Katherine" and customer["Addresses"][0]["State"] == "WA"


def test_standard_webhooks_with_the_canonical_event(stack):
    body = (ROOT / "samples" / "event.json").read_bytes()
    response = post(stack, "standard", body, sign.standard(body, "local-dev-standard-webhooks-key", msg_id="msg_2Kzx"))
    assert response.status_code == 200, response.text
    stack.wait()
    email = json.loads(body)["customer"]["email"]
    assert len(customers_with(stack.emulator, email)) == 1


def test_a_mapping_file_source_with_no_code(stack):
    body = (WEBHOOKS / "example-cdp/profiles.json").read_bytes()
    response = post(stack, "example-cdp", body, sign.hmac_header(body, "local-dev-example-cdp-secret"))
    assert response.status_code == 200, response.text
    stack.wait()
    [customer] = customers_with(stack.emulator, "grace.hopper@example.com")
    assert customer["Phone"] == "+12065550187" and customer["Language"] == "en-us" and opted_in(customer)


# --- refused, redelivered, wrong data ---------------------------------------------------------


@pytest.mark.parametrize("case", ["unsigned", "tampered", "expired", "unknown source"])
def test_unauthentic_deliveries_are_401_and_nothing_is_queued(stack, case):
    body = (ROOT / "samples" / "event.json").read_bytes()
    source = "standard"
    headers = sign.standard(body, "local-dev-standard-webhooks-key")
    if case == "unsigned":
        headers.pop("webhook-signature")
    elif case == "tampered":
        body = body.replace(b"Jane", b"Joan") if b"Jane" in body else body + b" "
    elif case == "expired":
        from datetime import datetime, timedelta

        headers = sign.standard(body, "local-dev-standard-webhooks-key", at=datetime.now(UTC) - timedelta(minutes=10))
    else:
        source = "marketo"
    response = post(stack, source, body, headers)
    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["reason"] in ("missing_signature", "bad_signature", "expired", "unknown_source")
    assert [r.reason for r in stack.telemetry.custom_events("WebhookRejected")] == [response.json()["reason"]]
    stack.wait()
    assert queue_is_empty(stack) and stack.emulator.customers() == [] and stack.deadletters() == []


def test_a_redelivery_is_200_and_costs_no_commerce_call(stack):
    assert shopify(stack).status_code == 200
    stack.wait()
    calls = stack.emulator.calls()
    again = [shopify(stack, webhook_id=f"wh-{i}") for i in range(3)]
    assert [r.json()["status"] for r in again] == ["duplicate"] * 3
    stack.wait()
    assert queue_is_empty(stack)
    assert stack.emulator.calls() == calls
    assert stack.telemetry.outcomes() == ["created"]


def test_a_data_problem_is_200_and_kept_for_operators(stack):
    body = json.loads(CREATE)
    body["default_address"]["zip"] = "ABCDE"  # not a US postal code
    body["addresses"] = [body["default_address"]]
    response = shopify(stack, json.dumps(body).encode())
    assert response.status_code == 200 and response.json()["rejected"] == ["shopify:evt-1"]
    stack.wait()
    [letter] = stack.deadletters()
    assert letter.reason == "webhook_rejected" and "/customer/address/postalCode invalid_postal_code" in letter.message
    assert stack.emulator.customers() == []
    assert stack.telemetry.custom_events("CustomerEventDeadLettered")


def test_rotation_two_secrets_are_accepted_at_once(stack_factory):
    stack = stack_factory(
        settings=webhook_settings(WEBHOOK_SECRETS=json.dumps({"shopify": ["local-dev-shopify-next", SHOPIFY]}))
    )
    assert shopify(stack, secret=SHOPIFY).status_code == 200
    renamed = CREATE.replace(b'"first_name": "Bob"', b'"first_name": "Robert"').replace(
        b'"updated_at": "2026-11-26T05:00:00-05:00"', b'"updated_at": "2026-11-26T05:05:00-05:00"'
    )
    assert (
        shopify(stack, renamed, topic="customers/update", event_id="evt-2", secret="local-dev-shopify-next").status_code
        == 200
    )
    assert (
        shopify(
            stack, renamed, topic="customers/update", event_id="evt-3", secret="local-dev-shopify-retired"
        ).status_code
        == 401
    )
    stack.wait()
    [customer] = customers_with(stack.emulator, "bob.biller@example.com")
    assert customer["FirstName"] == "Robert"


def test_an_email_changed_at_shopify_moves_the_customer_instead_of_creating_one(stack):
    assert shopify(stack).status_code == 200
    stack.wait()
    changed = json.loads(CREATE)
    changed.update(email="bob.b@example.com", updated_at="2026-11-26T06:00:00-05:00")
    assert shopify(stack, json.dumps(changed).encode(), topic="customers/update", event_id="evt-2").status_code == 200
    stack.wait()
    [customer] = stack.emulator.customers()
    assert customer["Email"] == "bob.b@example.com"
    assert stack.emulator.calls()["create"] == 1


def test_customer_update_and_consent_with_the_same_updated_at_both_apply(stack):
    """Shopify's customers/update and customers/email_marketing_consent_update for one change carry the
    same time to the second; they are two events with their own ids, and each changes its own fields."""
    assert shopify(stack).status_code == 200
    stack.wait()
    at = "2026-11-26T07:00:00-05:00"
    update = json.loads(CREATE)
    update.update(last_name="Billington", updated_at=at)
    consent = json.loads((WEBHOOKS / "shopify/customers-email-marketing-consent-update.json").read_text())
    consent["email_marketing_consent"]["consent_updated_at"] = at
    assert (
        shopify(
            stack,
            json.dumps(consent).encode(),
            topic="customers/email_marketing_consent_update",
            event_id="evt-consent",
        ).status_code
        == 200
    )
    assert (
        shopify(stack, json.dumps(update).encode(), topic="customers/update", event_id="evt-update").status_code == 200
    )
    stack.wait()
    [customer] = customers_with(stack.emulator, "bob.biller@example.com")
    assert customer["LastName"] == "Billington"
    assert opted_in(customer) is True


def test_redact_erases_what_the_integration_holds_and_leaves_a_note_for_headquarters(stack):
    assert shopify(stack).status_code == 200
    stack.wait()
    [customer] = stack.emulator.customers()
    body = (WEBHOOKS / "shopify/customers-redact.json").read_bytes()
    response = shopify(stack, body, topic="customers/redact", event_id="evt-redact")
    assert response.status_code == 200 and response.json()["erasures"] == 1
    [letter] = stack.deadletters()
    assert letter.reason == "erasure_requested" and letter.envelope == ""
    assert f"Commerce account {customer['AccountNumber']}" in letter.message
    assert "example.com" not in letter.message
    identities = stack.runtime.storage.table(stack.env["WEBHOOK_IDENTITY_TABLE_NAME"])
    assert list(identities.list_entities()) == []
    assert stack.telemetry.custom_events("CustomerErased")
    # A change from before the erasure that arrives late does not bring the data back.
    late = json.loads(CREATE)
    late.update(first_name="Robert", updated_at="2026-11-26T05:30:00-05:00")
    assert shopify(stack, json.dumps(late).encode(), topic="customers/update", event_id="evt-late").status_code == 200
    stack.wait()
    assert stack.telemetry.outcomes()[-1] in ("stale", "duplicate")
    assert stack.emulator.customers()[0]["FirstName"] == "Bob"


def test_an_update_with_a_new_email_before_the_late_create_leaves_one_customer(stack):
    """Shopify can deliver customers/update before customers/create. Here the email changed in
    between: the late create (older, old address) must not create a second customer."""
    update = json.loads(CREATE)
    update.update(email="bob.b@example.com", updated_at="2026-11-26T06:00:00-05:00")
    assert shopify(stack, json.dumps(update).encode(), topic="customers/update", event_id="evt-2").status_code == 200
    stack.wait()
    assert shopify(stack, CREATE, topic="customers/create", event_id="evt-1").status_code == 200
    stack.wait()
    [customer] = stack.emulator.customers()
    assert customer["Email"] == "bob.b@example.com"
    assert stack.emulator.calls()["create"] == 1
