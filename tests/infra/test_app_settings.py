"""App settings: the settings registry, main.bicep and local.settings.sample.json name the same
settings, secrets are Key Vault references, and the Flex Consumption site is configured as documented."""

from __future__ import annotations

import json
import re

import pytest

from shared.core.settings import APP_SETTINGS, PLATFORM_SETTINGS
from tests.support import bicep_model as m
from tests.support.bicep_model import Unresolved

LOCAL_SAMPLE = m.REPO / "local.settings.sample.json"
HOST_JSON = m.REPO / "host.json"

# Names allowed in one place only, each with the reason. Everything else must be in all three.
BICEP_ONLY: dict[str, str] = {
    # none today: every Azure setting is declared in shared/core/settings.py
}
LOCAL_ONLY: dict[str, str] = {
    # none beyond PLATFORM_SETTINGS where="local" (FUNCTIONS_WORKER_RUNTIME)
}
# Never in Azure app settings on Flex Consumption: the runtime is functionAppConfig.runtime and the
# package comes from the deployment blob container.
FORBIDDEN_ON_FLEX = {
    "FUNCTIONS_WORKER_RUNTIME",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "AzureWebJobsDashboard",
    "APPINSIGHTS_INSTRUMENTATIONKEY",
}

# Versionless reference into this deployment's vault: https://<vault name><keyvaultDns>/secrets/<name>/
KEY_VAULT_REFERENCE = re.compile(
    r"^@Microsoft\.KeyVault\(SecretUri=<https://<take\(<kv-.+>, 24\)><environment\(\)\.suffixes\.keyvaultDns>/>"
    r"secrets/(?P<secret>[A-Za-z0-9-]+)/\)$"
)


def text(value) -> str:
    return value.expr if isinstance(value, Unresolved) else str(value)


def logical(name: str) -> str:
    """AzureWebJobsStorage__queueServiceUri counts as AzureWebJobsStorage."""
    return name.split("__", 1)[0]


def registry_names(where: str) -> set[str]:
    settings = APP_SETTINGS + PLATFORM_SETTINGS
    return {s.name for s in settings if s.where in ("both", where)}


@pytest.fixture(scope="module")
def settings() -> dict:
    return m.app_settings()


@pytest.fixture(scope="module")
def site() -> dict:
    return m.module_params("functionApp")


def test_bicep_app_settings_match_the_registry(settings):
    in_bicep = {logical(n) for n in settings}
    expected = registry_names("azure")
    assert expected - in_bicep == set(), "declared in shared/core/settings.py but missing from main.bicep"
    assert in_bicep - expected - set(BICEP_ONLY) == set(), "in main.bicep but not declared in shared/core/settings.py"


def test_local_sample_matches_the_registry():
    values = json.loads(LOCAL_SAMPLE.read_text())["Values"]
    in_sample = {logical(n) for n in values}
    expected = registry_names("local")
    assert expected - in_sample == set(), (
        "declared in shared/core/settings.py but missing from local.settings.sample.json"
    )
    assert in_sample - expected - set(LOCAL_ONLY) == set(), "in local.settings.sample.json but not declared"


def test_azure_only_and_local_only_names_stay_on_their_side(settings):
    values = json.loads(LOCAL_SAMPLE.read_text())["Values"]
    azure_only = local_only = 0
    for s in APP_SETTINGS + PLATFORM_SETTINGS:
        if s.where == "azure":
            assert s.name not in values, f"{s.name} is Azure-only"
            azure_only += 1
        if s.where == "local":
            assert s.name not in settings, f"{s.name} is local-only"
            local_only += 1
    assert azure_only >= 3 and local_only >= 1, (azure_only, local_only)


def test_no_flex_incompatible_settings(settings):
    assert FORBIDDEN_ON_FLEX & set(settings) == set()


