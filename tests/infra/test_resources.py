"""Storage, Key Vault, monitoring: the properties the brief requires, read from the parsed templates."""

from __future__ import annotations

from shared.core.settings import SETTINGS_BY_NAME, load_settings
from tests.support import bicep_model as m

# The queues and tables the code uses, from the settings registry's defaults (load_settings also gives
# the poison queue's name as the host derives it). Nothing else is provisioned: a table no code uses
# would only be one more thing the identity can write.


def code_defaults():
    env = {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "COMMERCE_BASE_URL": "http://127.0.0.1/Commerce",
        "COMMERCE_OUN": "1",
        "COMMERCE_AUTH_MODE": "static_dev_token",
        "COMMERCE_STATIC_DEV_TOKEN": "local-dev-token",
        "EMAIL_HASH_KEY": "local-dev-only-0123456789",
    }
    return load_settings(env)


def test_every_queue_and_table_the_code_uses_is_provisioned():
    settings = code_defaults()
    storage = m.module_params("storage")
    queues = {q["name"] for q in storage["queueServices"]["queues"]}
    tables = {t["name"] for t in storage["tableServices"]["tables"]}
    assert {
        settings.events_queue,
        settings.poison_queue,
        settings.backfill_queue,
        settings.backfill_poison_queue,
    } <= queues
    from shared.core.sources.config import load_webhook_config

    webhooks = load_webhook_config({})
    assert tables == {
        settings.deadletter_table,
        settings.ledger_table,
        webhooks.delivery_table,
        webhooks.identity_table,
    }, "a table no code uses is provisioned"
    assert settings.poison_queue == SETTINGS_BY_NAME["EVENTS_QUEUE_NAME"].default + "-poison"


def test_queue_and_table_names_follow_their_parameters():
    storage = m.module_params(
        "storage",
        eventsQueueName="events-b",
        deadLetterTableName="dlq",
        ledgerTableName="ledgerb",
        additionalTableNames=["ledgerb", "extra"],
    )
    assert [q["name"] for q in storage["queueServices"]["queues"]] == [
        "events-b",
        "events-b-poison",
        "events-b-backfill",
        "events-b-backfill-poison",
    ]
    assert [t["name"] for t in storage["tableServices"]["tables"]] == [
        "dlq",
        "ledgerb",
        "webhookdeliveries",
        "webhookidentities",
        "extra",
    ]
    settings = m.app_settings(eventsQueueName="events-b", deadLetterTableName="dlq", ledgerTableName="ledgerb")
    assert (settings["EVENTS_QUEUE_NAME"], settings["DEADLETTER_TABLE_NAME"], settings["LEDGER_TABLE_NAME"]) == (
        "events-b",
        "dlq",
        "ledgerb",
    )


def test_storage_account_allows_no_keys_and_no_public_blobs():
    storage = m.module_params("storage")
    assert storage["allowSharedKeyAccess"] is False
    assert storage["allowBlobPublicAccess"] is False
    assert storage["minimumTlsVersion"] == "TLS1_2"
    assert storage["supportsHttpsTrafficOnly"] is True
    containers = storage["blobServices"]["containers"]
    assert [(c["name"], c["publicAccess"]) for c in containers] == [("app-package", "None")]


def test_key_vault_is_rbac_mode_with_purge_protection_and_soft_delete():
    vault = m.module_params("vault")
    assert vault["enableRbacAuthorization"] is True
    assert vault["enablePurgeProtection"] is True
    assert vault["enableSoftDelete"] is True
    assert 7 <= vault["softDeleteRetentionInDays"] <= 90
    assert "secrets" not in vault  # written by the conditional resources below, never unconditionally


def test_secrets_are_written_only_when_a_value_is_supplied():
    tree = m.parse_bicep(m.MAIN_BICEP)
    secrets = {n: r for n, r in m.resources(tree).items() if r["type"] == "Microsoft.KeyVault/vaults/secrets"}
    assert set(secrets) == {"emailHashKeySecret", "commerceClientSecretValue", "webhookSecretsValue"}
    for extra in ({}, {"commerceAuthMode": "client_secret"}, {"webhooksEnabled": True}):
        for given in ("", "a-value-supplied-by-the-operator"):
            ev = m.main_evaluator(emailHashKey=given, commerceClientSecret=given, webhookSecrets=given, **extra)
            assert ev.eval(secrets["emailHashKeySecret"]["config"]["condition"]) is bool(given)
            written = ev.eval(secrets["commerceClientSecretValue"]["config"]["condition"])
            assert written is (bool(given) and extra.get("commerceAuthMode") == "client_secret")
            written = ev.eval(secrets["webhookSecretsValue"]["config"]["condition"])
            assert written is (bool(given) and extra.get("webhooksEnabled") is True)
    for resource in secrets.values():
        body = resource["config"]["config"]
        assert m.Evaluator(tree, m.MAIN_BICEP).eval(body["name"]) in (
            "email-hash-key",
            "commerce-client-secret",
            "webhook-secrets",
        )
        # the @secure() params
        assert str(body["properties"]["value"]) in ("emailHashKey", "commerceClientSecret", "webhookSecrets")


def test_application_insights_is_workspace_based_with_local_auth_disabled():
    ai = m.module_params("appInsights")
    assert ai["disableLocalAuth"] is True
    assert ai["workspaceResourceId"] == m.Unresolved("logAnalytics.outputs.resourceId")


def test_everything_uses_the_one_user_assigned_identity():
    rbac = m.module_params("rbac")
    assert rbac["principalId"] == m.Unresolved("identity.outputs.principalId")
    site = m.module_params("functionApp")
    assert site["managedIdentities"]["userAssignedResourceIds"] == [m.Unresolved("identity.outputs.resourceId")]


def test_function_app_waits_for_its_roles():
    tree = m.parse_bicep(m.MAIN_BICEP)
    assert [str(d) for d in tree["modules"]["functionApp"]["config"]["dependsOn"]] == ["rbac"]


def test_log_retention_accepts_only_what_the_application_insights_module_accepts():
    # avm/res/insights/component 0.8.0 declares @allowed([30, 60, 90, 120, 180, 270, 365, 550, 730])
    # on retentionInDays; the same parameter feeds the workspace's dataRetention (0-730).
    param = m.parse_bicep(m.MAIN_BICEP)["parameters"]["logRetentionDays"]
    allowed = [d for d in param["decorators"] if d["type"] == "allowed"]
    assert [d["argument"] for d in allowed] == [[30, 60, 90, 120, 180, 270, 365, 550, 730]]
    assert m.module_params("appInsights")["retentionInDays"] == m.module_params("logAnalytics")["dataRetention"]
