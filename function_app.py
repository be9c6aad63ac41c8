"""Azure Functions entry points (Python v2 programming model). Deliberately thin: each trigger
adapts the Functions objects, calls one function of ``shared``, and turns the result into a response.

- ``POST /api/customers/events`` (function key): validate marketing events, queue the valid ones.
- ``POST /api/webhooks/{source}`` (function key + the source's signature): a marketing system's own
  webhook (Shopify, Klaviyo, HubSpot, Standard Webhooks, or a mapping file), translated and queued.
- queue ``%EVENTS_QUEUE_NAME%``: create or update the customer in Commerce.
- queue ``%EVENTS_QUEUE_NAME%-poison``: keep what the host gave up on as a dead letter.
- queue ``%EVENTS_QUEUE_NAME%-backfill`` (+ ``-poison``): the initial load queued by ``tools.backfill``,
  the same processor with its own lower concurrency (``shared.usecases.backfill``).
- timer ``%QUEUE_MONITOR_SCHEDULE%``: queue depth / age metrics, dead-letter retention, and dead letters
  for messages no trigger can read (not base64), which the host leaves in the poison queues.
- ``GET /api/health`` (anonymous): version and whether the settings are complete.

The handlers are plain ``def``: the Commerce client blocks, so they run on the worker's thread pool
(PYTHON_THREADPOOL_THREAD_COUNT), not on its event loop.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable

import azure.functions as func

from shared import __version__
from shared.core import logcontext
from shared.core import telemetry_names as names
from shared.core.failures import safe_traceback
from shared.core.settings import SettingsError
from shared.runtime import Runtime, build_runtime, utcnow
from shared.usecases.backfill import collect_backfill_poison, process_backfill_message
from shared.usecases.ingest import HttpResult, handle_ingest, problem
from shared.usecases.processor import collect_poison, process_message
from shared.usecases.queue_monitor import report
from shared.usecases.webhooks import handle_webhook

log = logging.getLogger("customer_sync")
logcontext.install()
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

_runtime: Runtime | None = None
_runtime_lock = threading.Lock()
_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def runtime() -> Runtime:
    """Built on first use, once per worker process, from the app settings."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                _runtime = build_runtime(os.environ)
    return _runtime


def _start() -> None:
    """Build the runtime when the worker loads the app, so incomplete settings are reported at
    start-up, naming every missing setting. The app still loads: health answers 503 with the names,
    ingest answers 503, and the queue trigger fails (messages wait in the queue) until they are fixed."""
    try:
        runtime()
    except SettingsError as error:
        log.error("settings incomplete, the integration cannot run until they are set: %s", "; ".join(error.problems))
    except Exception as error:  # noqa: BLE001 - reported, and retried on first use
        log.error("runtime could not start: %s", safe_traceback(error))


def use_runtime(replacement: Runtime | None) -> None:
    """Swap the process's runtime (tests, benchmarks and the local host build their own)."""
    global _runtime
    with _runtime_lock:
        _runtime = replacement


def _correlation_id(req: func.HttpRequest) -> str:
    given = req.headers.get("x-correlation-id", "")
    return given if _CORRELATION_ID.fullmatch(given) else str(uuid.uuid4())


def _respond(result: HttpResult) -> func.HttpResponse:
    headers = {**result.headers, "x-correlation-id": result.body.get("correlationId", "")}
    return func.HttpResponse(
        result.json(), status_code=result.status, headers=headers, mimetype=result.content_type, charset="utf-8"
    )


@app.function_name(names.FUNCTION_INGEST)
@app.route(route="customers/events", methods=["POST"])
def ingest_customer_events(req: func.HttpRequest) -> func.HttpResponse:
    correlation_id = _correlation_id(req)
    with logcontext.log_context(correlation_id=correlation_id):
        return _ingest(req, correlation_id)


def _ingest(req: func.HttpRequest, correlation_id: str) -> func.HttpResponse:
    return _answer(
        "ingest",
        "request",
        correlation_id,
        lambda rt: handle_ingest(req.get_body(), req.headers.get("content-type"), correlation_id, rt.ingest_deps),
    )


@app.function_name(names.FUNCTION_WEBHOOK)
@app.route(route="webhooks/{source}", methods=["POST"])
def receive_webhook(req: func.HttpRequest) -> func.HttpResponse:
    correlation_id = _correlation_id(req)
    with logcontext.log_context(correlation_id=correlation_id):
        return _answer(
            "webhook",
            "delivery",
            correlation_id,
            lambda rt: handle_webhook(
                req.route_params.get("source", ""),
                req.method,
                req.url,
                dict(req.headers.items()),
                req.get_body(),
                correlation_id,
                rt.webhook_deps,
            ),
        )


