"""Signature checks over the raw bytes, against the vendors' reference code where it exists:
``standardwebhooks`` signs the Standard Webhooks cases, ``hubspot-api-client`` the HubSpot ones; Shopify,
Klaviyo and named HMAC headers are signed by a plain HMAC written from the vendor's documentation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook, WebhookVerificationError

from shared.core.sources import signatures as sig
from shared.core.sources.signatures import Headers, HmacHeaderScheme, SignatureRejected
from tests.support import webhook_signing as sign

NOW = datetime.now(UTC).replace(microsecond=0)
STANDARD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks spec's example secret
STANDARD_NEXT = "local-dev-standard-webhooks-key"

# One customer, three ways to write the same JSON: each is signed and verified as its own bytes.
BODIES = {
    "non-ASCII": '{"email":"zoë.lefèvre@example.com","firstName":"Zoë","city":"Montréal","note":"東京 😀"}',
    "reordered keys": '{"city":"Montréal","firstName":"Zoë","email":"zoë.lefèvre@example.com"}',
    "odd whitespace": '{\n\t"email" :  "zoë.lefèvre@example.com" ,\r\n  "firstName":"Zo\\u00eb"   }\n\n',
}


def rejected(reason: str):
    return pytest.raises(SignatureRejected, match=f"^{reason}$")


# --- Standard Webhooks -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BODIES))
def test_standard_bodies_verify_byte_for_byte(name):
    body = BODIES[name].encode("utf-8")
    headers = sign.standard(body, STANDARD, msg_id="msg_2Lk", at=NOW)
    verified = sig.verify_standard(body, Headers(headers), [STANDARD], NOW)
    assert verified.delivery_id == "msg_2Lk"
    # The same document re-serialised is other bytes: it must not verify.
    reserialised = json.dumps(json.loads(body)).encode()
    assert reserialised != body
    with rejected("bad_signature"):
        sig.verify_standard(reserialised, Headers(headers), [STANDARD], NOW)


def test_standard_tampered_body_or_id_is_refused():
    body = BODIES["non-ASCII"].encode()
    headers = sign.standard(body, STANDARD, at=NOW)
    with rejected("bad_signature"):
        sig.verify_standard(body.replace(b"Zo", b"Zi"), Headers(headers), [STANDARD], NOW)
    with rejected("bad_signature"):
        sig.verify_standard(body, Headers({**headers, "webhook-id": "msg_other"}), [STANDARD], NOW)


@pytest.mark.parametrize("skew, ok", [(-299, True), (299, True), (-301, False), (301, False)])
def test_standard_timestamp_tolerance_is_five_minutes_either_way(skew, ok):
    body = b'{"eventId":"e"}'
    headers = sign.standard(body, STANDARD, at=NOW + timedelta(seconds=skew))
    if ok:
        sig.verify_standard(body, Headers(headers), [STANDARD], NOW)
    else:
        with rejected("expired"):
            sig.verify_standard(body, Headers(headers), [STANDARD], NOW)


def test_standard_rotation_any_active_secret_and_any_listed_signature():
    body = b'{"eventId":"e"}'
    old_only = sign.standard(body, STANDARD, at=NOW)
    # The sender signs with both while it rotates: "v1,<new> v1,<old>".
    new_sig = sign.standard(body, STANDARD_NEXT, at=NOW)["webhook-signature"]
    both = {**old_only, "webhook-signature": f"{new_sig} {old_only['webhook-signature']}"}
    for headers in (old_only, both):
        sig.verify_standard(body, Headers(headers), [STANDARD_NEXT, STANDARD], NOW)
        sig.verify_standard(body, Headers(headers), [STANDARD, STANDARD_NEXT], NOW)
    with rejected("bad_signature"):
        sig.verify_standard(body, Headers(old_only), [STANDARD_NEXT], NOW)


def test_standard_missing_malformed_and_unsupported_signatures():
    body = b"{}"
    good = sign.standard(body, STANDARD, at=NOW)
    for dropped in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        with rejected("missing_signature"):
            sig.verify_standard(body, Headers({k: v for k, v in good.items() if k != dropped}), [STANDARD], NOW)
    with rejected("unsupported_signature"):  # ed25519 only
        sig.verify_standard(body, Headers({**good, "webhook-signature": "v1a,AAAA"}), [STANDARD], NOW)
    with rejected("malformed_signature"):
        sig.verify_standard(body, Headers({**good, "webhook-signature": "v1,not base64!"}), [STANDARD], NOW)
    with rejected("malformed_signature"):
        sig.verify_standard(body, Headers({**good, "webhook-timestamp": "yesterday"}), [STANDARD], NOW)
    with rejected("no_secret"):
        sig.verify_standard(body, Headers(good), [], NOW)


@settings(max_examples=150, deadline=None)
@given(text=st.text(min_size=0, max_size=200), flip=st.integers(min_value=0, max_value=10_000))
def test_standard_agrees_with_the_reference_library(text, flip):
    """Whatever the reference library signs, this accepts; one changed byte, both refuse."""
    body = text.encode("utf-8")
    # Signed now: the reference library checks the timestamp against the real clock.
    now = datetime.now(UTC)
    headers = sign.standard(body, STANDARD, msg_id="msg_p", at=now)
    sig.verify_standard(body, Headers(headers), [STANDARD], now)
    Webhook(STANDARD).verify(body, headers, json_parse=False)
    if body:
        i = flip % len(body)
        tampered = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
        with rejected("bad_signature"):
            sig.verify_standard(tampered, Headers(headers), [STANDARD], now)
        try:
            tampered_text = tampered.decode("utf-8")
        except UnicodeDecodeError:
            return
        with pytest.raises(WebhookVerificationError):
            Webhook(STANDARD).verify(tampered_text, headers, json_parse=False)


def test_standard_secrets_decode_as_the_reference_library_decodes_them():
    for secret in (STANDARD, STANDARD_NEXT, "whsec_" + base64.b64encode(b"k" * 24).decode().rstrip("=")):
        assert sig.standard_secret(secret) == Webhook(secret)._whsecret


# --- Shopify -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BODIES))
def test_shopify_bodies_verify_and_tampering_fails(name):
    body = BODIES[name].encode()
    headers = sign.shopify(body, "shpss_secret", topic="customers/update")
    verified = sig.verify_shopify(body, Headers(headers), ["shpss_secret"])
    assert verified.delivery_id == "evt-shopify-1"
    with rejected("bad_signature"):
        sig.verify_shopify(body + b" ", Headers(headers), ["shpss_secret"])


def test_shopify_rotation_headers_case_and_event_id_fallback():
    body = b'{"id":1}'
    headers = {k.lower(): v for k, v in sign.shopify(body, "old", topic="t", event_id=None).items()}
    verified = sig.verify_shopify(body, Headers(headers), ["new", "old"])
    assert verified.delivery_id == "wh-1"  # X-Shopify-Webhook-Id without X-Shopify-Event-Id
    with rejected("bad_signature"):
        sig.verify_shopify(body, Headers(headers), ["new"])
    with rejected("missing_signature"):
        sig.verify_shopify(body, Headers({"X-Shopify-Topic": "t"}), ["old"])


def test_every_secret_is_compared_even_after_a_match(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(sig.hmac, "compare_digest", counting)
    body = b"{}"
    sig.verify_shopify(body, Headers(sign.shopify(body, "a", topic="t")), ["a", "b", "c"])
    assert len(calls) == 3


# --- HubSpot v3 --------------------------------------------------------------------------------

URI = "https://sync.example.com/api/webhooks/hubspot?code=abc"


@pytest.mark.parametrize("name", sorted(BODIES))
def test_hubspot_v3_signed_by_the_client_library_verifies(name):
    body = BODIES[name].encode()
    stamp = int(NOW.timestamp() * 1000)
    headers = sign.hubspot(body, "client-secret", uri=URI, timestamp_ms=stamp)
    verified = sig.verify_hubspot_v3(body, Headers(headers), ["client-secret"], method="POST", uri=URI, now=NOW)
    assert verified.timestamp == NOW
    with rejected("bad_signature"):
        sig.verify_hubspot_v3(
            body, Headers(headers), ["client-secret"], method="POST", uri=URI.replace("sync.", "other."), now=NOW
        )
    with rejected("bad_signature"):
        sig.verify_hubspot_v3(body[:-1], Headers(headers), ["client-secret"], method="POST", uri=URI, now=NOW)


def test_hubspot_v3_decodes_the_escapes_hubspot_decodes_before_signing():
    seen = "https://sync.example.com/api/webhooks/hubspot?code=a%3Ab%2Fc%40d&x=%20y"
    signed = "https://sync.example.com/api/webhooks/hubspot?code=a:b/c@d&x=%20y"  # %20 is kept
    assert sig.hubspot_uri(seen) == signed
    body = b'{"email":"a@example.com"}'
    stamp = int(NOW.timestamp() * 1000)
    headers = sign.hubspot(body, "s", uri=signed, timestamp_ms=stamp)
    sig.verify_hubspot_v3(body, Headers(headers), ["s"], method="POST", uri=seen, now=NOW)


def test_hubspot_v3_refuses_old_and_malformed_timestamps():
    body = b"{}"
    old = int((NOW - timedelta(minutes=6)).timestamp() * 1000)
    headers = sign.hubspot(body, "s", uri=URI, timestamp_ms=old)
    with rejected("expired"):
        sig.verify_hubspot_v3(body, Headers(headers), ["s"], method="POST", uri=URI, now=NOW)
    with rejected("malformed_signature"):
        sig.verify_hubspot_v3(
            body, Headers({**headers, "X-HubSpot-Request-Timestamp": "soon"}), ["s"], method="POST", uri=URI, now=NOW
        )
    with rejected("missing_signature"):
        sig.verify_hubspot_v3(body, Headers({}), ["s"], method="POST", uri=URI, now=NOW)


# --- Klaviyo -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BODIES))
def test_klaviyo_body_then_timestamp_hex(name):
    body = BODIES[name].encode()
    headers = sign.klaviyo(body, "klaviyo-secret-0123456789")
    sig.verify_klaviyo(body, Headers(headers), ["klaviyo-secret-0123456789"], NOW)
    with rejected("bad_signature"):
        sig.verify_klaviyo(
            body,
            Headers({**headers, "Klaviyo-Timestamp": "2026-11-26T10:01:06+00:00"}),
            ["klaviyo-secret-0123456789"],
            NOW,
        )
    with rejected("malformed_signature"):
        sig.verify_klaviyo(body, Headers({**headers, "Klaviyo-Signature": "zz"}), ["k"], NOW)


# --- a named HMAC header ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "algorithm, encoding, prefix",
    [("sha256", "hex", "sha256="), ("sha1", "hex", ""), ("sha512", "base64", ""), ("sha256", "base64", "v1=")],
)
def test_named_hmac_header_schemes(algorithm, encoding, prefix):
    body = BODIES["odd whitespace"].encode()
    digest = hmac.new(b"cdp", body, getattr(hashlib, algorithm)).digest()
    value = prefix + (digest.hex() if encoding == "hex" else base64.b64encode(digest).decode())
    scheme = HmacHeaderScheme(header="X-Sig", algorithm=algorithm, encoding=encoding, prefix=prefix)
    sig.verify_hmac_header(body, Headers({"x-sig": value}), ["other", "cdp"], scheme)
    with rejected("bad_signature"):
        sig.verify_hmac_header(body.strip(), Headers({"x-sig": value}), ["cdp"], scheme)
    if prefix:
        with rejected("malformed_signature"):
            sig.verify_hmac_header(body, Headers({"x-sig": value[len(prefix) :]}), ["cdp"], scheme)


def test_hmac_scheme_refuses_unknown_algorithms_and_encodings():
    with pytest.raises(ValueError):
        HmacHeaderScheme(header="X", algorithm="md5")
    with pytest.raises(ValueError):
        HmacHeaderScheme(header="X", encoding="base32")


def test_reasons_never_quote_a_header_or_a_secret():
    body = b"{}"
    try:
        sig.verify_shopify(body, Headers({"X-Shopify-Hmac-Sha256": "c2VjcmV0LXZhbHVl"}), ["the-secret"])
    except SignatureRejected as error:
        assert str(error) == "bad_signature" and error.reason in sig.REASONS
