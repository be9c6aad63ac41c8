// Role assignments of the app's user-assigned identity (and, optionally, of the operator who runs
// tools.replay / tools.preflight from a workstation). Least privilege: each role at the narrowest
// scope that still works. tests/infra/test_rbac.py pins the full set of (principal, role, scope).

@description('Principal (object) id of the app\'s user-assigned managed identity.')
param principalId string

@description('Object id of an operator user; empty grants nothing.')
param operatorPrincipalId string = ''

param storageAccountName string

@description('The event queue and its -poison queue.')
param queueNames array

@description('The dead-letter table, the sync ledger table and any further table the app uses.')
param tableNames array

param keyVaultName string

@description('Key Vault secrets the app reads through Key Vault references.')
param secretNames array

param appInsightsName string

// Built-in role definition ids (the same in every tenant).
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

// The operator's assignments loop over these: empty lists (no operator) create nothing. The lists are
// prefixes of queueNames/tableNames, so queues[i] / tables[i] address the same resources.
var grantOperator = !empty(operatorPrincipalId)
var operatorQueueNames = grantOperator ? queueNames : []
var operatorTableNames = grantOperator ? tableNames : []

resource storageAccount 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: storageAccountName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2025-01-01' existing = {
  parent: storageAccount
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2025-01-01' existing = [for queueName in queueNames: {
  parent: queueService
  name: queueName
}]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2025-01-01' existing = {
  parent: storageAccount
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2025-01-01' existing = [for tableName in tableNames: {
  parent: tableService
  name: tableName
}]

resource keyVault 'Microsoft.KeyVault/vaults@2024-11-01' existing = {
  name: keyVaultName
}

resource secrets 'Microsoft.KeyVault/vaults/secrets@2024-11-01' existing = [for secretName in secretNames: {
  parent: keyVault
  name: secretName
}]

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// Storage Blob Data Owner on the account: the Functions host keeps its locks, timer schedules and keys
// in containers it creates on demand (azure-webjobs-hosts, azure-webjobs-secrets), and Flex reads the
// deployment package from the app-package container. Container creation needs the account scope.
resource hostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storageAccount.id, principalId, storageBlobDataOwner)
  scope: storageAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Storage Queue Data Contributor on each queue, not the account: the ingest function writes the event
// queue, the trigger reads and deletes from it, the host moves exhausted messages to the -poison queue
// (both queues exist beforehand, so no account-wide create right is needed), and the queue monitor
// reads their approximate counts.
resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (queueName, i) in queueNames: {
  name: guid(queues[i].id, principalId, storageQueueDataContributor)
  scope: queues[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

// Storage Table Data Contributor on each table: dead letters are written, read and purged; ledger
// entities are read and written (ETag-conditional, leases included); any table listed in
// additionalTableNames is read and written. No other table is reachable.
resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (tableName, i) in tableNames: {
  name: guid(tables[i].id, principalId, storageTableDataContributor)
  scope: tables[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

// Key Vault Secrets User on each secret the app references, not on the vault: the platform resolves
// the @Microsoft.KeyVault(...) app settings with this identity (keyVaultReferenceIdentity).
resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (secretName, i) in secretNames: {
  name: guid(secrets[i].id, principalId, keyVaultSecretsUser)
  scope: secrets[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

// Monitoring Metrics Publisher on the Application Insights component: local auth is disabled, so
// telemetry is accepted only with an Entra token of an identity holding this role.
resource telemetryPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Operator (optional): tools.replay re-enqueues dead-lettered events and updates their rows;
// tools.preflight checks queue and table access. Same narrow scopes as the app.
resource operatorQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (queueName, i) in operatorQueueNames: {
  name: guid(queues[i].id, operatorPrincipalId, storageQueueDataContributor)
  scope: queues[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: operatorPrincipalId
    principalType: 'User'
  }
}]

resource operatorTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (tableName, i) in operatorTableNames: {
  name: guid(tables[i].id, operatorPrincipalId, storageTableDataContributor)
  scope: tables[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: operatorPrincipalId
    principalType: 'User'
  }
}]
