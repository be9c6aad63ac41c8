"""A full flow at DEBUG with telemetry in in-memory exporters: no personal data anywhere (log records,
telemetry, dead letters, the replay listing), even when Commerce echoes the input in its errors, and every
name an alert rule queries is really emitted."""

from __future__ import annotations

import contextlib
import io
import logging
import urllib.parse

import pytest
import requests
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import function_app
from devhost.bindings import indexed_functions
from shared.adapters.telemetry import Telemetry
from shared.core import telemetry_names as names
from shared.runtime import build_runtime
from tests.support.stack import event

pytestmark = pytest.mark.integration

EMAIL = "Zoë.O'Brien+news@Example.com"
PHONE_INPUT = "(206) 555-0142"
PHONE_E164 = "+12065550142"


FIRST_NAME, LAST_NAME = "Zoë", "O'Brien"


def _json_escaped(text: str) -> str:
    """Every character but letters and digits as ``\\uXXXX`` (an HTML-safe JSON encoder's output)."""
    return "".join(c if c.isascii() and c.isalnum() else f"\\u{ord(c):04x}" for c in text)


def _entities(text: str, named: bool = False) -> str:
    if named:
        return text.replace("@", "&commat;").replace("'", "&apos;").replace("+", "&plus;")
    return "".join(c if c.isascii() and c.isalnum() else f"&#{ord(c)};" for c in text)


def encodings(text: str) -> set[str]:
    """``text`` in every form it could reach a log line or a stored record."""
    forms = {text, text.lower(), text.upper()}
    out = set()
    for form in forms:
        once = {urllib.parse.quote(form), urllib.parse.quote(form, safe=""), urllib.parse.quote_plus(form)}
        out |= {form, *once, *(urllib.parse.quote(x, safe="") for x in once)}  # double-encoded: %2540
        escaped = _json_escaped(form)
        out |= {escaped, escaped.replace("\\", "\\\\"), _entities(form), _entities(form, named=True)}
    return out


def forbidden_strings() -> list[str]:
    out = set()
    for email in (EMAIL, "zoë.o'brien+news@example.com"):
        out |= encodings(email)
    out |= {
        PHONE_INPUT,
        PHONE_E164,
        "2065550142",
        "206 555 0142",
        "206.555.0142",
        "206-555-0142",
        "+1 206 555 0142",
        "+1.206.555.0142",
        "%2B12065550142",
        "%252B12065550142",
        "555-0142",
        "5550142",
    }
    out |= {"o'brien+news", "o%27brien"}
    for name in (FIRST_NAME, LAST_NAME):
        out |= encodings(name)
    return sorted(out)


def _replay_list(*options: str) -> str:
    """``python -m tools.replay list`` against the stack's storage (its settings are in the environment)."""
    from tools import replay

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        assert replay.main(["list", *options], out=out) == 0
    return out.getvalue() + err.getvalue()


class Everything(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is still searched raw
            message = str(record.msg)
        attrs = " ".join(f"{k}={v!r}" for k, v in record.__dict__.items() if k not in ("msg", "args"))
        exc = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        self.texts.append(f"{message} {attrs} {exc}")


@pytest.fixture
def debug_everything():
    handler = Everything()
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old)


