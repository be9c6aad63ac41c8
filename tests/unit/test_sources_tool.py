"""``python -m tools.webhook`` signs each sample the way its source's check expects (the README's
local walkthrough depends on it)."""

from __future__ import annotations

from datetime import UTC

import pytest

from shared.core.sources.base import WebhookRequest
from shared.core.sources.registry import SourceRegistry
from shared.core.sources.signatures import Headers
from tests.support.repo import ROOT, SAMPLE
from tests.support.webhook_fakes import WEBHOOKS, Fixture
from tools import webhook

SAMPLES = {
    "shopify": WEBHOOKS / "shopify/customers-create.json",
    "klaviyo": WEBHOOKS / "klaviyo/email-marketing-subscription.json",
    "hubspot": WEBHOOKS / "hubspot/workflow-contact.json",
    "standard": ROOT / "samples/event.json",
    "example-cdp": WEBHOOKS / "example-cdp/profiles.json",
}


@pytest.mark.parametrize("source", sorted(SAMPLES))
def test_the_tool_signs_every_sample_as_its_source_verifies(source):
    from datetime import datetime

    fixture = Fixture(now=datetime.now(UTC))
    body = SAMPLES[source].read_bytes()
    url = f"http://localhost:7071/api/webhooks/{source}"
    secret = fixture.secrets(source)[0]
    headers = webhook.sign(source, body, secret, url, None, SAMPLE)
    adapter = SourceRegistry(fixture.config).get(source)
    request = WebhookRequest(source=source, method="POST", url=url, headers=Headers(headers), body=body)
    adapter.verify(request, [secret], fixture.now, fixture.config.options_for(source), "")
