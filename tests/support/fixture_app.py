"""A small FunctionApp exercising what the local host must reproduce; it records what it was given."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@dataclass
class Recorder:
    lock: threading.Lock = field(default_factory=threading.Lock)
    work: list[dict] = field(default_factory=list)
    poison: list[dict] = field(default_factory=list)
    ticks: list[dict] = field(default_factory=list)
    running: int = 0
    max_running: int = 0

    def reset(self) -> None:
        with self.lock:
            self.work.clear()
            self.poison.clear()
            self.ticks.clear()
            self.running = self.max_running = 0


RECORDER = Recorder()


@app.route(route="echo/{name}", methods=["GET", "POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    payload = {
        "method": req.method,
        "url": req.url,
        "route": dict(req.route_params),
        "params": dict(req.params),
        "x_test": req.headers.get("x-test"),
        "body": req.get_body().decode("utf-8"),
    }
    return func.HttpResponse(
        json.dumps(payload),
        status_code=int(req.params.get("status", "200")),
        headers={"X-Echo": "yes"},
        mimetype="application/json",
    )


@app.route(route="items/special", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def special_item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("special", mimetype="text/plain", charset="utf-8")


@app.route(route="items/{id:int}", methods=["GET", "DELETE"])
def item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"item {req.route_params['id']}")


@app.route(route="boom", methods=["POST"])
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("secret@example.com must not reach the log")


@app.route(route="async-hello", methods=["GET"])
async def async_hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("hello from async")


@app.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%", connection="AzureWebJobsStorage")
def work(msg: func.QueueMessage) -> None:
    body = msg.get_body().decode("utf-8")
    with RECORDER.lock:
        RECORDER.running += 1
        RECORDER.max_running = max(RECORDER.max_running, RECORDER.running)
        RECORDER.work.append(
            {
                "id": msg.id,
                "body": body,
                "dequeue_count": msg.dequeue_count,
                "at": time.monotonic(),
                "insertion_time": msg.insertion_time,
            }
        )
    try:
        if body.startswith("hold:"):  # simulated work, so invocations overlap
            time.sleep(float(body.split(":", 1)[1]))
        if body.startswith("fail"):
            raise ValueError("this body always fails")
    finally:
        with RECORDER.lock:
            RECORDER.running -= 1


@app.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%-poison", connection="AzureWebJobsStorage")
def collect_poison(msg: str) -> None:
    with RECORDER.lock:
        RECORDER.poison.append({"body": msg})


@app.timer_trigger(schedule="%TICK_SCHEDULE%", arg_name="timer", run_on_startup=False)
def tick(timer: func.TimerRequest) -> None:
    with RECORDER.lock:
        RECORDER.ticks.append({"past_due": timer.past_due, "at": time.monotonic()})
