"""``LocalHost``: the real ``function_app.app`` behind HTTP, queue and timer triggers, in this process.

Used by ``python -m devhost`` and directly by end-to-end tests::

    host = LocalHost(app, host_json=Path("host.json"), env=os.environ, storage_connection=conn)
    host.start(); ...; host.wait_idle(30); host.stop()

``env`` resolves ``%NAME%`` binding expressions and named connections; the app itself reads its
settings wherever it reads them (``os.environ`` in production), which this class does not touch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from devhost.bindings import AppFunctions, discover
from devhost.host_config import HostOptions, host_options, load_host_json
from devhost.http_server import FunctionsHttpServer
from devhost.invoke import FunctionExecutor, default_thread_count
from devhost.queue_listener import QueueListener
from devhost.storage import connection_for, ensure_queues
from devhost.timer_runner import TimerRunner


class IdleTimeout(TimeoutError):
    pass


class LocalHost:
    def __init__(
        self,
        app: Any,
        *,
        host_json: Mapping[str, Any] | Path | str,
        env: Mapping[str, str],
        http_port: int = 0,
        storage_connection: str,
        http_host: str = "127.0.0.1",
        http: bool = True,
        queues: bool = True,
        timers: bool = True,
        create_queues: bool = True,
        shutdown_grace: float = 3.0,
        functions: Collection[str] | None = None,
    ):
        self.options: HostOptions = host_options(load_host_json(host_json))
        self.env = dict(env)
        self.functions: AppFunctions = discover(app, self.env, functions)
        self.storage_connection = storage_connection
        self._http_address = (http_host, http_port)
        self._enabled = {"http": http, "queues": queues, "timers": timers}
        self._create_queues = create_queues
        self._grace = shutdown_grace
        self._executor = FunctionExecutor(default_thread_count(self.env))
        self._server: FunctionsHttpServer | None = None
        self._server_thread: threading.Thread | None = None
        self.listeners: list[QueueListener] = []
        self.timers: list[TimerRunner] = []
        self._started = False

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> LocalHost:
        if self._started:
            raise RuntimeError("LocalHost already started")
        self._started = True
        try:
            if self._enabled["queues"]:
                self._start_queues()
            if self._enabled["http"]:
                self._server = FunctionsHttpServer(
                    self._http_address, self.functions.http, self.options.route_prefix, self._executor
                )
                self._server_thread = threading.Thread(
                    target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="devhost-http", daemon=True
                )
                self._server_thread.start()
            if self._enabled["timers"]:
                for function in self.functions.timers:
                    runner = TimerRunner(function, self._executor)
                    runner.start()
                    self.timers.append(runner)
        except Exception:
            self.stop()
            raise
        return self

    def _start_queues(self) -> None:
        # The in-flight visibility outlasts functionTimeout, so a running invocation is never redelivered.
        in_flight = self.options.function_timeout + timedelta(minutes=1)
        for function in self.functions.queues:
            connection = connection_for(function.connection, self.env, self.storage_connection)
            if self._create_queues:
                ensure_queues(connection, [function.queue_name])
            listener = QueueListener(function, connection, self.options.queues, in_flight, self._executor)
            listener.start()
            self.listeners.append(listener)

    def stop(self) -> None:
        """Stop serving; running queue invocations get ``shutdown_grace`` seconds. Idempotent."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for listener in self.listeners:  # all stop fetching at once, then each drains
            listener.request_stop()
        for listener in self.listeners:
            listener.stop(self._grace)
        for runner in self.timers:
            runner.stop(self._grace)
        self.listeners, self.timers = [], []
        self._executor.stop()

    def __enter__(self) -> LocalHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what tests and the banner need --------------------------------------------------------
    @property
    def serving_http(self) -> bool:
        return self._server is not None

    @property
    def http_port(self) -> int:
        if not self._server:
            raise RuntimeError("the HTTP server is not running")
        return self._server.server_port

    @property
    def http_url(self) -> str:
        prefix = f"/{self.options.route_prefix}" if self.options.route_prefix else ""
        return f"http://{self._http_address[0]}:{self.http_port}{prefix}"

    @property
    def watched_queues(self) -> list[str]:
        return [listener.function.queue_name for listener in self.listeners]

    def in_flight(self) -> int:
        return sum(listener.in_flight for listener in self.listeners)

    def is_idle(self) -> bool:
        """Every watched queue empty (invisible messages included) and nothing running here."""
        if self.in_flight():
            return False
        if any(listener.approximate_count() for listener in self.listeners):
            return False
        return self.in_flight() == 0

    def wait_idle(self, timeout: float = 30.0, *, interval: float = 0.05) -> None:
        """Return once ``is_idle`` holds twice in a row; raise ``IdleTimeout`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        streak = 0
        while True:
            streak = streak + 1 if self.is_idle() else 0
            if streak >= 2:
                return
            if time.monotonic() >= deadline:
                counts = {li.function.queue_name: li.approximate_count() for li in self.listeners}
                raise IdleTimeout(f"not idle after {timeout}s: queue counts {counts}, in flight {self.in_flight()}")
            time.sleep(interval)