@pytest.fixture
def otel_logs():
    """Log records as the OpenTelemetry logging bridge exports them (what Azure Monitor receives)."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    logging.getLogger().addHandler(handler)
    yield exporter
    logging.getLogger().removeHandler(handler)
    provider.shutdown()


def test_full_flow_leaks_no_personal_data_and_emits_every_alerted_name(stack_factory, debug_everything, otel_logs):
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    # Short retry clocks: the authentication failure below is retried, then dead-lettered by age.
    stack = stack_factory(
        settings={"RETRY_MAX_AGE_SECONDS": "2", "RETRY_BASE_DELAY_SECONDS": "1", "RETRY_MAX_DELAY_SECONDS": "1"}
    )
    telemetry = Telemetry(meter=meter)
    runtime = build_runtime(stack.env, host_json=stack.host_json, telemetry=telemetry)
    function_app.use_runtime(runtime)
    stack.runtime = runtime

    person = dict(
        firstName="Zoë",
        lastName="O'Brien",
        phone=PHONE_INPUT,
        isOptedInMarketing=True,
        address={"street": "1 Main St", "city": "Seattle", "state": "WA", "postalCode": "98101", "country": "US"},
    )
    assert stack.post(event(1, email=EMAIL, **person)).status_code == 202  # created
    stack.wait()
    assert (
        stack.post(
            event(2, email=EMAIL, occurred="2026-11-26T11:00:00+00:00", **dict(person, lastName="Brien"))
        ).status_code
        == 202
    )  # updated
    stack.wait()
    # refused at the edge: pydantic and validator paths with the personal data in the input
    bad = stack.post([event(3, email=EMAIL, phone="+1 000"), event(4, email=EMAIL.replace("@", "@@"))])
    assert bad.status_code == 422
    # a webhook refused as not authentic (WebhookRejected, which an alert queries)
    unsigned = requests.post(
        f"{stack.host.http_url}/webhooks/shopify",
        data=b'{"email": "x"}',
        timeout=30,
        headers={"Content-Type": "application/json", "X-Shopify-Topic": "customers/create"},
    )
    assert unsigned.status_code == 401
    # dead-lettered by Commerce, then an authentication failure, then the queue monitor
    # Commerce quotes what it was sent in its errors (echo mode), and refuses the create.
    stack.emulator.configure(required_on_create=["Email", "TaxGroup"], echo_input_in_errors=True)
    assert stack.post(event(5, email="other." + EMAIL, **person)).status_code == 202
    stack.wait()
    [letter] = stack.deadletters()
    assert letter.reason == "commerce_rejected"
    stack.emulator.configure(token="rotated-token")
    assert (
        stack.post(
            event(6, email=EMAIL, occurred="2026-11-26T12:00:00+00:00", **dict(person, firstName="Z"))
        ).status_code
        == 202
    )
    stack.wait(timeout=30)
    monitor = {f.get_function_name(): f for f in indexed_functions(function_app.app)}
    monitor[names.FUNCTION_QUEUE_MONITOR].get_user_function()(None)

    # The stored dead letters (every column but the envelope, which is the event itself, kept for
    # replay) and the operator's listing of them, plain and JSON.
    rows = list(stack.runtime.deadletters.table.list_entities())
    assert len(rows) == 2  # the refused create, and the authentication failure past its maximum age
    stored = "\n".join(repr({k: v for k, v in row.items() if not k.startswith("Envelope")}) for row in rows)
    listing = _replay_list() + _replay_list("--json")
    [refused] = [row for row in rows if row["Reason"] == "commerce_rejected"]
    # What operators need survives: Commerce's error code, status, the member it names.
    assert refused["ErrorResourceId"] == "Microsoft_Dynamics_Commerce_Runtime_RequiredValueNotFound"
    assert refused["Status"] == 400 and "TaxGroup" in refused["Message"] and "Submitted:" in refused["Message"]
    assert "RequiredValueNotFound" in listing and "TaxGroup" in listing

    # 1. no personal data in any log line, attribute, exception, response, dead letter or listing
    places = {
        "log records": "\n".join(debug_everything.texts),
        "ingest response": bad.text,
        "dead-letter table": stored,
        "replay list": listing,
    }
    leaks = {
        place: found
        for place, text in places.items()
        if (found := [s for s in forbidden_strings() if s.lower() in text.lower()])
    }
    assert leaks == {}, f"personal data leaked: {leaks}"
    metrics = reader.get_metrics_data()
    metric_text = repr(metrics)
    assert not [s for s in forbidden_strings() if s.lower() in metric_text.lower()]
    exported = [d.log_record for d in otel_logs.get_finished_logs()]
    exported_text = "\n".join(f"{r.body} {dict(r.attributes or {})}" for r in exported).lower()
    assert exported and not [s for s in forbidden_strings() if s.lower() in exported_text]

    # 2. every telemetry name an alert rule queries was emitted, through the OpenTelemetry exporters
    emitted_events = {(r.attributes or {}).get("microsoft.custom_event.name") for r in exported} - {None}
    emitted_metrics = {m.name for rm in metrics.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    functions = set(monitor)
    from tests.support.bicep_model import telemetry_names_used_by_alerts

    alerted = telemetry_names_used_by_alerts()
    assert alerted, "the alert rules reference no telemetry names"
    missing = {n for n in alerted if n not in emitted_events | emitted_metrics | functions}
    assert missing == set(), f"alerts query names the app never emitted: {missing}"
    from tests.support.bicep_model import telemetry_keys_used_by_alerts

    emitted_outcomes = {
        (r.attributes or {}).get("outcome")
        for r in exported
        if (r.attributes or {}).get("microsoft.custom_event.name") == names.EVENT_SYNC_OUTCOME
    }
    queried_outcomes = {
        getattr(names.Outcome, key.removeprefix("OUTCOME_")).value
        for key in telemetry_keys_used_by_alerts()
        if key.startswith("OUTCOME_")
    }
    assert queried_outcomes and queried_outcomes <= emitted_outcomes, (queried_outcomes, emitted_outcomes)
    assert names.EVENT_COMMERCE_AUTH_FAILURE in emitted_events
    assert names.EVENT_DEAD_LETTERED in emitted_events


def test_webhook_routes_leak_no_personal_data_and_no_secret(stack_factory, debug_everything, otel_logs):
    """Every webhook path with the personal data in the sender's own payload: created, redelivered,
    refused for its data, refused as not authentic, an email change, a consent topic completed from the
    sender-id map, an erasure request, Klaviyo and HubSpot. No email, phone, name or secret anywhere."""
    import json
    import uuid
    from pathlib import Path

    from tests.support import webhook_signing as sign

    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    suffix = uuid.uuid4().hex[:8]
    stack = stack_factory(
        settings={"WEBHOOK_DELIVERY_TABLE_NAME": f"whd{suffix}", "WEBHOOK_IDENTITY_TABLE_NAME": f"whi{suffix}"}
    )
    runtime = build_runtime(stack.env, host_json=stack.host_json, telemetry=Telemetry(meter=meter))
    function_app.use_runtime(runtime)
    stack.runtime = runtime
    secrets = [s for values in json.loads(stack.env["WEBHOOK_SECRETS"]).values() for s in values]
    url = f"{stack.host.http_url}/webhooks"
    answers: list[requests.Response] = []

    def shopify(body: dict, topic: str, event_id: str, secret: str = "local-dev-shopify-secret"):
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        answer = requests.post(
            f"{url}/shopify", data=raw, timeout=30, headers=sign.shopify(raw, secret, topic=topic, event_id=event_id)
        )
        answers.append(answer)
        return answer

    customer = {
        "id": 5501,
        "email": EMAIL,
        "first_name": FIRST_NAME,
        "last_name": LAST_NAME,
        "phone": PHONE_INPUT,
        "updated_at": "2026-11-26T10:00:00Z",
        "created_at": "2026-11-26T09:00:00Z",
        "default_address": {
            "address1": "1 Main St",
            "city": "Seattle",
            "province_code": "WA",
            "country_code": "US",
            "zip": "98101",
            "name": f"{FIRST_NAME} {LAST_NAME}",
        },
    }
    assert shopify(customer, "customers/create", "p-1").status_code == 200
    assert shopify(customer, "customers/create", "p-1").json()["status"] == "duplicate"
    assert shopify(
        {**customer, "phone": "+1 000", "updated_at": "2026-11-26T10:01:00Z"}, "customers/update", "p-2"
    ).json()["rejected"] == ["shopify:p-2"]
    assert shopify(customer, "customers/update", "p-3", secret="not-the-secret").status_code == 401
    moved = {**customer, "email": "new." + EMAIL, "updated_at": "2026-11-26T10:05:00Z"}
    assert shopify(moved, "customers/update", "p-4").status_code == 200
    consent = {
        "customer_id": 5501,
        "email_address": None,
        "email_marketing_consent": {"state": "subscribed", "consent_updated_at": "2026-11-26T10:06:00Z"},
    }
    assert shopify(consent, "customers/email_marketing_consent_update", "p-5").status_code == 200
    stack.wait()
    redact = {"shop_id": 1, "customer": {"id": 5501, "email": "new." + EMAIL, "phone": PHONE_INPUT}}
    assert shopify(redact, "customers/redact", "p-6").json()["erasures"] == 1
    klaviyo = json.loads(
        (Path(__file__).resolve().parents[2] / "samples/webhooks/klaviyo/email-marketing-subscription.json").read_text()
    )
    klaviyo["data"][0]["payload"]["included"][0]["attributes"].update(
        email="k." + EMAIL, phone_number=PHONE_E164, first_name=FIRST_NAME, last_name=LAST_NAME
    )
    raw = json.dumps(klaviyo, ensure_ascii=False).encode("utf-8")
    answers.append(
        requests.post(f"{url}/klaviyo", data=raw, timeout=30, headers=sign.klaviyo(raw, "local-dev-klaviyo-secret"))
    )
    hubspot = {
        "hs_object_id": "77",
        "email": "h." + EMAIL,
        "firstname": FIRST_NAME,
        "lastname": LAST_NAME,
        "phone": PHONE_INPUT,
        "lastmodifieddate": "1795687200000",
    }
    raw = json.dumps(hubspot, ensure_ascii=False).encode("utf-8")
    answers.append(
        requests.post(
            f"{url}/hubspot",
            data=raw,
            timeout=30,
            headers=sign.hubspot(raw, "local-dev-hubspot-secret", uri=f"{url}/hubspot"),
        )
    )
    answers.append(requests.post(f"{url}/marketo", data=raw, timeout=30))  # unknown source
    assert [a.status_code for a in answers[-3:]] == [200, 200, 401]
    stack.wait()
    # The Shopify customer (moved to its new email), Klaviyo's and HubSpot's.
    assert len(stack.emulator.customers()) == 3

    rows = list(stack.runtime.deadletters.table.list_entities())
    assert {row["Reason"] for row in rows} == {"webhook_rejected", "erasure_requested"}
    stored = "\n".join(repr({k: v for k, v in row.items() if not k.startswith("Envelope")}) for row in rows)
    places = {
        "log records": "\n".join(debug_everything.texts),
        "answers": "\n".join(a.text for a in answers),
        "dead-letter table": stored,
        "metrics": repr(reader.get_metrics_data()),
        "exported logs": "\n".join(
            f"{r.log_record.body} {dict(r.log_record.attributes or {})}" for r in otel_logs.get_finished_logs()
        ),
    }
    leaks = {
        place: found
        for place, text in places.items()
        if (found := [s for s in forbidden_strings() + secrets if s.lower() in text.lower()])
    }
    assert leaks == {}, f"personal data or a secret leaked: {leaks}"
    exported = {
        (r.log_record.attributes or {}).get("microsoft.custom_event.name") for r in otel_logs.get_finished_logs()
    }
    assert {names.EVENT_WEBHOOK_REJECTED, names.EVENT_DEAD_LETTERED} <= exported
