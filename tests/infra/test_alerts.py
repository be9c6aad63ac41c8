"""Alerts: built on the exact telemetry names of shared/core/telemetry_names.py, scoped to Application
Insights, self-resolving, and telling on-call what to do."""

from __future__ import annotations

import json
import re
from datetime import UTC

import pytest

from shared.core import telemetry_names as tn
from tests.support import bicep_model as m


def test_telemetry_names_json_equals_the_python_module():
    assert m.TELEMETRY_JSON.read_text(encoding="utf-8") == m.telemetry_names_document(), (
        "regenerate with: .venv/bin/python -m tests.support.bicep_model write-telemetry-names"
    )


def test_alerts_load_the_generated_names_file():
    tree = m.parse_bicep(m.ALERTS_BICEP)
    fn = tree["variables"]["telemetry"]["value"]["function"]
    assert fn["type"] == "load_json_content"
    assert (m.ALERTS_BICEP.parent / fn["parameters"]["file_path"]).resolve() == m.TELEMETRY_JSON


def test_each_required_alert_queries_the_exact_names():
    q = m.alert_queries()
    assert f'operation_Name == "{tn.FUNCTION_PROCESS}"' in q["processor-failures"]
    assert "success == false" in q["processor-failures"]
    # In the Functions OpenTelemetry mode a queue invocation may have no `requests` row: the app's own
    # outcome event for each failed attempt that will be retried is counted too, once per operation.
    assert (
        f'customEvents | where name == "{tn.EVENT_SYNC_OUTCOME}" and '
        f'tostring(customDimensions["outcome"]) == "{tn.Outcome.RETRYING.value}"'
    ) in q["processor-failures"]
    assert q["processor-failures"].startswith("union (requests")
    assert "summarize by attempt = " in q["processor-failures"]
    assert q["dead-lettered"].startswith("customEvents") and f'name == "{tn.EVENT_DEAD_LETTERED}"' in q["dead-lettered"]
    assert f'name == "{tn.EVENT_COMMERCE_AUTH_FAILURE}"' in q["commerce-auth-failure"]
    # In OpenTelemetry mode an HTTP invocation's request is named "POST <route>": match the path too.
    assert (
        f'operation_Name == "{tn.FUNCTION_INGEST}"' in q["ingest-5xx"] and "toint(resultCode) >= 500" in q["ingest-5xx"]
    )
    assert 'url contains "/api/customers/events"' in q["ingest-5xx"]
    assert 'operation_Name endswith " api/customers/events"' in q["ingest-5xx"]
    assert f'name == "{tn.METRIC_QUEUE_DEPTH}"' in q["queue-backlog"] and "customDimensions" in q["queue-backlog"]
    assert f'name == "{tn.METRIC_QUEUE_OLDEST_AGE}"' in q["queue-oldest-age"]
    # Webhook deliveries refused before anything was stored: one alert per source.
    assert q["webhook-rejected"].startswith(f'customEvents | where name == "{tn.EVENT_WEBHOOK_REJECTED}"')
    assert 'source = tostring(customDimensions["source"])' in q["webhook-rejected"]
    # A planned backfill keeps its queue deep for hours: its own, slower alert; the others leave it out.
    for key in ("queue-backlog", "queue-oldest-age"):
        assert q[key].endswith('| where not(queue endswith "-backfill")')
    assert f'name == "{tn.METRIC_QUEUE_OLDEST_AGE}"' in q["backfill-stalled"]
    assert q["backfill-stalled"].endswith('| where queue endswith "-backfill"')


def test_alert_queries_use_no_name_that_the_code_does_not_define():
    # Quoted strings compared with == in a query must all be telemetry names.
    known = set(m.telemetry_names_from_code().values())
    checked = 0
    for name, query in m.alert_queries().items():
        for literal in re.findall(r'==\s*"([^"]*)"', query):
            assert literal in known, f"{name}: {literal!r} is not in shared/core/telemetry_names.py"
            checked += 1
    assert checked >= 10  # the compared names of the 8 alert queries


