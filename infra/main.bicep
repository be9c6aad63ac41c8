// commerce-customer-sync: everything the integration needs in one resource group.
//
//   az group create -n <rg> -l <region>
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.bicepparam
//
// One user-assigned identity is used for everything (storage, Key Vault references, Entra ingestion
// into Application Insights, and, in workload_identity mode, the token exchange with Commerce).
// No shared keys, no connection strings with keys, no secret in source control: secrets are
// @secure() parameters written to Key Vault and read by the app through Key Vault references.
//
// Azure Verified Modules are pinned to explicit versions; their parameter names were checked against
// the main.bicep of exactly these versions. Role assignments, alerts and the action group are plain
// resources with explicit API versions (app/rbac.bicep, app/alerts.bicep).
targetScope = 'resourceGroup'

// --- naming --------------------------------------------------------------------------------------
@description('Short lower-case name used in every resource name (letters and digits).')
@minLength(3)
@maxLength(11)
param baseName string = 'custsync'

@description('Region of every regional resource. Must offer the Flex Consumption plan.')
param location string = resourceGroup().location

@description('Tags applied to every resource.')
param tags object = {}

// --- Functions runtime and scale -----------------------------------------------------------------
@description('Python version of the Flex Consumption runtime (functionAppConfig.runtime.version). The remote build installs requirements.txt on it: azure-functions 1.26 up to 3.12, 2.x on 3.13.')
@allowed([
  '3.11'
  '3.12'
  '3.13'
])
param pythonVersion string = '3.11'

