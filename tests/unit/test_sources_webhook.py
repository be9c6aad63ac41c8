"""``handle_webhook`` on memory tables and a memory queue: what is answered, what is queued, what is
kept for operators, and what telemetry says, for authentic and refused deliveries of every source."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from azure.core.exceptions import ServiceRequestError

from shared.adapters.sender_tables import CLAIM_SECONDS, DeliveryStore
from shared.adapters.telemetry import CUSTOM_EVENT_ATTRIBUTE
from shared.core.commerce_bodies.create import build_create_body
from shared.core.contract import NormalisedEvent
from shared.usecases.webhooks import handle_webhook
from tests.support import webhook_signing as sign
from tests.support.builders import NOW
from tests.support.webhook_fakes import WEBHOOKS, Fixture, MemoryTable

SHOPIFY_SECRET = "local-dev-shopify-secret"
CREATE = (WEBHOOKS / "shopify/customers-create.json").read_bytes()


def post(f: Fixture, source: str, body: bytes, headers: dict, url: str | None = None):
    return handle_webhook(
        source, "POST", url or f"http://localhost:7071/api/webhooks/{source}", headers, body, "corr-1", f.deps
    )


def shopify(f: Fixture, body: bytes = CREATE, topic: str = "customers/create", **kw):
    return post(f, "shopify", body, sign.shopify(body, SHOPIFY_SECRET, topic=topic, **kw))


def custom_events(caplog, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, CUSTOM_EVENT_ATTRIBUTE, None) == name]


@pytest.fixture
def f() -> Fixture:
    return Fixture()


def test_an_authentic_shopify_create_is_queued_and_answered_200(f):
    answer = shopify(f)
    assert answer.status == 200, answer.body
    assert answer.body["status"] == "accepted" and answer.body["accepted"] == ["shopify:evt-shopify-1"]
    [event] = f.queue.events()
    assert event["email"] == "bob.biller@example.com" and event["source"] == "shopify"
    assert f.deadletters() == []


@pytest.mark.parametrize("case", ["unsigned", "tampered", "wrong secret", "unknown source", "no secret"])
def test_refused_deliveries_are_401_with_a_reason_and_store_nothing(f, caplog, case):
    headers = sign.shopify(CREATE, SHOPIFY_SECRET, topic="customers/create")
    source, body = "shopify", CREATE
    if case == "unsigned":
        headers.pop("X-Shopify-Hmac-Sha256")
    elif case == "tampered":
        body = CREATE.replace(b"Biller", b"Billet")
    elif case == "wrong secret":
        headers = sign.shopify(CREATE, "another-secret", topic="customers/create")
    elif case == "unknown source":
        source = "zoe.lefevre@example.com"
    else:
        f.config.secrets.pop("shopify")
    with caplog.at_level(logging.DEBUG):
        answer = post(f, source, body, headers)
    assert answer.status == 401 and answer.content_type == "application/problem+json"
    expected = {
        "unsigned": "missing_signature",
        "tampered": "bad_signature",
        "wrong secret": "bad_signature",
        "unknown source": "unknown_source",
        "no secret": "no_secret",
    }[case]
    assert answer.body["reason"] == expected
    [event] = custom_events(caplog, "WebhookRejected")
    assert event.reason == expected and event.source == ("unknown" if case == "unknown source" else "shopify")
    assert f.queue.messages == [] and f.deliveries_table.rows == {} and f.deadletters() == []
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "example.com" not in text and SHOPIFY_SECRET not in text


def test_expired_standard_webhook_is_refused(f):
    body = (WEBHOOKS.parent / "event.json").read_bytes()
    headers = sign.standard(body, "local-dev-standard-webhooks-key", at=NOW - timedelta(minutes=6))
    answer = post(f, "standard", body, headers)
    assert answer.status == 401 and answer.body["reason"] == "expired"


def test_a_redelivery_is_acknowledged_and_not_queued_again(f):
    assert shopify(f).body["status"] == "accepted"
    again = shopify(f, webhook_id="wh-2")  # another delivery of the same event (same X-Shopify-Event-Id)
    assert again.status == 200 and again.body["status"] == "duplicate"
    assert len(f.queue.messages) == 1


def test_a_delivery_being_stored_by_another_request_is_answered_409(f):
    store = f.deps.deliveries
    key = "evt-shopify-1"
    assert store.claim("shopify", key, NOW).state == "new"
    answer = shopify(f)
    assert answer.status == 409 and answer.headers["Retry-After"]
    assert f.queue.messages == []
    f.now = NOW + timedelta(seconds=CLAIM_SECONDS + 1)  # the first request died: its claim is taken over
    assert shopify(f).body["status"] == "accepted"


def test_a_data_problem_is_200_and_a_dead_letter_with_the_reason(f, caplog):
    body = json.loads(CREATE)
    body["phone"] = "+1 000"
    raw = json.dumps(body).encode()
    with caplog.at_level(logging.INFO):
        answer = shopify(f, raw)
    assert answer.status == 200 and answer.body["rejected"] == ["shopify:evt-shopify-1"]
    assert f.queue.messages == []
    [letter] = f.deadletters()
    assert letter.reason == "webhook_rejected" and "/customer/phone invalid_phone" in letter.message
    assert letter.email_hash  # findable by the customer's email hash
    assert json.loads(letter.envelope)["event"]["customer"]["email"] == "bob.biller@example.com"
    [counted] = custom_events(caplog, "CustomerEventDeadLettered")
    assert counted.reason == "webhook_rejected"
    # The refused delivery is done: its redelivery is not dead-lettered twice.
    assert shopify(f, raw).body["status"] == "duplicate"


def test_the_source_policy_can_drop_an_invalid_optional_field(f):
    f = Fixture(WEBHOOK_SOURCE_OPTIONS=json.dumps({"shopify": {"invalidOptionalFields": "drop"}}))
    body = json.loads(CREATE)
    body["phone"] = "+1 000"
    answer = shopify(f, json.dumps(body).encode())
    assert answer.body["accepted"] == ["shopify:evt-shopify-1"] and f.deadletters() == []
    assert "phone" not in f.queue.events()[0]["present"]


def test_source_create_defaults_apply_on_create_only(f):
    f = Fixture(
        WEBHOOK_SOURCE_OPTIONS=json.dumps(
            {"shopify": {"createDefaults": {"customerGroup": "SHOP", "language": "fr-CA", "currencyCode": "cad"}}}
        )
    )
    body = json.loads(CREATE)
    del body["currency"]
    shopify(f, json.dumps(body).encode())
    event = NormalisedEvent.model_validate(f.queue.events()[0])
    create = build_create_body(event, f.settings.mapping)
    assert (create["CustomerGroup"], create["Language"], create["CurrencyCode"]) == ("SHOP", "fr-ca", "CAD")
    assert event.customer_group is None  # not an event field: an update never applies it


def test_a_changed_email_at_the_sender_becomes_previous_email(f):
    shopify(f)
    changed = json.loads(CREATE)
    changed.update(email="bob.b@example.com", updated_at="2026-11-26T05:30:00-05:00")
    shopify(f, json.dumps(changed).encode(), topic="customers/update", event_id="evt-2")
    first, second = f.queue.events()
    assert first.get("previousEmail") is None
    assert (second["email"], second["previousEmail"]) == ("bob.b@example.com", "bob.biller@example.com")
    # An older event with the old address (arriving late) is not turned into a change back: it is
    # judged under the customer's current address, where the ledger finds it older than the change.
    late = json.loads(CREATE)
    late["updated_at"] = "2026-11-26T05:10:00-05:00"
    shopify(f, json.dumps(late).encode(), topic="customers/update", event_id="evt-late")
    assert f.queue.events()[2].get("previousEmail") is None
    assert f.queue.events()[2]["email"] == "bob.b@example.com"


def test_too_many_events_in_one_delivery_is_413_and_nothing_is_kept(f):
    f = Fixture(INGEST_MAX_EVENTS="2")
    body = json.dumps(
        [
            {"eventId": f"e-{i}", "occurredAt": "2026-11-26T10:00:00Z", "customer": {"email": f"p{i}@example.com"}}
            for i in range(3)
        ]
    ).encode()
    answer = post(f, "standard", body, sign.standard(body, "local-dev-standard-webhooks-key", at=NOW))
    assert answer.status == 413 and f.queue.messages == [] and f.deliveries_table.rows == {}


def test_a_consent_topic_without_an_email_takes_the_one_the_sender_id_last_had(f):
    shopify(f)
    body = json.loads((WEBHOOKS / "shopify/customers-email-marketing-consent-update.json").read_text())
    body["email_address"] = None
    answer = shopify(
        f, json.dumps(body).encode(), topic="customers/email_marketing_consent_update", event_id="evt-consent"
    )
    assert answer.body["accepted"] == ["shopify:evt-consent"]
    consent = f.queue.events()[1]
    assert consent["email"] == "bob.biller@example.com" and consent["isOptedInMarketing"] is True
    assert consent["present"] == ["isOptedInMarketing"]


def test_without_an_email_and_no_known_sender_id_the_event_is_a_dead_letter_saying_so(f):
    body = json.loads((WEBHOOKS / "shopify/customers-email-marketing-consent-update.json").read_text())
    body["email_address"] = None
    answer = shopify(f, json.dumps(body).encode(), topic="customers/email_marketing_consent_update")
    assert answer.status == 200 and answer.body["rejected"]
    [letter] = f.deadletters()
    assert "/customer/email required" in letter.message and "none is known" in letter.message


def test_redact_forgets_the_sender_id_and_records_the_erasure_without_personal_data(f):
    shopify(f)
    assert len(f.identities_table.rows) == 1
    body = (WEBHOOKS / "shopify/customers-redact.json").read_bytes()
    answer = shopify(f, body, topic="customers/redact", event_id="evt-redact")
    assert answer.status == 200 and answer.body["erasures"] == 1
    assert f.identities_table.rows == {}
    [letter] = f.deadletters()
    assert letter.reason == "erasure_requested" and letter.envelope == ""
    assert "example.com" not in letter.message and "0135" not in letter.message
    assert letter.email_hash == json.loads(f.queue.messages[0])["event"]["emailHash"]
    from shared.core.ledger_rules import State

    assert f.ledger.read(letter.email_hash).state is State.FORGOTTEN  # shared.usecases.erasure ran
    assert "the sync ledger entry is forgotten" in letter.message


def test_redact_also_forgets_other_senders_records_of_the_address(f):
    shopify(f)
    hubspot = json.dumps(
        {
            "hs_object_id": "9",
            "email": "bob.biller@example.com",
            "firstname": "Bob",
            "lastmodifieddate": "1795687200000",
        }
    ).encode()
    headers = sign.hubspot(
        hubspot,
        "local-dev-hubspot-secret",
        uri="http://localhost:7071/api/webhooks/hubspot",
        timestamp_ms=int(NOW.timestamp() * 1000),
    )
    assert post(f, "hubspot", hubspot, headers).status == 200
    assert len(f.identities_table.rows) == 2
    body = (WEBHOOKS / "shopify/customers-redact.json").read_bytes()
    assert shopify(f, body, topic="customers/redact", event_id="evt-redact").status == 200
    assert f.identities_table.rows == {}


def test_ignored_topics_and_nothing_to_apply(f):
    answer = shopify(f, CREATE, topic="orders/create", event_id="e-order")
    assert answer.status == 200 and answer.body == {**answer.body, "status": "ignored", "ignored": ["orders/create"]}
    body = json.loads((WEBHOOKS / "shopify/customers-marketing-consent-update.json").read_text())
    body["phone"] = None  # nothing left to apply: no event, rather than an email-only create
    shopify(f)
    answer = shopify(f, json.dumps(body).encode(), topic="customers/marketing_consent_update", event_id="e-sms")
    assert answer.body["status"] == "ignored" and len(f.queue.messages) == 1


def test_an_authentic_body_that_is_not_json_is_kept_and_acknowledged(f):
    body = b'{"id": 1, "email": '
    answer = shopify(f, body)
    assert answer.status == 200 and answer.body["status"] == "unreadable"
    [letter] = f.deadletters()
    assert letter.reason == "webhook_unreadable" and json.loads(letter.envelope)["body"] == body.decode()


def test_a_queue_outage_is_503_and_the_retry_stores_it(f):
    f.queue.fail = ServiceRequestError("queue down")
    answer = shopify(f)
    assert answer.status == 503 and answer.headers["Retry-After"]
    assert f.deliveries_table.rows == {}  # the claim was released
    f.queue.fail = None
    assert shopify(f).body["status"] == "accepted" and len(f.queue.messages) == 1


def test_a_delivery_table_outage_is_503_before_anything_is_queued(f):
    f.deliveries_table.fail = ServiceRequestError("table down")
    assert shopify(f).status == 503 and f.queue.messages == []


def test_shop_allow_list(f):
    f = Fixture(WEBHOOK_SOURCE_OPTIONS=json.dumps({"shopify": {"shopDomains": ["sample-shop.myshopify.com"]}}))
    assert shopify(f).status == 200
    other = post(
        f,
        "shopify",
        CREATE,
        sign.shopify(CREATE, SHOPIFY_SECRET, topic="customers/create", shop="other.myshopify.com", event_id="e-9"),
    )
    assert other.status == 401 and other.body["reason"] == "shop_not_allowed"


def test_rotation_two_active_secrets(f):
    f = Fixture(WEBHOOK_SECRETS=json.dumps({"shopify": ["new-secret", SHOPIFY_SECRET]}))
    assert shopify(f).status == 200
    body = CREATE.replace(b"Bob", b"Rob")
    assert (
        post(f, "shopify", body, sign.shopify(body, "new-secret", topic="customers/update", event_id="e-new")).status
        == 200
    )
    assert (
        post(f, "shopify", body, sign.shopify(body, "retired", topic="customers/update", event_id="e-old")).status
        == 401
    )


def test_klaviyo_batch_and_webhook_id_check(f):
    body = (WEBHOOKS / "klaviyo/email-marketing-subscription.json").read_bytes()
    answer = post(f, "klaviyo", body, sign.klaviyo(body, "local-dev-klaviyo-secret"))
    assert answer.status == 200 and answer.body["accepted"] == ["klaviyo:5xWZ8N3tYqA"]
    assert answer.body["ignored"] == ["event:klaviyo.opened_email"]
    answer = post(f, "klaviyo", body, sign.klaviyo(body, "local-dev-klaviyo-secret", webhook_id="01KB0OTHER"))
    assert answer.status == 401 and answer.body["reason"] == "webhook_id_mismatch"


def test_hubspot_behind_a_front_end_uses_the_public_base_url(f):
    f = Fixture(WEBHOOK_PUBLIC_BASE_URL="https://sync.example.com")
    body = (WEBHOOKS / "hubspot/workflow-contact.json").read_bytes()
    public = "https://sync.example.com/api/webhooks/hubspot?code=fkey"
    headers = sign.hubspot(body, "local-dev-hubspot-secret", uri=public, timestamp_ms=int(NOW.timestamp() * 1000))
    answer = post(f, "hubspot", body, headers, url="http://10.0.0.4:80/api/webhooks/hubspot?code=fkey")
    assert answer.status == 200 and answer.body["accepted"] == ["hubspot:3234574:1795687200000"]
    assert (
        Fixture().deps
        and post(Fixture(), "hubspot", body, headers, url="http://10.0.0.4:80/api/webhooks/hubspot?code=fkey").status
        == 401
    )


def test_standard_webhooks_carry_the_canonical_contract(f):
    body = (WEBHOOKS.parent / "batch.json").read_bytes()
    answer = post(f, "standard", body, sign.standard(body, "local-dev-standard-webhooks-key", at=NOW))
    assert answer.status == 200 and len(answer.body["accepted"]) >= 3
    assert (
        f.queue.events()[0]["eventId"] == json.loads(body)[0]["eventId"]
        if isinstance(json.loads(body), list)
        else f.queue.events()[0]["eventId"] == json.loads(body)["events"][0]["eventId"]
    )


def test_a_mapping_file_source(f):
    body = (WEBHOOKS / "example-cdp/profiles.json").read_bytes()
    answer = post(f, "example-cdp", body, sign.hmac_header(body, "local-dev-example-cdp-secret"))
    assert answer.status == 200 and answer.body["accepted"] == ["example-cdp:chg-000187"]
    assert answer.body["ignored"] == ["profile.merged"]
    [event] = f.queue.events()
    assert event["phone"] == "+12065550187" and event["isOptedInMarketing"] is True


def test_oversized_bodies_are_413(f):
    f = Fixture(INGEST_MAX_BODY_BYTES="1024")
    assert shopify(f, b"{" + b" " * 2000 + b"}").status == 413


def test_delivery_store_reads_yesterday_and_purges_older_days():
    table = MemoryTable()
    store = DeliveryStore(table)
    for days in (0, 1, 2, 5):
        claim = store.claim("shopify", f"d{days}", NOW - timedelta(days=days))
        store.complete(claim, NOW - timedelta(days=days), queued=1, rejected=0, outcome="accepted")
    assert store.purge(["shopify"], NOW) == 2
    assert sorted(pk for pk, _ in table.rows) == ["shopify-20261125", "shopify-20261126"]
    assert store.claim("shopify", "d1", NOW).state == "duplicate"  # found in yesterday's partition
    assert store.claim("shopify", "d5", NOW).state == "new"  # past the window: the ledger's turn


def test_a_refused_event_s_problems_never_quote_the_sender_s_values(f, caplog):
    event = {
        "eventId": "e-1",
        "occurredAt": "2026-11-26T10:00:00Z",
        "customer": {
            "email": "zoe.obrien@example.com",
            "phone": "+1 206 555 0142 999",
            "zoe.obrien@example.com": "a property named after the customer",
        },
    }
    body = json.dumps(event).encode()
    with caplog.at_level(logging.DEBUG):
        answer = post(f, "standard", body, sign.standard(body, "local-dev-standard-webhooks-key", at=NOW))
    assert answer.body["rejected"] == ["e-1"]
    [letter] = f.deadletters()
    logged = " ".join(r.getMessage() for r in caplog.records)
    for text in (letter.message, logged, json.dumps(answer.body)):
        assert "zoe.obrien" not in text and "555" not in text
    assert "unknown_property" in letter.message