def test_bicep_defaults_equal_the_registry_defaults(settings):
    # With only the required parameters given, each setting that has a default in shared/core/settings.py
    # gets exactly that default in Azure too.
    by_name = {s.name: s for s in APP_SETTINGS + PLATFORM_SETTINGS}
    checked = 0
    for name, value in settings.items():
        s = by_name.get(name)
        if s is None or s.default is None or s.secret:
            continue
        assert value == s.default, (
            f"{name}: main.bicep default {value!r} != shared/core/settings.py default {s.default!r}"
        )
        checked += 1
    assert checked >= 15


def test_storage_is_identity_based(settings):
    assert "AzureWebJobsStorage" not in settings, "no connection string: identity-based connection only"
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == Unresolved("identity.outputs.clientId")
    for service in ("blob", "queue", "table"):
        uri = settings[f"AzureWebJobsStorage__{service}ServiceUri"]
        assert isinstance(uri, Unresolved) and uri.expr.startswith("https://") and f".{service}." in uri.expr
    assert not any("AccountKey" in str(v) for v in settings.values())


def test_secrets_are_key_vault_references(settings):
    secret_names = {s.name for s in APP_SETTINGS if s.secret}
    assert {"EMAIL_HASH_KEY", "COMMERCE_CLIENT_SECRET", "COMMERCE_STATIC_DEV_TOKEN"} <= secret_names
    ref = KEY_VAULT_REFERENCE.match(text(settings["EMAIL_HASH_KEY"]))
    assert ref and ref["secret"] == "email-hash-key", settings["EMAIL_HASH_KEY"]
    # Default mode is workload identity: there is no client secret at all.
    assert settings["COMMERCE_CLIENT_SECRET"] == ""
    # The emulator token never works in Azure.
    assert settings["COMMERCE_STATIC_DEV_TOKEN"] == ""
    for name in secret_names:
        value = settings[name]
        assert value == "" or KEY_VAULT_REFERENCE.match(text(value)), f"{name} must be a Key Vault reference or empty"


def test_client_secret_mode_wires_the_secret_from_key_vault():
    settings = m.app_settings(commerceAuthMode="client_secret")
    ref = KEY_VAULT_REFERENCE.match(text(settings["COMMERCE_CLIENT_SECRET"]))
    assert ref and ref["secret"] == "commerce-client-secret"
    assert settings["COMMERCE_AUTH_MODE"] == "client_secret"
    assert settings["COMMERCE_MANAGED_IDENTITY_CLIENT_ID"] == ""
    assert "commerce-client-secret" in m.module_params("rbac", commerceAuthMode="client_secret")["secretNames"]


def test_webhook_secrets_are_a_key_vault_reference_only_when_webhooks_are_enabled(settings):
    assert settings["WEBHOOK_SECRETS"] == ""  # off by default: every webhook is refused (401)
    enabled = m.app_settings(webhooksEnabled=True)
    ref = KEY_VAULT_REFERENCE.match(text(enabled["WEBHOOK_SECRETS"]))
    assert ref and ref["secret"] == "webhook-secrets"
    assert "webhook-secrets" in m.module_params("rbac", webhooksEnabled=True)["secretNames"]
    assert "webhook-secrets" not in m.module_params("rbac")["secretNames"]


def test_workload_identity_mode_uses_the_managed_identity(settings):
    assert settings["COMMERCE_AUTH_MODE"] == "workload_identity"
    assert settings["COMMERCE_MANAGED_IDENTITY_CLIENT_ID"] == Unresolved("identity.outputs.clientId")
    assert settings["COMMERCE_TENANT_ID"] == Unresolved("tenant().tenantId")
    assert m.module_params("rbac")["secretNames"] == ["email-hash-key"]


def test_auth_mode_parameter_offers_exactly_the_supported_modes():
    param = m.parse_bicep(m.MAIN_BICEP)["parameters"]["commerceAuthMode"]
    (allowed,) = [d["argument"] for d in param["decorators"] if d["type"] == "allowed"]
    assert sorted(allowed) == ["client_secret", "workload_identity"]
    assert param["default"] == "workload_identity"


