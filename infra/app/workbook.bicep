// Azure Monitor workbook over Application Insights: the operator's view of the integration. Every
// telemetry name in a query comes from telemetry-names.json (generated from shared/telemetry_names.py),
// and tests/infra/test_ops_workbook.py checks each query against the names and dimensions the app emits.

param location string
param tags object = {}

@description('Prefix of the workbook display name.')
param namePrefix string

param appInsightsName string

var telemetry = loadJsonContent('../telemetry-names.json')

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// customMetrics rows of an OpenTelemetry counter or histogram: value is the sum over the export
// interval, valueCount the number of measurements. {TimeRange} and {TimeRange:grain} are the
// workbook's time picker. One entry per chart; queries use KQL double-quoted strings.
var charts = [
  {
    key: 'events-by-source'
    title: 'Events processed by source (distinct event ids)'
    visualization: 'timechart'
    query: 'customEvents | where timestamp {TimeRange} and name == "${telemetry.EVENT_SYNC_OUTCOME}" | extend source = tostring(customDimensions["source"]), event_id = tostring(customDimensions["event_id"]) | summarize events = dcount(event_id) by source, bin(timestamp, {TimeRange:grain})'
  }
  {
    key: 'webhooks-by-source'
    title: 'Webhook deliveries received, by source and outcome'
    visualization: 'barchart'
    query: 'customMetrics | where timestamp {TimeRange} and name == "${telemetry.METRIC_WEBHOOK_DELIVERIES}" | extend source = tostring(customDimensions["source"]), outcome = tostring(customDimensions["outcome"]) | summarize deliveries = sum(value) by source, outcome'
  }
  {
    key: 'outcomes'
    title: 'Outcomes over time'
    visualization: 'timechart'
    query: 'customEvents | where timestamp {TimeRange} and name == "${telemetry.EVENT_SYNC_OUTCOME}" | extend outcome = tostring(customDimensions["outcome"]) | summarize events = count() by outcome, bin(timestamp, {TimeRange:grain})'
  }
  {
    key: 'backfill-progress'
    title: 'Backfill: outcomes of backfilled events'
    visualization: 'timechart'
    query: 'customEvents | where timestamp {TimeRange} and name == "${telemetry.EVENT_SYNC_OUTCOME}" and tostring(customDimensions["source"]) == "${telemetry.SOURCE_BACKFILL}" | extend outcome = tostring(customDimensions["outcome"]) | summarize events = count() by outcome, bin(timestamp, {TimeRange:grain})'
  }
  {
    key: 'commerce-latency'
    title: 'Commerce latency (ms): average and slowest, by operation'
    visualization: 'timechart'
    query: 'customMetrics | where timestamp {TimeRange} and name == "${telemetry.METRIC_COMMERCE_LATENCY}" | extend operation = tostring(customDimensions["operation"]) | summarize average_ms = sum(value) / sum(valueCount), slowest_ms = max(valueMax) by operation, bin(timestamp, {TimeRange:grain})'
  }
  {
    key: 'commerce-errors'
    title: 'Commerce calls by status class (2xx, 4xx, 5xx, none = no answer)'
    visualization: 'timechart'
    query: 'customMetrics | where timestamp {TimeRange} and name == "${telemetry.METRIC_COMMERCE_CALLS}" | extend status_class = tostring(customDimensions["status_class"]) | summarize calls = sum(value) by status_class, bin(timestamp, {TimeRange:grain})'
  }
  {
    key: 'commerce-throttling'
    title: 'Throttling: Commerce answers 429, by operation'
    visualization: 'timechart'
    query: 'customMetrics | where timestamp {TimeRange} and name == "${telemetry.METRIC_COMMERCE_LATENCY}" and tostring(customDimensions["status_class"]) == "${telemetry.STATUS_CLASS_THROTTLED}" | extend operation = tostring(customDimensions["operation"]) | summarize throttled = sum(valueCount) by operation, bin(timestamp, {TimeRange:grain})'
  }
  {
    key: 'queue-depth'
    title: 'Queue depth (live, backfill and their poison queues)'
    visualization: 'timechart'
    query: 'customMetrics | where timestamp {TimeRange} and name == "${telemetry.METRIC_QUEUE_DEPTH}" | extend queue = tostring(customDimensions["queue"]) | summarize messages = max(value) by queue, bin(timestamp, {TimeRange:grain})'
  }
  {
    key: 'queue-age'
    title: 'Oldest queued message (s), per queue'
    visualization: 'timechart'
    query: 'customMetrics | where timestamp {TimeRange} and name == "${telemetry.METRIC_QUEUE_OLDEST_AGE}" | extend queue = tostring(customDimensions["queue"]) | summarize oldest_s = max(value) by queue, bin(timestamp, {TimeRange:grain})'
  }
  {
    key: 'deadletters-by-reason'
    title: 'Dead letters by reason'
    visualization: 'barchart'
    query: 'customEvents | where timestamp {TimeRange} and name == "${telemetry.EVENT_DEAD_LETTERED}" | extend reason = tostring(customDimensions["reason"]) | summarize dead_letters = count() by reason | order by dead_letters desc'
  }
  {
    key: 'deadletters-held'
    title: 'Dead letters held for replay'
    visualization: 'timechart'
    query: 'customMetrics | where timestamp {TimeRange} and name == "${telemetry.METRIC_DEADLETTER_COUNT}" | summarize held = max(value) by bin(timestamp, {TimeRange:grain})'
  }
  {
    key: 'webhook-rejections'
    title: 'Webhook deliveries refused as not authentic, by source and reason'
    visualization: 'table'
    query: 'customEvents | where timestamp {TimeRange} and name == "${telemetry.EVENT_WEBHOOK_REJECTED}" | extend source = tostring(customDimensions["source"]), reason = tostring(customDimensions["reason"]) | summarize rejected = count(), last_seen = max(timestamp) by source, reason'
  }
  {
    key: 'erasures'
    title: 'Erasures (by email hash only)'
    visualization: 'table'
    query: 'customEvents | where timestamp {TimeRange} and name == "${telemetry.EVENT_CUSTOMER_ERASED}" | extend email_hash = tostring(customDimensions["email_hash"]), dead_letters = toint(customDimensions["dead_letters"]) | project timestamp, email_hash, dead_letters'
  }
]

