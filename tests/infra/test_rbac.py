"""The complete set of role assignments, pinned: adding, widening or dropping one fails here first."""

from __future__ import annotations

from tests.support import bicep_model as m
from tests.support.bicep_model import ROLES

STORAGE = "Microsoft.Storage/storageAccounts"
QUEUE = "Microsoft.Storage/storageAccounts/queueServices/queues"
TABLE = "Microsoft.Storage/storageAccounts/tableServices/tables"
SECRET = "Microsoft.KeyVault/vaults/secrets"
APP_INSIGHTS = "Microsoft.Insights/components"

# (principal, role, scope resource type, array the assignment loops over)
EXPECTED = {
    # host locks/timers/keys in containers it creates + the deployment package container
    ("principalId", "Storage Blob Data Owner", STORAGE, ""),
    # ingest writes, trigger reads/deletes, poison move, queue monitor: each queue, not the account
    ("principalId", "Storage Queue Data Contributor", QUEUE, "queueNames"),
    # dead letters, the sync ledger (and any additionalTableNames): each table
    ("principalId", "Storage Table Data Contributor", TABLE, "tableNames"),
    # Key Vault references: each referenced secret, not the vault
    ("principalId", "Key Vault Secrets User", SECRET, "secretNames"),
    # Entra ingestion into Application Insights with local auth disabled
    ("principalId", "Monitoring Metrics Publisher", APP_INSIGHTS, ""),
    # optional operator running tools.replay / tools.preflight
    ("operatorPrincipalId", "Storage Queue Data Contributor", QUEUE, "operatorQueueNames"),
    ("operatorPrincipalId", "Storage Table Data Contributor", TABLE, "operatorTableNames"),
}


def test_role_assignments_are_exactly_the_expected_set():
    found = [
        (a.principal, ROLES.get(a.role_definition_id, a.role_definition_id), a.scope_type, a.for_each)
        for a in m.role_assignments()
    ]
    assert len(found) == len(set(found)), "duplicate role assignment"
    assert set(found) == EXPECTED


def test_loops_cover_exactly_the_provisioned_queues_tables_and_secrets():
    rbac = m.module_params("rbac")
    storage = m.module_params("storage")
    assert rbac["queueNames"] == [q["name"] for q in storage["queueServices"]["queues"]]
    assert rbac["tableNames"] == [t["name"] for t in storage["tableServices"]["tables"]]
    assert rbac["secretNames"] == ["email-hash-key"]


def test_operator_gets_roles_only_when_named():
    tree = m.parse_bicep(m.RBAC_BICEP)
    for given, expected in (("", []), ("00000000-0000-0000-0000-000000000000", ["q1", "q2"])):
        ev = m.Evaluator(tree, m.RBAC_BICEP, {"operatorPrincipalId": given, "queueNames": ["q1", "q2"]})
        assert ev.eval(tree["variables"]["operatorQueueNames"]["value"]) == expected


def test_every_assignment_names_a_service_principal_or_the_operator_user():
    tree = m.parse_bicep(m.RBAC_BICEP)
    checked = 0
    for name, resource in m.resources(tree).items():
        if resource["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        props = m._resource_config(resource)["properties"]
        expected = "ServicePrincipal" if str(props["principalId"]) == "principalId" else "User"
        assert props["principalType"] == expected, name
        checked += 1
    assert checked >= len(EXPECTED)  # one role assignment resource per expected assignment