def test_names_used_by_alerts_helper():
    used = m.telemetry_names_used_by_alerts()
    assert used == {
        tn.FUNCTION_PROCESS,
        tn.FUNCTION_INGEST,
        tn.EVENT_DEAD_LETTERED,
        tn.EVENT_COMMERCE_AUTH_FAILURE,
        tn.EVENT_SYNC_OUTCOME,
        tn.METRIC_QUEUE_DEPTH,
        tn.METRIC_QUEUE_OLDEST_AGE,
        tn.EVENT_WEBHOOK_REJECTED,
    }
    assert m.telemetry_values_used_by_alerts() == {"OUTCOME_RETRYING": tn.Outcome.RETRYING.value}
    assert m.telemetry_keys_used_by_alerts() <= set(m.telemetry_names_from_code())


def test_the_ingest_path_the_alert_matches_is_the_registered_route():
    import function_app
    from devhost.bindings import indexed_functions

    host = json.loads((m.REPO / "host.json").read_text())
    prefix = host.get("extensions", {}).get("http", {}).get("routePrefix", "api")
    ingest = {f.get_function_name(): f for f in indexed_functions(function_app.app)}[tn.FUNCTION_INGEST]
    (trigger,) = [b for b in ingest.get_bindings() if b.type == "httpTrigger"]
    assert m.module_params("alerts")["ingestPath"] == f"/{prefix}/{trigger.route}"


def test_a_failed_attempt_that_will_be_retried_emits_the_outcome_the_processor_alert_counts(caplog):
    # The processor alert's customEvents clause: one CustomerSyncOutcome with outcome "retrying" per
    # failed attempt that is released for another try (tests/integration sees the same end to end).
    import logging
    from datetime import datetime

    from shared.adapters.telemetry import CUSTOM_EVENT_ATTRIBUTE, Telemetry
    from shared.core.settings import load_settings
    from shared.usecases.ingest import IngestDeps, handle_ingest
    from shared.usecases.processor import CallCounter, ProcessorDeps, process_message

    NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    settings = load_settings(json.loads((m.REPO / "local.settings.sample.json").read_text())["Values"])

    class Queue:
        messages: list[str] = []

        def send(self, message: str) -> None:
            self.messages.append(message)

    queue = Queue()
    event = {
        "specVersion": "1.0",
        "eventId": "evt-1",
        "eventType": "customer.created",
        "occurredAt": "2026-11-26T11:59:00+01:00",
        "customer": {"email": "person.1@example.com", "firstName": "Ada"},
    }
    accepted = handle_ingest(
        json.dumps(event).encode(),
        "application/json",
        "corr-1",
        IngestDeps(settings=settings, queue=queue, telemetry=Telemetry(), clock=lambda: NOW),
    )
    assert accepted.status == 202 and len(queue.messages) == 1

    class BrokenCommerce:
        def search_customers_by_email(self, email):
            raise RuntimeError("boom")

    from shared.adapters.memory_ledger import MemoryLedger

    requeued: list[tuple[str, int]] = []
    deps = ProcessorDeps(
        commerce=BrokenCommerce(),
        deadletters=None,
        telemetry=Telemetry(),
        mapping=settings.mapping,
        max_dequeue_count=5,
        calls=CallCounter(),
        clock=lambda: NOW,
        ledger=MemoryLedger(),
        requeue=lambda m, d: requeued.append((m, d)),
        retry=settings.retry,
        lease_seconds=60,
        call_budget=10,
        hash_key=b"k" * 16,
    )
    with caplog.at_level(logging.INFO):
        process_message(queue.messages[0], 1, deps)
    assert len(requeued) == 1  # the attempt is retried by a new message, not by the host
    outcomes = [r for r in caplog.records if getattr(r, CUSTOM_EVENT_ATTRIBUTE, None) == tn.EVENT_SYNC_OUTCOME]
    assert [r.outcome for r in outcomes] == [m.telemetry_values_used_by_alerts()["OUTCOME_RETRYING"]]