def test_application_insights_uses_entra_ingestion(settings):
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"] == Unresolved("appInsights.outputs.connectionString")
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == Unresolved(
        "Authorization=AAD;ClientId=<identity.outputs.clientId>"
    )
    assert settings["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] == "true"
    assert json.loads(HOST_JSON.read_text())["telemetryMode"] == "OpenTelemetry"


def test_thread_pool_matches_the_per_instance_queue_concurrency(settings):
    # The live queue's trigger and the backfill queue's each run batchSize + newBatchThreshold at once.
    queues = json.loads(HOST_JSON.read_text())["extensions"]["queues"]
    per_instance = queues["batchSize"] + queues["newBatchThreshold"]
    assert settings["PYTHON_THREADPOOL_THREAD_COUNT"] == str(2 * per_instance)


def test_site_is_a_locked_down_flex_consumption_python_app(site):
    assert site["kind"] == "functionapp,linux"
    assert site["httpsOnly"] is True
    assert site["siteConfig"]["minTlsVersion"] == "1.2"
    assert site["siteConfig"]["ftpsState"] == "Disabled"
    assert site["siteConfig"]["alwaysOn"] is False  # not supported on Flex Consumption
    identity = Unresolved("identity.outputs.resourceId")
    assert site["managedIdentities"] == {"systemAssigned": False, "userAssignedResourceIds": [identity]}
    assert site["keyVaultAccessIdentityResourceId"] == identity
    config = site["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": identity}
    assert storage["value"].expr.endswith("/>app-package") and ".blob." in storage["value"].expr
    assert config["scaleAndConcurrency"] == {"instanceMemoryMB": 2048, "maximumInstanceCount": 40}
    assert [c["retainCurrentAppSettings"] for c in site["configs"]] == [False]


def test_runtime_and_scale_follow_their_parameters():
    site = m.module_params("functionApp", pythonVersion="3.12", instanceMemoryMB=4096, maximumInstanceCount=5)
    assert site["functionAppConfig"]["runtime"]["version"] == "3.12"
    assert site["functionAppConfig"]["scaleAndConcurrency"] == {"instanceMemoryMB": 4096, "maximumInstanceCount": 5}
    params = m.parse_bicep(m.MAIN_BICEP)["parameters"]
    assert params["pythonVersion"]["default"] == "3.11"


def test_plan_is_flex_consumption():
    plan = m.module_params("plan")
    assert plan["skuName"] == "FC1"
    assert plan["reserved"] is True


def test_outputs_give_the_ingest_url_without_a_key():
    outputs = m.parse_bicep(m.MAIN_BICEP)["outputs"]
    assert {"functionAppName", "defaultHostname", "ingestUrl"} <= set(outputs)
    ev = m.main_evaluator()
    url = ev.eval(outputs["ingestUrl"]["value"])
    assert url == Unresolved("https://<functionApp.outputs.defaultHostname>/api/customers/events")
    assert "code=" not in url.expr
    # 40 instances x COMMERCE_MAX_CONCURRENCY 8: the app's semaphore, not the 24 messages an instance runs.
    assert ev.eval(outputs["maxConcurrentCommerceCalls"]["value"]) == 40 * 8
    queues = json.loads(HOST_JSON.read_text())["extensions"]["queues"]
    assert ev.eval(outputs["queueConcurrencyPerInstance"]["value"]) == queues["batchSize"] + queues["newBatchThreshold"]


def test_commerce_load_bound_follows_instances_and_concurrency():
    queues = json.loads(HOST_JSON.read_text())["extensions"]["queues"]
    per_instance = queues["batchSize"] + queues["newBatchThreshold"]
    output = m.parse_bicep(m.MAIN_BICEP)["outputs"]["maxConcurrentCommerceCalls"]["value"]
    for instances, concurrency, bound in ((4, 8, 32), (40, 2, 80), (40, per_instance + 10, 40 * per_instance)):
        ev = m.main_evaluator(maximumInstanceCount=instances, commerceMaxConcurrency=concurrency)
        assert ev.eval(output) == bound, (instances, concurrency)
        assert m.app_settings(commerceMaxConcurrency=concurrency)["COMMERCE_MAX_CONCURRENCY"] == str(concurrency)
