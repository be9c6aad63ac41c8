"""The operator's workbook: deployed by main.bicep on Application Insights, one chart per question
operations asks, and every query built on names and dimensions the app really emits."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared.adapters.telemetry import CUSTOM_EVENT_ATTRIBUTE, Telemetry
from shared.core import telemetry_names as tn
from tests.support import bicep_model as m

WORKBOOK_BICEP = m.INFRA / "app" / "workbook.bicep"
EXPECTED = {
    "events-by-source",
    "webhooks-by-source",
    "outcomes",
    "backfill-progress",
    "commerce-latency",
    "commerce-errors",
    "commerce-throttling",
    "queue-depth",
    "queue-age",
    "deadletters-by-reason",
    "deadletters-held",
    "webhook-rejections",
    "erasures",
}


def evaluator():
    return m.Evaluator(
        m.parse_bicep(WORKBOOK_BICEP),
        WORKBOOK_BICEP,
        {"namePrefix": "p", "location": "westeurope", "appInsightsName": "appi"},
    )


def charts() -> dict[str, dict]:
    ev = evaluator()
    return {c["key"]: c for c in ev.eval(ev.tree["variables"]["charts"]["value"])}


def test_the_workbook_is_deployed_on_application_insights_by_main():
    params = m.module_params("workbook")
    assert params["appInsightsName"] == m.Unresolved("appInsights.outputs.name")
    tree = m.parse_bicep(WORKBOOK_BICEP)
    fn = tree["variables"]["telemetry"]["value"]["function"]
    assert fn["type"] == "load_json_content"
    assert (WORKBOOK_BICEP.parent / fn["parameters"]["file_path"]).resolve() == m.TELEMETRY_JSON
    workbook = m.resources(tree)["workbook"]
    assert workbook["type"] == "Microsoft.Insights/workbooks"
    config, ev = workbook["config"], evaluator()
    assert ev.eval(config["kind"]) == "shared" and ev.eval(config["properties"]["category"]) == "workbook"
    assert ev.eval(config["properties"]["sourceId"]) == m.Unresolved("appInsights.id")
    assert config["properties"]["serializedData"]["function"]["type"] == "string"


def test_one_chart_per_question_and_every_chart_is_in_the_workbook():
    found = charts()
    assert set(found) == EXPECTED
    ev = evaluator()
    content = ev.eval(ev.tree["variables"]["workbookContent"]["value"])
    queries = [i["content"]["query"] for i in content["items"] if i["type"] == 3]
    assert queries == [c["query"] for c in found.values()]
    assert content["version"] == "Notebook/1.0"
    assert all("{TimeRange}" in q for q in queries)  # every chart follows the time picker


def test_queries_compare_only_with_names_defined_in_code():
    known = set(m.telemetry_names_from_code().values())
    checked = 0
    for key, chart in charts().items():
        for literal in re.findall(r'==\s*"([^"]*)"', chart["query"]):
            assert literal in known, f"{key}: {literal!r} is not in shared/core/telemetry_names.py"
            checked += 1
    assert checked >= 15  # the compared names of the 13 charts


def _emitted(caplog) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Run the app's own telemetry paths; return custom event name -> dimensions, metric -> dimensions."""
    from shared.adapters.memory_ledger import MemoryLedger
    from shared.core.bulkfile import SOURCE
    from shared.core.settings import load_settings
    from shared.usecases.backfill import pack  # noqa: F401 - the backfill's events carry source "backfill"
    from shared.usecases.erasure import ErasureDeps, erase_customer
    from shared.usecases.ingest import IngestDeps, handle_ingest
    from shared.usecases.processor import CallCounter, ProcessorDeps, process_message

    reader = InMemoryMetricReader()
    telemetry = Telemetry(meter=MeterProvider(metric_readers=[reader]).get_meter("test"))
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    settings = load_settings(json.loads((m.REPO / "local.settings.sample.json").read_text())["Values"])
    queued: list[str] = []
    queue = type("Q", (), {"send": lambda self, message: queued.append(message)})()
    event = {
        "eventId": "bf-1",
        "occurredAt": "2026-11-26T11:00:00Z",
        "source": SOURCE,
        "customer": {"email": "a@example.com", "firstName": "Ada"},
    }
    handle_ingest(
        json.dumps(event).encode(),
        "application/json",
        "c",
        IngestDeps(settings=settings, queue=queue, telemetry=telemetry, clock=lambda: now),
    )

    class Commerce:
        def search_customers_by_email(self, email):
            telemetry.commerce_call("search", 429, 0.2)
            raise RuntimeError("throttled")

    letters = []
    deps = ProcessorDeps(
        commerce=Commerce(),
        deadletters=type("D", (), {"put": lambda s, x: letters.append(x)})(),
        telemetry=telemetry,
        mapping=settings.mapping,
        max_dequeue_count=1,
        calls=CallCounter(),
        clock=lambda: now,
        ledger=MemoryLedger(),
        requeue=lambda m_, d: None,
        retry=settings.retry,
        lease_seconds=60,
        call_budget=10,
        hash_key=settings.email_hash_key,
    )
    with caplog.at_level(logging.INFO):
        process_message(queued[0], 1, deps)  # retrying
        process_message("not an envelope", 1, deps)  # dead-lettered
        telemetry.commerce_call("create", 201, 0.05)
        telemetry.queue_metrics("customer-events-backfill", 3, 12.0)
        telemetry.deadletter_count(1)
        telemetry.webhook_rejected(source="shopify", reason="bad_signature", correlation_id="c")
        telemetry.webhook_delivery("shopify", "accepted")
        erase_customer(
            "a" * 64,
            ErasureDeps(
                ledger=MemoryLedger(),
                deadletters=type("L", (), {"query": lambda s, **k: []})(),
                poison_queues=[],
                clock=lambda: now,
                telemetry=telemetry,
            ),
        )
    events: dict[str, set[str]] = {}
    for record in caplog.records:
        name = getattr(record, CUSTOM_EVENT_ATTRIBUTE, None)
        if name:
            events.setdefault(name, set()).update(k for k in vars(record) if not k.startswith("_"))
            if name == tn.EVENT_SYNC_OUTCOME and getattr(record, "event_id", None) == "bf-1":
                assert record.source == tn.SOURCE_BACKFILL
    metrics: dict[str, set[str]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    metrics.setdefault(metric.name, set()).update(point.attributes)
                    if metric.name == tn.METRIC_COMMERCE_LATENCY and point.attributes["operation"] == "search":
                        assert point.attributes["status_class"] == tn.STATUS_CLASS_THROTTLED
    return events, metrics


def test_every_name_and_dimension_a_chart_reads_is_emitted_by_the_app(caplog):
    events, metrics = _emitted(caplog)
    found = charts()
    assert len(found) >= len(EXPECTED)
    for key, chart in found.items():
        query = chart["query"]
        table = query.split("|", 1)[0].strip()
        [name] = re.findall(r'name == "([^"]*)"', query)
        dims = set(re.findall(r'customDimensions\["([^"]+)"\]', query))
        emitted = events if table == "customEvents" else metrics
        assert name in emitted, f"{key}: {name} is not emitted into {table}"
        assert dims <= emitted[name], f"{key}: {dims - emitted[name]} not among the dimensions of {name}"


def test_the_backfill_source_is_the_one_its_events_carry():
    from shared.core.bulkfile import SOURCE

    assert SOURCE == tn.SOURCE_BACKFILL


@pytest.mark.parametrize("queue", ["customer-events", "customer-events-backfill"])
def test_queue_charts_split_by_queue_so_live_and_backfill_show_apart(queue):
    for key in ("queue-depth", "queue-age"):
        assert 'queue = tostring(customDimensions["queue"])' in charts()[key]["query"]
        assert "by queue" in charts()[key]["query"]
