// Action group and log alerts over Application Insights. Every telemetry name in a query comes from
// telemetry-names.json, which tests/infra generates from shared/telemetry_names.py and keeps equal to
// it; the lead's end-to-end test checks that the app really emits each name an alert depends on.

param location string
param tags object = {}

@description('Prefix of the alert and action group names.')
param namePrefix string

param appInsightsName string

@description('URL path of the ingest function, e.g. /api/customers/events.')
param ingestPath string

@description('E-mail addresses that receive alerts.')
param alertEmails array

param failedProcessorThreshold int
param ingestServerErrorThreshold int
param webhookRejectedThreshold int = 0
param queueDepthThreshold int
param queueOldestAgeSecondsThreshold int

@description('Age in seconds of the oldest message in the backfill queue above which the backfill-stalled alert fires.')
param backfillOldestAgeSecondsThreshold int = 21600

@description('How often each rule runs (ISO 8601).')
param evaluationFrequency string = 'PT5M'

@description('Time window each rule looks back over (ISO 8601).')
param windowSize string = 'PT15M'

var telemetry = loadJsonContent('../telemetry-names.json')

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-${namePrefix}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'custsync'
    enabled: true
    emailReceivers: [for (email, i) in alertEmails: {
      name: 'email-${i}'
      emailAddress: email
      useCommonAlertSchema: true
    }]
  }
}

// Which rows exist depends on the host's telemetry mode (host.json "telemetryMode": "OpenTelemetry"):
// - An HTTP invocation's `requests` row comes from the host's ASP.NET Core instrumentation and is named
//   "<METHOD> <route template>", not after the function, so operation_Name is the function name only in
//   the classic (Application Insights SDK) mode: the ingest rule also matches the route and URL path.
// - A queue-triggered invocation has a `requests` row only on hosts that open a span for triggers the
//   Azure SDK does not instrument, and its success flag is the host's. The processor rule therefore
//   also counts the app's own CustomerSyncOutcome "retrying" events (one per failed attempt that will be
//   retried), de-duplicated per operation so one failed attempt counts once when both exist.
// Rows with no trace context carry an all-zero operation_Id: those are counted one by one (itemId).
// The route template the host names an HTTP request after in OpenTelemetry mode ("POST api/...").
var ingestRouteTemplate = skip(ingestPath, 1)
var perAttempt = 'summarize by attempt = iff(isempty(trim("0+", operation_Id)), itemId, operation_Id)'

