// Parameters for infra/main.bicep. Environment-specific values come from environment variables so
// that nothing about a tenant, and no secret, is committed. docs/deploy.md lists them; a missing
// required variable fails the deployment before anything is created.
using './main.bicep'

param baseName = readEnvironmentVariable('CUSTSYNC_BASE_NAME', 'custsync')

// Python of the Flex Consumption runtime: 3.11, 3.12 or 3.13 (bench/README.md compares them).
param pythonVersion = readEnvironmentVariable('CUSTSYNC_PYTHON_VERSION', '3.11')

// Commerce Scale Unit and the Entra app registrations (docs/commerce-connection.md).
param commerceBaseUrl = readEnvironmentVariable('COMMERCE_BASE_URL')
param commerceOun = readEnvironmentVariable('COMMERCE_OUN')
param commerceClientId = readEnvironmentVariable('COMMERCE_CLIENT_ID')
param commerceServerResourceId = readEnvironmentVariable('COMMERCE_SERVER_RESOURCE_ID')
param commerceAuthMode = readEnvironmentVariable('COMMERCE_AUTH_MODE', 'workload_identity')

// Secrets: set only for the deployment that must write them (first deployment, or a deliberate
// change); empty leaves the value stored in Key Vault untouched.
param commerceClientSecret = readEnvironmentVariable('COMMERCE_CLIENT_SECRET', '')
param emailHashKey = readEnvironmentVariable('EMAIL_HASH_KEY', '')

// Environment-specific mapping defaults (empty leaves them to Commerce).
param customerDefaultGroup = readEnvironmentVariable('CUSTOMER_DEFAULT_GROUP', '')
param customerDefaultCurrency = readEnvironmentVariable('CUSTOMER_DEFAULT_CURRENCY', '')
param defaultCountry = readEnvironmentVariable('DEFAULT_COUNTRY', '')

// Scale: the ceiling on concurrent Commerce calls is maximumInstanceCount x COMMERCE_MAX_CONCURRENCY
// (docs/deploy.md "Bound on load against Commerce").
param maximumInstanceCount = int(readEnvironmentVariable('CUSTSYNC_MAX_INSTANCES', '40'))
param commerceMaxConcurrency = int(readEnvironmentVariable('COMMERCE_MAX_CONCURRENCY', '8'))

// Signed webhooks from marketing systems (docs/sources.md). WEBHOOK_SECRETS is the JSON of the senders'
// signing secrets, {"<source>": ["<secret>", ...]}: set it only for the deployment that writes it to Key
// Vault; empty leaves the stored value. The options and base URL are environment-specific too.
param webhooksEnabled = readEnvironmentVariable('WEBHOOKS_ENABLED', 'false') == 'true'
param webhookSecrets = readEnvironmentVariable('WEBHOOK_SECRETS', '')
param webhookSourceOptions = readEnvironmentVariable('WEBHOOK_SOURCE_OPTIONS', '{}')
param webhookPublicBaseUrl = readEnvironmentVariable('WEBHOOK_PUBLIC_BASE_URL', '')

// Comma-separated list of e-mail addresses for alerts.
param alertEmails = split(readEnvironmentVariable('ALERT_EMAILS'), ',')

// Optional: the operator's object id (az ad signed-in-user show --query id -o tsv) for replay/preflight.
param operatorPrincipalId = readEnvironmentVariable('OPERATOR_PRINCIPAL_ID', '')