def test_a_renamed_telemetry_name_is_detected(tmp_path, monkeypatch):
    # If the JSON lacks a key an alert reads, evaluating the alerts fails loudly.
    names = json.loads(m.TELEMETRY_JSON.read_text())
    del names["EVENT_DEAD_LETTERED"]
    infra = tmp_path / "infra"
    (infra / "app").mkdir(parents=True)
    (infra / "telemetry-names.json").write_text(json.dumps(names))
    (infra / "app" / "alerts.bicep").write_text(m.ALERTS_BICEP.read_text())
    monkeypatch.setattr(m, "ALERTS_BICEP", infra / "app" / "alerts.bicep")
    with pytest.raises(KeyError, match="EVENT_DEAD_LETTERED"):
        m.alert_queries()


@pytest.fixture(scope="module")
def rules():
    tree = m.parse_bicep(m.ALERTS_BICEP)
    resource = m.resources(tree)["rules"]
    assert resource["type"] == "Microsoft.Insights/scheduledQueryRules"
    assert str(resource["config"]["loop_type"]["detail"]["array_name"]) == "alertDefinitions"
    ev = m.Evaluator(
        tree,
        m.ALERTS_BICEP,
        {
            "namePrefix": "p",
            "location": "westeurope",
            "appInsightsName": "a",
            "ingestPath": m.module_params("alerts")["ingestPath"],
            "alertEmails": ["x@example.invalid"],
            "failedProcessorThreshold": 10,
            "ingestServerErrorThreshold": 0,
            "queueDepthThreshold": 1000,
            "queueOldestAgeSecondsThreshold": 900,
        },
    )
    return ev.eval(resource["config"])


def test_rules_are_log_alerts_on_application_insights_that_resolve_themselves(rules):
    assert len(rules) == 8
    for rule in rules:
        assert rule["kind"] == "LogAlert"
        props = rule["properties"]
        assert props["scopes"] == [m.Unresolved("appInsights.id")]
        assert props["autoMitigate"] is True
        assert props["evaluationFrequency"] == "PT5M" and props["windowSize"] == "PT15M"
        assert props["severity"] in (0, 1, 2, 3, 4)
        assert props["actions"]["actionGroups"] == [m.Unresolved("actionGroup.id")]
        (criterion,) = props["criteria"]["allOf"]
        assert criterion["query"] in m.alert_queries().values()
        # A description on-call can act on: says what to check and points at a tool or a doc.
        assert len(props["description"]) > 120
        assert re.search(r"tools\.(replay|preflight)|docs/deploy\.md|Check|check", props["description"])


def test_queue_alerts_split_per_queue(rules):
    by_name = {r["name"]: r for r in rules}
    for key in ("queue-backlog", "queue-oldest-age", "backfill-stalled"):
        dims = by_name[f"p-{key}"]["properties"]["criteria"]["allOf"][0]["dimensions"]
        assert dims == [{"name": "queue", "operator": "Include", "values": ["*"]}]
    dims = by_name["p-webhook-rejected"]["properties"]["criteria"]["allOf"][0]["dimensions"]
    assert dims == [{"name": "source", "operator": "Include", "values": ["*"]}]


def test_thresholds_are_parameters():
    params = m.parse_bicep(m.MAIN_BICEP)["parameters"]
    for name in (
        "failedProcessorThreshold",
        "ingestServerErrorThreshold",
        "queueDepthThreshold",
        "queueOldestAgeSecondsThreshold",
        "webhookRejectedThreshold",
        "backfillOldestAgeSecondsThreshold",
    ):
        assert params[name]["type"] == "int"
    alerts = m.module_params("alerts", queueDepthThreshold=77)
    assert alerts["queueDepthThreshold"] == 77


def test_action_group_is_global_with_email_receivers():
    tree = m.parse_bicep(m.ALERTS_BICEP)
    group = m.resources(tree)["actionGroup"]
    assert group["type"] == "Microsoft.Insights/actionGroups"
    ev = m.Evaluator(
        tree, m.ALERTS_BICEP, {"namePrefix": "p", "alertEmails": ["a@example.invalid", "b@example.invalid"]}
    )
    body = ev.eval(group["config"])
    assert body["location"] == "global"
    assert [r["emailAddress"] for r in body["properties"]["emailReceivers"]] == [
        "a@example.invalid",
        "b@example.invalid",
    ]
    assert len(body["properties"]["groupShortName"]) <= 12