@description('Memory of one Flex Consumption instance; billing is GB-seconds at this size.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// Load on Commerce is bounded by maximumInstanceCount x the Commerce calls one instance has in flight:
// at most COMMERCE_MAX_CONCURRENCY (the app's per-process semaphore), and never more than the
// per-instance queue concurrency (host.json batchSize + newBatchThreshold). See docs/deploy.md
// "Bound on load against Commerce" and the maxConcurrentCommerceCalls output.
@description('Most instances the processor can scale to. Bounds concurrent calls to Commerce.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

// An int (not a string like the other numeric settings) so the output below can do the arithmetic;
// the bounds are the ones load_settings accepts.
@description('COMMERCE_MAX_CONCURRENCY: most Commerce calls in flight at once per instance (one worker process). Lower it to lower the load on the Commerce Scale Unit.')
@minValue(1)
@maxValue(256)
param commerceMaxConcurrency int = 8

// --- storage -------------------------------------------------------------------------------------
@description('Storage redundancy of the account holding the event queue and dead letters.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
])
param storageSkuName string = 'Standard_LRS'

@description('EVENTS_QUEUE_NAME. The host moves exhausted messages to <name>-poison, provisioned too.')
param eventsQueueName string = 'customer-events'

@description('DEADLETTER_TABLE_NAME.')
param deadLetterTableName string = 'deadletters'

// The per-email sync ledger: one entity per email hash with the Commerce account, the last applied
// event, field-group hashes and the writer's lease. Provisioned here and scoped like the dead-letter
// table (tableNames below), because the identity cannot create tables.
@description('LEDGER_TABLE_NAME: table of the per-email sync ledger (3-63 letters and digits, starting with a letter).')
@minLength(3)
@maxLength(63)
param ledgerTableName string = 'syncledger'

// The code uses exactly the dead-letter and ledger tables; anything listed here is only for a later
// table, and gets the same narrowly scoped role.
@description('Further tables the app uses. Each gets its own narrowly scoped role.')
param additionalTableNames array = []

// --- Commerce connection -------------------------------------------------------------------------
@description('COMMERCE_BASE_URL: Commerce Scale Unit URL ending in /Commerce.')
param commerceBaseUrl string

@description('COMMERCE_OUN: operating unit number of the channel.')
param commerceOun string

@description('COMMERCE_API_VERSION.')
param commerceApiVersion string = '7.3'

@description('COMMERCE_AUTH_SCHEME: id_token (Commerce docs) or Bearer.')
@allowed([
  'id_token'
  'Bearer'
])
param commerceAuthScheme string = 'id_token'

// workload_identity: the app registration trusts this deployment's managed identity as a federated
// credential, so no secret exists anywhere. client_secret: the secret lives in Key Vault.
@description('How the app gets tokens for Commerce.')
@allowed([
  'workload_identity'
  'client_secret'
])
param commerceAuthMode string = 'workload_identity'

@description('COMMERCE_TENANT_ID: tenant of the client app registration.')
param commerceTenantId string = tenant().tenantId

@description('COMMERCE_CLIENT_ID: client id of the app registration listed in Commerce headquarters.')
param commerceClientId string

@description('COMMERCE_SERVER_RESOURCE_ID: Application ID URI of the Retail Server app registration.')
param commerceServerResourceId string

@description('COMMERCE_CLIENT_SECRET, client_secret mode only. Written to Key Vault when not empty; leave empty on later deployments to keep the stored value.')
@secure()
param commerceClientSecret string = ''

@description('COMMERCE_CONNECT_TIMEOUT_SECONDS.')
param commerceConnectTimeoutSeconds string = '3.05'

@description('COMMERCE_READ_TIMEOUT_SECONDS.')
param commerceReadTimeoutSeconds string = '30'

@description('COMMERCE_SEARCH_PAGE_SIZE.')
param commerceSearchPageSize string = '50'

// --- sync ledger lease and retry schedule --------------------------------------------------------
// The app refuses to start (health reports the name) when the lease is shorter than twice one
// Commerce call's connect + read timeout plus 1 s for renewing it: a write must end before its lease does.
@description('LEDGER_LEASE_SECONDS: how long a worker holds an email\'s lease while writing to Commerce. At least 2 x (COMMERCE_CONNECT_TIMEOUT_SECONDS + COMMERCE_READ_TIMEOUT_SECONDS) + 1.')
param ledgerLeaseSeconds string = '120'

@description('RETRY_BASE_DELAY_SECONDS: first delay before a transiently failed event is retried when Commerce sends no Retry-After; doubles per attempt, with jitter.')
param retryBaseDelaySeconds string = '5'

@description('RETRY_MAX_DELAY_SECONDS: longest backoff delay between two attempts; a Retry-After from Commerce is honoured in full, up to the queue limit of 7 days.')
param retryMaxDelaySeconds string = '900'

@description('RETRY_MAX_AGE_SECONDS: an event still failing transiently this long after it was queued is dead-lettered.')
param retryMaxAgeSeconds string = '86400'

// --- mapping defaults (applied on create only) ---------------------------------------------------
@description('CUSTOMER_DEFAULT_TYPE: 1 Person, 2 Organization.')
param customerDefaultType string = '1'

@description('CUSTOMER_DEFAULT_GROUP; empty leaves it to Commerce.')
param customerDefaultGroup string = ''

@description('CUSTOMER_DEFAULT_CURRENCY; empty leaves it to Commerce.')
param customerDefaultCurrency string = ''

@description('CUSTOMER_DEFAULT_LANGUAGE.')
param customerDefaultLanguage string = 'en-us'

@description('CUSTOMER_ADDRESS_TYPE.')
param customerAddressType string = '7'

@description('DEFAULT_COUNTRY (ISO 3166-1 alpha-2); empty requires international phone numbers.')
param defaultCountry string = ''

@description('STATE_ID_OVERRIDES (JSON object).')
param stateIdOverrides string = '{}'

@description('INVALID_OPTIONAL_FIELDS: reject or drop.')
@allowed([
  'reject'
  'drop'
])
param invalidOptionalFields string = 'reject'

@description('PHONE_CLEAR_CONTACT: keep, blank or omit (blank and omit unverified against a real Commerce).')
@allowed([
  'keep'
  'blank'
  'omit'
])
param phoneClearContact string = 'keep'

// --- ingest, dead letters, privacy ---------------------------------------------------------------
@description('INGEST_MAX_EVENTS.')
param ingestMaxEvents string = '500'

@description('INGEST_MAX_BODY_BYTES.')
param ingestMaxBodyBytes string = '1048576'

@description('DEADLETTER_RETENTION_DAYS.')
param deadLetterRetentionDays string = '30'

@description('QUEUE_MONITOR_SCHEDULE (NCRONTAB).')
param queueMonitorSchedule string = '0 */5 * * * *'

@description('BACKFILL_MAX_CONCURRENCY: backfill messages (packs queued by tools.backfill) processed at once per worker process.')
param backfillMaxConcurrency string = '2'

// --- webhooks from marketing systems (docs/sources.md) ------------------------------------------
// Off by default: WEBHOOK_SECRETS is then empty and every POST /api/webhooks/<source> is refused (401).
// On: WEBHOOK_SECRETS is a Key Vault reference to the webhook-secrets secret, which holds the JSON
// {"<source>": ["<secret>", ...]} (two secrets for one source during a rotation). Like the other
// secrets it is written only when a value is passed, so later deployments keep the stored one.
@description('Serve signed webhooks from marketing systems (POST /api/webhooks/<source>).')
param webhooksEnabled bool = false

@description('WEBHOOK_SECRETS: JSON {"<source>": ["<secret>", ...]}. Written to Key Vault when not empty; leave empty on later deployments to keep the stored value.')
@secure()
param webhookSecrets string = ''

@description('WEBHOOK_SOURCE_OPTIONS (JSON object): per-source create defaults, invalid-field policy, Shopify shop allow-list.')
param webhookSourceOptions string = '{}'

@description('WEBHOOK_MAPPINGS_DIR: folder of declarative mapping files deployed with the app.')
param webhookMappingsDir string = 'webhook_mappings'

@description('WEBHOOK_PUBLIC_BASE_URL: https://<host> the senders call (HubSpot signs that URL); empty uses the URL the worker sees.')
param webhookPublicBaseUrl string = ''

@description('WEBHOOK_DELIVERY_TABLE_NAME: received deliveries, so a redelivery is not queued again.')
param webhookDeliveryTableName string = 'webhookdeliveries'

@description('WEBHOOK_IDENTITY_TABLE_NAME: each sender\'s customer id (hashed) and the email it last carried.')
param webhookIdentityTableName string = 'webhookidentities'

// EMAIL_HASH_KEY must stay the same for the life of the system: every hash in logs, telemetry and
// dead letters is derived from it. It is generated ONCE by the operator (docs/deploy.md), passed on the
// first deployment, and may be left empty afterwards: the secret in Key Vault is then left untouched.
// It is never generated here (newGuid() would rotate it on every deployment).
@description('EMAIL_HASH_KEY (at least 16 characters). Required on the first deployment only.')
@secure()
param emailHashKey string = ''

// --- monitoring ----------------------------------------------------------------------------------
@description('E-mail addresses that receive alerts.')
@minLength(1)
param alertEmails array

@description('Failed processor invocations within the window that raise an alert (retries fail too).')
param failedProcessorThreshold int = 10

@description('Ingest responses >= 500 within the window that raise an alert.')
param ingestServerErrorThreshold int = 0

@description('Webhook deliveries refused as not authentic (WebhookRejected) within the window that raise an alert.')
param webhookRejectedThreshold int = 0

@description('Queue depth (messages) above which the backlog alert fires.')
param queueDepthThreshold int = 1000

@description('Age in seconds of the oldest queued message above which the backlog alert fires.')
param queueOldestAgeSecondsThreshold int = 900

@description('Age in seconds of the oldest message in the backfill queue above which the backfill-stalled alert fires.')
param backfillOldestAgeSecondsThreshold int = 21600

// The values avm/res/insights/component 0.8.0 accepts for retentionInDays (any other value fails the
// deployment there); all are valid Log Analytics dataRetention values (0-730 in workspace 0.16.1).
@description('Log Analytics and Application Insights retention in days.')
@allowed([
  30
  60
  90
  120
  180
  270
  365
  550
  730
])
param logRetentionDays int = 30

// --- optional operator access --------------------------------------------------------------------
@description('Object id of the operator (user) who runs tools.replay / tools.preflight from a workstation; empty grants nothing.')
param operatorPrincipalId string = ''

// --- derived names -------------------------------------------------------------------------------
var resourceToken = toLower(uniqueString(resourceGroup().id, baseName))
var identityName = 'id-${baseName}-${resourceToken}'
// Storage account names: 3-24 lower-case letters and digits only.
var storageAccountName = take(toLower(replace('st${baseName}${resourceToken}', '-', '')), 24)
var planName = 'plan-${baseName}-${resourceToken}'
var functionAppName = 'func-${baseName}-${resourceToken}'
var keyVaultName = take('kv-${baseName}-${resourceToken}', 24)
var logAnalyticsName = 'log-${baseName}-${resourceToken}'
var appInsightsName = 'appi-${baseName}-${resourceToken}'
var deploymentContainerName = 'app-package'
// Path of the ingest function (host.json routePrefix "api" + function_app.py route); tests/infra checks
// it against the registered route. Used by the ingestUrl output and by the ingest-5xx alert.
var ingestPath = '/api/customers/events'

var poisonQueueName = '${eventsQueueName}-poison'
// The initial load's own queue (tools.backfill, shared/backfill.py) and the poison queue the host gives it.
var backfillQueueName = '${eventsQueueName}-backfill'
var queueNames = [
  eventsQueueName
  poisonQueueName
  backfillQueueName
  '${backfillQueueName}-poison'
]
// The identity gets Storage Table Data Contributor on each of these tables and on no other (app/rbac.bicep).
var tableNames = union([
  deadLetterTableName
  ledgerTableName
  webhookDeliveryTableName
  webhookIdentityTableName
], additionalTableNames)

// Key Vault secret names allow letters, digits and dashes only.
var emailHashKeySecretName = 'email-hash-key'
var commerceClientSecretName = 'commerce-client-secret'
var usesClientSecret = (commerceAuthMode == 'client_secret')
var writeClientSecret = usesClientSecret && !empty(commerceClientSecret)
var webhookSecretsSecretName = 'webhook-secrets'
var writeWebhookSecrets = webhooksEnabled && !empty(webhookSecrets)
var appSecretNames = concat(usesClientSecret ? [
  emailHashKeySecretName
  commerceClientSecretName
] : [
  emailHashKeySecretName
], webhooksEnabled ? [
  webhookSecretsSecretName
] : [])

// Endpoints computed from names (no runtime lookup, no keys).
var blobEndpoint = 'https://${storageAccountName}.blob.${environment().suffixes.storage}/'
var queueEndpoint = 'https://${storageAccountName}.queue.${environment().suffixes.storage}/'
var tableEndpoint = 'https://${storageAccountName}.table.${environment().suffixes.storage}/'
var keyVaultUri = 'https://${keyVaultName}${environment().suffixes.keyvaultDns}/'

// Versionless references: a new secret version is picked up without redeploying (docs/deploy.md).
var emailHashKeyReference = '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${emailHashKeySecretName}/)'
var commerceClientSecretReference = '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${commerceClientSecretName}/)'
var webhookSecretsReference = '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${webhookSecretsSecretName}/)'

// Per-instance queue concurrency is batchSize + newBatchThreshold from the app's own host.json.
// The Python worker runs plain-def functions on a thread pool; with fewer threads than that, a batch
// silently waits for threads. Deriving the count here keeps the two from drifting apart.
var hostJson = loadJsonContent('../host.json')
// (Parenthesised operands: pycep-parser, used by the tests and by Checkov, binds '.' looser than '+'.)
var queueConcurrencyPerInstance = (hostJson.extensions.queues.batchSize) + (hostJson.extensions.queues.newBatchThreshold)
// Commerce calls one instance has in flight: the app's semaphore (COMMERCE_MAX_CONCURRENCY, per worker
// process; FUNCTIONS_WORKER_PROCESS_COUNT is not set, so one process per instance) or, when that is
// larger, the messages running at once, since each message makes its calls one after another.
// Two queue triggers take that many messages each: live events and the backfill, whose invocations may
// wait for one of the BACKFILL_MAX_CONCURRENCY slots. Each gets its own threads, so a backfill waiting
// for a slot never holds a thread a live event needs.
var threadsPerInstance = (queueConcurrencyPerInstance) * 2
var commerceCallsPerInstance = (commerceMaxConcurrency < queueConcurrencyPerInstance) ? commerceMaxConcurrency : queueConcurrencyPerInstance

// --- identity ------------------------------------------------------------------------------------
module identity 'br/public:avm/res/managed-identity/user-assigned-identity:0.6.0' = {
  name: 'identity'
  params: {
    name: identityName
    location: location
    tags: tags
  }
}

// --- storage: host, deployment package, event queue, poison queue, tables -------------------------
module storage 'br/public:avm/res/storage/storage-account:0.33.0' = {
  name: 'storage'
  params: {
    name: storageAccountName
    location: location
    tags: tags
    skuName: storageSkuName
    kind: 'StorageV2'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    // Flex Consumption without a virtual network reaches storage over its public endpoint; access is
    // by Entra identity only (shared keys are off).
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    blobServices: {
      containers: [
        {
          name: deploymentContainerName
          publicAccess: 'None'
        }
      ]
    }
    queueServices: {
      queues: [for queueName in queueNames: {
        name: queueName
      }]
    }
    tableServices: {
      tables: [for tableName in tableNames: {
        name: tableName
      }]
    }
  }
}

// --- Key Vault -----------------------------------------------------------------------------------
module vault 'br/public:avm/res/key-vault/vault:0.14.0' = {
  name: 'vault'
  params: {
    name: keyVaultName
    location: location
    tags: tags
    sku: 'standard'
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enableVaultForDeployment: false
    enableVaultForTemplateDeployment: false
    enableVaultForDiskEncryption: false
  }
}

// Secrets are written only when a value is supplied, so a later deployment without the value leaves
// the stored one (and so every email hash) unchanged. Plain resources rather than the module's
// `secrets` parameter so that each write is visibly conditional.
resource keyVaultRef 'Microsoft.KeyVault/vaults@2024-11-01' existing = {
  name: keyVaultName
}

resource emailHashKeySecret 'Microsoft.KeyVault/vaults/secrets@2024-11-01' = if (!empty(emailHashKey)) {
  parent: keyVaultRef
  name: emailHashKeySecretName
  // checkov:skip=CKV_AZURE_114: false positive: contentType is set below; checkov 3.3.30 does not read the body of a conditional (if) resource.
  // checkov:skip=CKV_AZURE_41: the email hash key must never expire: an expired key stops every event, and a new key changes every hash. It is rotated only deliberately (docs/deploy.md).
  properties: {
    value: emailHashKey
    contentType: 'text/plain'
  }
  dependsOn: [
    vault
  ]
}

resource commerceClientSecretValue 'Microsoft.KeyVault/vaults/secrets@2024-11-01' = if (writeClientSecret) {
  parent: keyVaultRef
  name: commerceClientSecretName
  // checkov:skip=CKV_AZURE_114: false positive: contentType is set below; checkov 3.3.30 does not read the body of a conditional (if) resource.
  // checkov:skip=CKV_AZURE_41: the expiry that matters is the app registration's; Entra enforces it and the auth-failure alert reports it. A Key Vault expiry here would only add a second, unsynchronised date.
  properties: {
    value: commerceClientSecret
    contentType: 'text/plain'
  }
  dependsOn: [
    vault
  ]
}

resource webhookSecretsValue 'Microsoft.KeyVault/vaults/secrets@2024-11-01' = if (writeWebhookSecrets) {
  parent: keyVaultRef
  name: webhookSecretsSecretName
  // checkov:skip=CKV_AZURE_114: false positive: contentType is set below; checkov 3.3.30 does not read the body of a conditional (if) resource.
  // checkov:skip=CKV_AZURE_41: the senders' signing secrets expire when their owners rotate them (docs/sources.md); a Key Vault expiry here would stop every webhook without rotating anything.
  properties: {
    value: webhookSecrets
    contentType: 'application/json'
  }
  dependsOn: [
    vault
  ]
}

// --- monitoring: Log Analytics + workspace-based Application Insights (Entra ingestion only) -----
module logAnalytics 'br/public:avm/res/operational-insights/workspace:0.16.1' = {
  name: 'logAnalytics'
  params: {
    name: logAnalyticsName
    location: location
    tags: tags
    skuName: 'PerGB2018'
    dataRetention: logRetentionDays
  }
}

module appInsights 'br/public:avm/res/insights/component:0.8.0' = {
  name: 'appInsights'
  params: {
    name: appInsightsName
    location: location
    tags: tags
    kind: 'web'
    applicationType: 'web'
    workspaceResourceId: logAnalytics.outputs.resourceId
    // Local (instrumentation-key) auth is off: telemetry is accepted only with an Entra token of an
    // identity holding Monitoring Metrics Publisher (APPLICATIONINSIGHTS_AUTHENTICATION_STRING below).
    disableLocalAuth: true
    retentionInDays: logRetentionDays
  }
}

// --- role assignments ----------------------------------------------------------------------------
module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  // Secret-scoped role assignments need the secrets to exist.
  dependsOn: [
    emailHashKeySecret
    commerceClientSecretValue
    webhookSecretsValue
  ]
  params: {
    principalId: identity.outputs.principalId
    operatorPrincipalId: operatorPrincipalId
    storageAccountName: storage.outputs.name
    queueNames: queueNames
    tableNames: tableNames
    keyVaultName: vault.outputs.name
    secretNames: appSecretNames
    appInsightsName: appInsights.outputs.name
  }
}

