"""The webhook settings: every problem named at start-up, never a secret's value."""

from __future__ import annotations

import json

import pytest

from shared.core.settings import InvalidFieldPolicy, SettingsError
from shared.core.sources.config import load_webhook_config
from tests.support.repo import SAMPLE


def problems(**env: str) -> str:
    with pytest.raises(SettingsError) as info:
        load_webhook_config({**SAMPLE, **env})
    return str(info.value)


def test_the_sample_settings_load_with_the_sample_mapping_file():
    config = load_webhook_config(SAMPLE)
    assert set(config.secrets) == {"shopify", "klaviyo", "hubspot", "standard", "example-cdp"}
    assert "example-cdp" in config.mappings and "example-cdp" in config.sources()


def test_without_any_webhook_setting_nothing_is_served():
    config = load_webhook_config({})
    assert config.secrets == {} and config.mappings == {}
    assert (config.delivery_table, config.identity_table) == ("webhookdeliveries", "webhookidentities")


@pytest.mark.parametrize(
    "value",
    [
        '{"shopify": "s3cr3t-value", "bad name": ["s3cr3t-value"]}',
        '{"shopify": [""]}',
        '["s3cr3t-value"]',
        "s3cr3t-value",
    ],
)
def test_malformed_secrets_are_named_without_their_values(value):
    text = problems(WEBHOOK_SECRETS=value)
    assert "WEBHOOK_SECRETS" in text and "s3cr3t-value" not in text


def test_a_single_secret_may_be_a_string_and_two_are_both_active():
    config = load_webhook_config({**SAMPLE, "WEBHOOK_SECRETS": json.dumps({"shopify": "a", "hubspot": ["b", "c"]})})
    assert config.secrets == {"shopify": ("a",), "hubspot": ("b", "c")}


def test_source_options():
    config = load_webhook_config(
        {
            **SAMPLE,
            "WEBHOOK_SOURCE_OPTIONS": json.dumps(
                {
                    "shopify": {
                        "createDefaults": {"customerGroup": "WEB", "currencyCode": "eur", "language": "de-DE"},
                        "invalidOptionalFields": "drop",
                        "shopDomains": ["Shop.myshopify.com"],
                        "toleranceSeconds": 120,
                    }
                }
            ),
        }
    )
    options = config.options_for("shopify")
    assert options.create_defaults.model_dump() == {
        "customer_group": "WEB",
        "currency_code": "EUR",
        "language": "de-de",
    }
    assert options.invalid_field_policy is InvalidFieldPolicy.DROP
    assert options.shop_domains == {"shop.myshopify.com"} and options.tolerance_seconds == 120
    assert config.options_for("hubspot").invalid_field_policy is None


@pytest.mark.parametrize(
    "options, named",
    [
        ({"shopify": {"shopDomain": ["x"]}}, "unknown options"),
        ({"shopify": {"createDefaults": {"currencyCode": "XXQ"}}}, "createDefaults"),
        ({"shopify": {"invalidOptionalFields": "ignore"}}, "reject or drop"),
        ({"shopify": {"toleranceSeconds": 86400}}, "toleranceSeconds"),
    ],
)
def test_bad_source_options_are_named(options, named):
    assert named in problems(WEBHOOK_SOURCE_OPTIONS=json.dumps(options))


def test_mapping_files_that_do_not_load_stop_start_up_with_the_file_named(tmp_path):
    (tmp_path / "good.json").write_text(
        json.dumps(
            {
                "signature": {"scheme": "standard"},
                "fields": {"eventId": "id", "occurredAt": "at", "customer.email": "email"},
            }
        )
    )
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "shopify.json").write_text("{}")
    text = problems(WEBHOOK_MAPPINGS_DIR=str(tmp_path))
    assert "broken.json: not JSON" in text and "shopify.json" in text and "good.json" not in text


def test_public_base_url_is_a_scheme_and_host():
    assert (
        load_webhook_config({**SAMPLE, "WEBHOOK_PUBLIC_BASE_URL": "https://sync.example.com/"}).public_base_url
        == "https://sync.example.com"
    )
    assert "WEBHOOK_PUBLIC_BASE_URL" in problems(WEBHOOK_PUBLIC_BASE_URL="https://sync.example.com/api")
