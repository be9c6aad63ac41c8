from datetime import datetime
from pathlib import Path

import azure.functions as func

from devhost.banner import BannerFacts, banner
from devhost.bindings import discover
from tests.support.fixture_app import app


def ingest_app():
    a = func.FunctionApp()

    @a.route(route="customers/events", methods=["POST"])
    def ingest(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("")

    @a.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def health(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("")

    return a


def facts(functions, **kw):
    base = dict(
        functions=functions,
        http_base="http://localhost:7071/api",
        settings_file="local.settings.json",
        processes=["Storage: Azurite started"],
        sample_event=Path("samples/event.json"),
        emulator_url="http://127.0.0.1:7075",
        now=datetime(2026, 1, 1, 10, 2, 0),
    )
    return BannerFacts(**{**base, **kw})


def test_banner_lists_functions_keys_note_and_try_it():
    text = banner(facts(discover(ingest_app(), {})))
    assert "ingest: [POST] http://localhost:7071/api/customers/events  (authLevel function)" in text
    assert "health: [GET] http://localhost:7071/api/health  (authLevel anonymous)" in text
    assert "NOT enforced locally" in text
    assert (
        "curl -i -X POST -H 'Content-Type: application/json' --data @samples/event.json "
        "http://localhost:7071/api/customers/events"
    ) in text
    assert "curl http://127.0.0.1:7075/_emulator/customers" in text


def test_banner_falls_back_to_an_inline_event_and_shows_queues_and_timers():
    text = banner(
        facts(
            discover(app, {"WORK_QUEUE": "w", "TICK_SCHEDULE": "0 */5 * * * *"}), sample_event=None, emulator_url=None
        )
    )
    assert '"eventId":"demo-0001"' in text
    assert "work: queueTrigger on 'w'" in text
    assert "tick: timerTrigger '0 */5 * * * *' (UTC, next 2026-01-01T10:05:00Z)" in text
    assert "_emulator" not in text