// --- Flex Consumption plan and Function App ------------------------------------------------------
module plan 'br/public:avm/res/web/serverfarm:0.7.0' = {
  name: 'plan'
  params: {
    name: planName
    location: location
    tags: tags
    skuName: 'FC1'
    kind: 'functionapp'
    reserved: true
    zoneRedundant: false
  }
}

// Every name in shared/settings.py APP_SETTINGS and the Azure platform names of PLATFORM_SETTINGS
// (tests/infra keeps this list, the settings registry and local.settings.sample.json in step).
// No FUNCTIONS_WORKER_RUNTIME / WEBSITE_RUN_FROM_PACKAGE: Flex sets the runtime in functionAppConfig
// and deploys from the blob container.
var appSettings = {
  // Identity-based host storage: one service URI per service the app uses, no keys.
  AzureWebJobsStorage__blobServiceUri: blobEndpoint
  AzureWebJobsStorage__queueServiceUri: queueEndpoint
  AzureWebJobsStorage__tableServiceUri: tableEndpoint
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId

  EVENTS_QUEUE_NAME: eventsQueueName
  DEADLETTER_TABLE_NAME: deadLetterTableName
  DEADLETTER_RETENTION_DAYS: deadLetterRetentionDays
  LEDGER_TABLE_NAME: ledgerTableName
  LEDGER_LEASE_SECONDS: ledgerLeaseSeconds
  RETRY_BASE_DELAY_SECONDS: retryBaseDelaySeconds
  RETRY_MAX_DELAY_SECONDS: retryMaxDelaySeconds
  RETRY_MAX_AGE_SECONDS: retryMaxAgeSeconds
  COMMERCE_MAX_CONCURRENCY: string(commerceMaxConcurrency)
  QUEUE_MONITOR_SCHEDULE: queueMonitorSchedule
  BACKFILL_MAX_CONCURRENCY: backfillMaxConcurrency

  COMMERCE_BASE_URL: commerceBaseUrl
  COMMERCE_OUN: commerceOun
  COMMERCE_API_VERSION: commerceApiVersion
  COMMERCE_AUTH_SCHEME: commerceAuthScheme
  COMMERCE_AUTH_MODE: commerceAuthMode
  COMMERCE_TENANT_ID: commerceTenantId
  COMMERCE_CLIENT_ID: commerceClientId
  COMMERCE_CLIENT_SECRET: usesClientSecret ? commerceClientSecretReference : ''
  // Certificate mode is not offered by this template.
  COMMERCE_CLIENT_CERTIFICATE_PATH: ''
  // The user-assigned identity whose token is exchanged (workload_identity mode).
  COMMERCE_MANAGED_IDENTITY_CLIENT_ID: usesClientSecret ? '' : identity.outputs.clientId
  COMMERCE_SERVER_RESOURCE_ID: commerceServerResourceId
  // The emulator token must never work in Azure: always empty here.
  COMMERCE_STATIC_DEV_TOKEN: ''
  COMMERCE_CONNECT_TIMEOUT_SECONDS: commerceConnectTimeoutSeconds
  COMMERCE_READ_TIMEOUT_SECONDS: commerceReadTimeoutSeconds
  COMMERCE_SEARCH_PAGE_SIZE: commerceSearchPageSize

  CUSTOMER_DEFAULT_TYPE: customerDefaultType
  CUSTOMER_DEFAULT_GROUP: customerDefaultGroup
  CUSTOMER_DEFAULT_CURRENCY: customerDefaultCurrency
  CUSTOMER_DEFAULT_LANGUAGE: customerDefaultLanguage
  CUSTOMER_ADDRESS_TYPE: customerAddressType
  DEFAULT_COUNTRY: defaultCountry
  STATE_ID_OVERRIDES: stateIdOverrides
  INVALID_OPTIONAL_FIELDS: invalidOptionalFields
  PHONE_CLEAR_CONTACT: phoneClearContact

  INGEST_MAX_EVENTS: ingestMaxEvents
  INGEST_MAX_BODY_BYTES: ingestMaxBodyBytes

  WEBHOOK_SECRETS: webhooksEnabled ? webhookSecretsReference : ''
  WEBHOOK_SOURCE_OPTIONS: webhookSourceOptions
  WEBHOOK_MAPPINGS_DIR: webhookMappingsDir
  WEBHOOK_PUBLIC_BASE_URL: webhookPublicBaseUrl
  WEBHOOK_DELIVERY_TABLE_NAME: webhookDeliveryTableName
  WEBHOOK_IDENTITY_TABLE_NAME: webhookIdentityTableName

  EMAIL_HASH_KEY: emailHashKeyReference

  // Functions OpenTelemetry mode (host.json telemetryMode): the worker configures the exporter.
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=${identity.outputs.clientId}'
  PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
  PYTHON_THREADPOOL_THREAD_COUNT: string(threadsPerInstance)
}