// One entry per rule. Queries use KQL double-quoted strings so no escaping is needed in Bicep.
// "dimension" splits the alert per value (one alert per queue) when not empty.
var alertDefinitions = [
  {
    key: 'processor-failures'
    displayName: 'Customer sync: processor invocations failing'
    severity: 2
    threshold: failedProcessorThreshold
    dimension: ''
    query: 'union (requests | where operation_Name == "${telemetry.FUNCTION_PROCESS}" and success == false), (customEvents | where name == "${telemetry.EVENT_SYNC_OUTCOME}" and tostring(customDimensions["outcome"]) == "${telemetry.OUTCOME_RETRYING}") | ${perAttempt}'
    description: 'The queue processor is failing. Each failed attempt is sent again with a delay (Commerce Retry-After, else exponential backoff) until RETRY_MAX_AGE_SECONDS after ingest (24 h by default), then the event is dead-lettered. Query customEvents where name == "${telemetry.EVENT_SYNC_OUTCOME}" and customDimensions.outcome == "${telemetry.OUTCOME_RETRYING}" for the reason of each failed attempt, and traces/exceptions of the same operation_Id; check Commerce availability and throttling (${telemetry.METRIC_COMMERCE_CALLS} by status_class). If Commerce is down, nothing to do: events retry and land in dead letters, replay them with python -m tools.replay once it is back.'
  }
  {
    key: 'dead-lettered'
    displayName: 'Customer sync: events dead-lettered'
    severity: 2
    threshold: 0
    dimension: ''
    query: 'customEvents | where name == "${telemetry.EVENT_DEAD_LETTERED}"'
    description: 'At least one customer event was dead-lettered and did not reach Commerce. Query customEvents where name == "${telemetry.EVENT_DEAD_LETTERED}" for the reason and email hash, fix the cause (data, mapping defaults, Commerce configuration), then list and replay them with python -m tools.replay (filters: reason, time, event id, email hash; see docs/deploy.md).'
  }
  {
    key: 'commerce-auth-failure'
    displayName: 'Customer sync: Commerce authentication failing'
    severity: 1
    threshold: 0
    dimension: ''
    query: 'customEvents | where name == "${telemetry.EVENT_COMMERCE_AUTH_FAILURE}"'
    description: 'The app cannot authenticate to Commerce: every event will fail. Check the app registration (client id, federated credential or secret expiry), that Commerce headquarters lists the client id under Microsoft Entra applications, and that job 1110 ran. Rotate the secret if it expired (docs/deploy.md), then run python -m tools.preflight.'
  }
  {
    key: 'ingest-5xx'
    displayName: 'Customer sync: ingest endpoint returning 5xx'
    severity: 1
    threshold: ingestServerErrorThreshold
    dimension: ''
    query: 'requests | where (operation_Name == "${telemetry.FUNCTION_INGEST}" or operation_Name endswith " ${ingestRouteTemplate}" or url contains "${ingestPath}") and toint(resultCode) >= 500'
    description: 'The ingest endpoint (${telemetry.FUNCTION_INGEST}, POST ${ingestPath}) answered with a server error, so the marketing system must retry or has lost events. Look at the failed requests to ${ingestPath} and the ${telemetry.EVENT_INGEST_FAILURE} custom events; the usual cause is the queue being unreachable (storage outage, or a missing Storage Queue Data Contributor role on the events queue: check with python -m tools.preflight). Ask the sender to resend events from the alert window.'
  }
  {
    key: 'webhook-rejected'
    displayName: 'Customer sync: webhook deliveries refused as not authentic'
    severity: 2
    threshold: webhookRejectedThreshold
    dimension: 'source'
    query: 'customEvents | where name == "${telemetry.EVENT_WEBHOOK_REJECTED}" | extend source = tostring(customDimensions["source"]), reason = tostring(customDimensions["reason"])'
    description: 'A marketing system\'s webhook (POST /api/webhooks/<source>) was refused with 401 and nothing was stored, so that sender\'s customers are not arriving. Query customEvents where name == "${telemetry.EVENT_WEBHOOK_REJECTED}" for source and reason. bad_signature after a secret rotation: add the new secret beside the old one in the webhook-secrets Key Vault secret (WEBHOOK_SECRETS, docs/sources.md). no_secret or unknown_source: the source is not configured. expired: the sender\'s clock or a replay. shop_not_allowed: add the shop to shopDomains in WEBHOOK_SOURCE_OPTIONS. Check the sender\'s delivery log too.'
  }
  {
    key: 'queue-backlog'
    displayName: 'Customer sync: queue backlog'
    severity: 2
    threshold: 0
    dimension: 'queue'
    query: 'customMetrics | where name == "${telemetry.METRIC_QUEUE_DEPTH}" and value > ${queueDepthThreshold} | extend queue = tostring(customDimensions["queue"]) | where not(queue endswith "-backfill")'
    description: 'More than ${queueDepthThreshold} messages are waiting in a queue. For the event queue: processing is slower than ingest (Commerce throttling or slow, maximumInstanceCount too low, processor failing). For a -poison queue: the poison collector is not running. Check the processor-failures alert and ${telemetry.METRIC_COMMERCE_CALLS}. The backfill queue holds a planned load and has its own alert (backfill-stalled).'
  }
  {
    key: 'queue-oldest-age'
    displayName: 'Customer sync: oldest queued message too old'
    severity: 2
    threshold: 0
    dimension: 'queue'
    query: 'customMetrics | where name == "${telemetry.METRIC_QUEUE_OLDEST_AGE}" and value > ${queueOldestAgeSecondsThreshold} | extend queue = tostring(customDimensions["queue"]) | where not(queue endswith "-backfill")'
    description: 'A message has waited more than ${queueOldestAgeSecondsThreshold} seconds in a queue: events are stuck or the processor is not running. Check that the function app is running, look for processor failures and Commerce authentication failures, and confirm the queue trigger is listed in the portal.'
  }
  {
    key: 'backfill-stalled'
    displayName: 'Customer sync: backfill not draining'
    severity: 3
    threshold: 0
    dimension: 'queue'
    query: 'customMetrics | where name == "${telemetry.METRIC_QUEUE_OLDEST_AGE}" and value > ${backfillOldestAgeSecondsThreshold} | extend queue = tostring(customDimensions["queue"]) | where queue endswith "-backfill"'
    description: 'A message has waited more than ${backfillOldestAgeSecondsThreshold} seconds in the backfill queue (an initial load queued by python -m tools.backfill): the load is not draining. Check the processor-failures alert, Commerce throttling (${telemetry.METRIC_COMMERCE_CALLS} by status_class), and that the ${telemetry.FUNCTION_BACKFILL} function is running; BACKFILL_MAX_CONCURRENCY bounds its pace per instance (docs/operations.md). Live events are not affected: they have their own queue.'
  }
]

resource rules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for alert in alertDefinitions: {
  name: '${namePrefix}-${alert.key}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: alert.displayName
    description: alert.description
    severity: alert.severity
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: evaluationFrequency
    windowSize: windowSize
    // Resolve by itself once the condition is false again, so on-call sees state changes only.
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: alert.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: alert.threshold
          dimensions: empty(alert.dimension) ? [] : [
            {
              name: alert.dimension
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}]

output actionGroupId string = actionGroup.id
output alertRuleNames array = [for (alert, i) in alertDefinitions: rules[i].name]