var timeRangeItem = {
  type: 9
  name: 'parameters'
  content: {
    version: 'KqlParameterItem/1.0'
    parameters: [
      {
        id: 'time-range'
        version: 'KqlParameterItem/1.0'
        name: 'TimeRange'
        label: 'Time range'
        type: 4
        isRequired: true
        value: {
          durationMs: 86400000
        }
        typeSettings: {
          selectableValues: [
            {
              durationMs: 3600000
            }
            {
              durationMs: 14400000
            }
            {
              durationMs: 86400000
            }
            {
              durationMs: 259200000
            }
            {
              durationMs: 604800000
            }
          ]
        }
      }
    ]
  }
}

var chartItems = [for chart in charts: {
  type: 3
  name: chart.key
  content: {
    version: 'KqlItem/1.0'
    title: chart.title
    query: chart.query
    size: 0
    queryType: 0
    resourceType: 'microsoft.insights/components'
    visualization: chart.visualization
  }
  customWidth: '50'
}]

var workbookContent = {
  version: 'Notebook/1.0'
  items: concat([
    {
      type: 1
      name: 'title'
      content: {
        json: '## Customer sync\nEvents by source, outcomes, Commerce latency, errors and throttling, queues (live and backfill), dead letters and webhook refusals. docs/operations.md explains each chart.'
      }
    }
    timeRangeItem
  ], chartItems)
  fallbackResourceIds: [
    appInsights.id
  ]
  '$schema': 'https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json'
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, namePrefix, 'customer-sync-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Customer sync (${namePrefix})'
    category: 'workbook'
    sourceId: appInsights.id
    serializedData: string(workbookContent)
  }
}

output workbookId string = workbook.id