module functionApp 'br/public:avm/res/web/site:0.24.0' = {
  name: 'functionApp'
  // The app starts reading storage and Key Vault at once: give it its roles first.
  dependsOn: [
    rbac
  ]
  params: {
    name: functionAppName
    location: location
    tags: tags
    kind: 'functionapp,linux'
    serverFarmResourceId: plan.outputs.resourceId
    managedIdentities: {
      systemAssigned: false
      userAssignedResourceIds: [
        identity.outputs.resourceId
      ]
    }
    // Key Vault references are resolved with the user-assigned identity, not a system identity.
    keyVaultAccessIdentityResourceId: identity.outputs.resourceId
    httpsOnly: true
    siteConfig: {
      alwaysOn: false
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.outputs.resourceId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
    configs: [
      {
        name: 'appsettings'
        // The template is the source of truth: settings changed by hand are reset on deployment.
        retainCurrentAppSettings: false
        properties: appSettings
      }
    ]
  }
}

// --- alerts --------------------------------------------------------------------------------------
module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    tags: tags
    namePrefix: '${baseName}-${resourceToken}'
    appInsightsName: appInsights.outputs.name
    ingestPath: ingestPath
    alertEmails: alertEmails
    failedProcessorThreshold: failedProcessorThreshold
    ingestServerErrorThreshold: ingestServerErrorThreshold
    webhookRejectedThreshold: webhookRejectedThreshold
    queueDepthThreshold: queueDepthThreshold
    queueOldestAgeSecondsThreshold: queueOldestAgeSecondsThreshold
    backfillOldestAgeSecondsThreshold: backfillOldestAgeSecondsThreshold
  }
}

// --- workbook: the operator's charts (docs/operations.md) ------------------------------------------
module workbook 'app/workbook.bicep' = {
  name: 'workbook'
  params: {
    location: location
    tags: tags
    namePrefix: '${baseName}-${resourceToken}'
    appInsightsName: appInsights.outputs.name
  }
}

// --- outputs -------------------------------------------------------------------------------------
output functionAppName string = functionApp.outputs.name
output defaultHostname string = functionApp.outputs.defaultHostname
// Without a key: fetch one with `az functionapp function keys list` (docs/deploy.md).
output ingestUrl string = 'https://${functionApp.outputs.defaultHostname}${ingestPath}'
// Each marketing system's webhook URL is this with /<source> and ?code=<function key> (docs/sources.md).
output webhookBaseUrl string = 'https://${functionApp.outputs.defaultHostname}/api/webhooks'
output identityClientId string = identity.outputs.clientId
output identityPrincipalId string = identity.outputs.principalId
output keyVaultName string = vault.outputs.name
output storageAccountName string = storage.outputs.name
output appInsightsName string = appInsights.outputs.name
output queueConcurrencyPerInstance int = queueConcurrencyPerInstance
output maxConcurrentCommerceCalls int = (maximumInstanceCount * commerceCallsPerInstance)
