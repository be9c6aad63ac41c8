import pytest

from shared.core.settings import APP_SETTINGS, AuthMode, InvalidFieldPolicy, SettingsError, load_settings
from tests.support.repo import ROOT, SAMPLE


def test_sample_settings_load_as_the_local_defaults():
    s = load_settings(SAMPLE)
    assert s.commerce.auth_mode is AuthMode.STATIC_DEV_TOKEN
    assert s.commerce.base_url == "http://127.0.0.1:7075/Commerce"
    assert s.poison_queue == "customer-events-poison"
    assert s.mapping.invalid_field_policy is InvalidFieldPolicy.REJECT
    assert s.email_hash_key == SAMPLE["EMAIL_HASH_KEY"].encode()


def test_every_problem_is_reported_at_once_by_name():
    with pytest.raises(SettingsError) as info:
        load_settings({})
    assert {"AzureWebJobsStorage", "COMMERCE_BASE_URL", "COMMERCE_OUN", "COMMERCE_AUTH_MODE", "EMAIL_HASH_KEY"} <= set(
        info.value.names
    )


@pytest.mark.parametrize(
    "mode, missing",
    [
        (
            "client_secret",
            {"COMMERCE_TENANT_ID", "COMMERCE_CLIENT_ID", "COMMERCE_CLIENT_SECRET", "COMMERCE_SERVER_RESOURCE_ID"},
        ),
        ("certificate", {"COMMERCE_CLIENT_CERTIFICATE_PATH"}),
        ("managed_identity", {"COMMERCE_MANAGED_IDENTITY_CLIENT_ID", "COMMERCE_SERVER_RESOURCE_ID"}),
        ("workload_identity", {"COMMERCE_TENANT_ID", "COMMERCE_CLIENT_ID", "COMMERCE_MANAGED_IDENTITY_CLIENT_ID"}),
    ],
)
def test_an_auth_mode_without_its_settings_names_what_is_missing(mode, missing):
    env = {**SAMPLE, "COMMERCE_AUTH_MODE": mode, "COMMERCE_STATIC_DEV_TOKEN": ""}
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    assert missing <= set(info.value.names)
    assert f"COMMERCE_AUTH_MODE={mode}" in str(info.value)


def test_secret_values_never_appear_in_repr_or_errors():
    env = {**SAMPLE, "COMMERCE_CLIENT_SECRET": "s3cr3t-value-xyz", "COMMERCE_OUN": ""}
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    assert "s3cr3t-value-xyz" not in str(info.value)
    s = load_settings({**SAMPLE, "COMMERCE_CLIENT_SECRET": "s3cr3t-value-xyz"})
    assert "s3cr3t-value-xyz" not in repr(s)
    assert SAMPLE["EMAIL_HASH_KEY"] not in repr(s)


@pytest.mark.parametrize(
    "name, value",
    [
        ("COMMERCE_AUTH_MODE", "magic"),
        ("COMMERCE_AUTH_SCHEME", "Basic"),
        ("COMMERCE_READ_TIMEOUT_SECONDS", "soon"),
        ("INGEST_MAX_EVENTS", "0"),
        ("STATE_ID_OVERRIDES", "[1]"),
        ("DEFAULT_COUNTRY", "USA"),
        ("EMAIL_HASH_KEY", "short"),
        ("INVALID_OPTIONAL_FIELDS", "ignore"),
        ("COMMERCE_BASE_URL", "ftp://x/Commerce"),
    ],
)
def test_malformed_values_are_refused(name, value):
    with pytest.raises(SettingsError) as info:
        load_settings({**SAMPLE, name: value})
    assert name in info.value.names


def test_identity_based_storage_counts_as_configured():
    env = {k: v for k, v in SAMPLE.items() if k != "AzureWebJobsStorage"}
    env["AzureWebJobsStorage__accountName"] = "stsync"
    assert load_settings(env).storage_connection == "identity"


def test_bearer_scheme_and_overrides_are_normalised():
    s = load_settings({**SAMPLE, "COMMERCE_AUTH_SCHEME": "bearer", "STATE_ID_OVERRIDES": '{"gbr": {"gb-eng": "ENG"}}'})
    assert s.commerce.auth_scheme == "Bearer"
    assert s.mapping.state_id_overrides == {"GBR": {"GB-ENG": "ENG"}}


def test_registry_names_are_unique_and_described():
    names = [s.name for s in APP_SETTINGS]
    assert len(names) == len(set(names))
    assert all(s.description for s in APP_SETTINGS)


def test_the_readme_lists_every_setting():
    readme = (ROOT / "README.md").read_text()
    from shared.core.settings import PLATFORM_SETTINGS

    missing = [s.name for s in (*APP_SETTINGS, *PLATFORM_SETTINGS) if f"`{s.name}`" not in readme]
    assert missing == []


def test_readme_defaults_match_the_registry():
    import re

    readme = (ROOT / "README.md").read_text()
    assert len(APP_SETTINGS) >= 45
    for s in APP_SETTINGS:
        row = re.search(rf"^\| `{re.escape(s.name)}` \| (.*?) \|", readme, re.M)
        assert row, s.name
        shown = row.group(1).strip("`")
        expected = s.default if s.default else None
        if expected:
            assert shown == expected, (s.name, shown, expected)
        else:
            assert shown in ("—", "empty"), (s.name, shown)


def test_an_unresolved_key_vault_reference_is_refused_by_name():
    ref = "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/email-hash-key/)"
    with pytest.raises(SettingsError) as info:
        load_settings({**SAMPLE, "EMAIL_HASH_KEY": ref})
    assert info.value.names == ["EMAIL_HASH_KEY"]
    assert "unresolved Key Vault reference" in str(info.value)


def test_the_lease_leaves_room_to_renew_it_before_a_write():
    timeouts = {"COMMERCE_CONNECT_TIMEOUT_SECONDS": "0.5", "COMMERCE_READ_TIMEOUT_SECONDS": "1"}
    with pytest.raises(SettingsError) as info:
        load_settings({**SAMPLE, **timeouts, "LEDGER_LEASE_SECONDS": "3"})  # exactly 2 x 1.5
    assert "LEDGER_LEASE_SECONDS" in info.value.names
    assert load_settings({**SAMPLE, **timeouts, "LEDGER_LEASE_SECONDS": "4"}).ledger_lease_seconds == 4