def _answer(what: str, noun: str, correlation_id: str, handle: Callable[[Runtime], HttpResult]) -> func.HttpResponse:
    """An HTTP trigger's answer: ``handle``'s, or 503 while the settings are incomplete, or 500 for
    anything unforeseen, logged by its frames only (a message can quote the request's personal data)."""
    try:
        return _respond(handle(runtime()))
    except SettingsError as error:
        log.error("%s refused: settings incomplete: %s", what, ", ".join(error.names))
        return _respond(
            problem(
                503,
                "Service not configured",
                "The integration's settings are incomplete; an operator must fix them.",
                correlation_id,
            )
        )
    except Exception as error:  # noqa: BLE001 - the outermost handler: log it, never show internals
        log.error("%s failed unexpectedly: %s", what, safe_traceback(error))
        return _respond(
            problem(
                500,
                "Internal error",
                f"The {noun} could not be processed. Quote the correlation id.",
                correlation_id,
            )
        )


@app.function_name(names.FUNCTION_HEALTH)
@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    body = {"status": "ok", "version": __version__, "settingsComplete": True, "problems": []}
    try:
        runtime()
    except SettingsError as error:
        body.update(status="degraded", settingsComplete=False, problems=error.names)
    except Exception as error:  # noqa: BLE001 - health must answer, whatever is broken
        log.error("health: runtime could not start: %s", safe_traceback(error))
        body.update(status="degraded", settingsComplete=True, problems=[type(error).__name__])
    return func.HttpResponse(
        json.dumps(body), status_code=200 if body["status"] == "ok" else 503, mimetype="application/json"
    )


@app.function_name(names.FUNCTION_PROCESS)
@app.queue_trigger(arg_name="msg", queue_name="%EVENTS_QUEUE_NAME%", connection="AzureWebJobsStorage")
def process_customer_event(msg: func.QueueMessage) -> None:
    # Retries are new delayed messages sent by the processor; a RetryLater raised here (the queue itself
    # could not be written) is the signal for the host to release this message for another attempt.
    process_message(msg.get_body(), msg.dequeue_count or 1, runtime().processor_deps)


@app.function_name(names.FUNCTION_POISON)
@app.queue_trigger(arg_name="msg", queue_name="%EVENTS_QUEUE_NAME%-poison", connection="AzureWebJobsStorage")
def collect_poison_events(msg: func.QueueMessage) -> None:
    collect_poison(msg.get_body(), msg.dequeue_count or 1, runtime().processor_deps)


@app.function_name(names.FUNCTION_BACKFILL)
@app.queue_trigger(arg_name="msg", queue_name="%EVENTS_QUEUE_NAME%-backfill", connection="AzureWebJobsStorage")
def process_backfill_event(msg: func.QueueMessage) -> None:
    # A pack of events (or one retried event): each goes through process_message, at most
    # BACKFILL_MAX_CONCURRENCY messages at once per process, so live events never wait behind a load.
    process_backfill_message(msg.get_body(), msg.dequeue_count or 1, runtime().backfill_deps)


@app.function_name(names.FUNCTION_BACKFILL_POISON)
@app.queue_trigger(arg_name="msg", queue_name="%EVENTS_QUEUE_NAME%-backfill-poison", connection="AzureWebJobsStorage")
def collect_backfill_poison_events(msg: func.QueueMessage) -> None:
    collect_backfill_poison(msg.get_body(), msg.dequeue_count or 1, runtime().processor_deps)


@app.function_name(names.FUNCTION_QUEUE_MONITOR)
@app.timer_trigger(arg_name="timer", schedule="%QUEUE_MONITOR_SCHEDULE%", run_on_startup=False)
def report_queue_metrics(timer: func.TimerRequest) -> None:
    rt = runtime()
    report(
        rt.monitored_queues(),
        rt.deadletters,
        rt.settings.deadletter_retention_days,
        rt.telemetry,
        utcnow(),
        stranded=rt.stranded_queues(),
    )
    try:  # webhook delivery records older than yesterday: a redelivery lookup never reads them
        deps = rt.webhook_deps
        deps.deliveries.purge(deps.registry.names(), utcnow())
    except Exception as error:  # noqa: BLE001 - the next run tries again
        log.warning("webhook delivery records not purged: %s", type(error).__name__)


_start()
