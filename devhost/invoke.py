"""Calling a user function the way the Python worker does: the trigger argument by its binding name,
an optional ``context`` argument, plain ``def`` functions within a bounded number of threads and
``async def`` functions on one shared event loop."""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class InvocationContext:
    """The parts of ``azure.functions.Context`` an app may read."""

    function_name: str
    invocation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_directory: str = ""
    trace_context: Any = None
    retry_context: Any = None
    thread_local_storage: Any = field(default_factory=threading.local)


def default_thread_count(env: Mapping[str, str], cpu_count: int | None = None) -> int:
    """PYTHON_THREADPOOL_THREAD_COUNT, else the worker's default min(32, cores + 4)."""
    configured = (env.get("PYTHON_THREADPOOL_THREAD_COUNT") or "").strip()
    if configured:
        return max(int(configured), 1)
    return min(32, (cpu_count or os.cpu_count() or 1) + 4)


class FunctionExecutor:
    """Where user code runs, as in the Python worker: ``def`` functions hold one of ``sync_threads``
    slots (the worker's thread pool, which caps concurrency below batchSize on small instances);
    ``async def`` functions run on one shared event loop thread."""

    def __init__(self, sync_threads: int = 32) -> None:
        self.sync_threads = sync_threads
        self._slots = threading.BoundedSemaphore(sync_threads)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def run_sync(self, function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        with self._slots:
            return function(**kwargs)

    def run_async(self, coro) -> Any:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="devhost-asyncio", daemon=True).start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def stop(self) -> None:
        with self._lock:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._loop = None


@dataclass(frozen=True)
class Invoker:
    function_name: str
    user_function: Callable[..., Any]
    trigger_arg: str
    wants_context: bool
    is_async: bool
    trigger_annotation: Any = None

    def __call__(self, trigger_value: Any, executor: FunctionExecutor) -> Any:
        kwargs = {self.trigger_arg: trigger_value}
        if self.wants_context:
            kwargs["context"] = InvocationContext(self.function_name)
        if self.is_async:
            return executor.run_async(self.user_function(**kwargs))
        return executor.run_sync(self.user_function, kwargs)


def make_invoker(function_name: str, user_function: Callable[..., Any], trigger_arg: str) -> Invoker:
    target = inspect.unwrap(user_function)
    signature = inspect.signature(target)
    params = signature.parameters
    if trigger_arg not in params:
        raise ValueError(f"function {function_name!r}: no parameter named {trigger_arg!r} for its trigger")
    extra = [
        n
        for n, p in params.items()
        if n not in (trigger_arg, "context")
        and p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    ]
    if extra:
        raise ValueError(f"function {function_name!r}: parameters {extra} have no binding the local host supports")
    annotation = params[trigger_arg].annotation
    return Invoker(
        function_name,
        user_function,
        trigger_arg,
        "context" in params,
        inspect.iscoroutinefunction(target),
        None if annotation is inspect.Parameter.empty else annotation,
    )


def describe_exception(error: BaseException) -> str:
    """Type and innermost frames of an exception, without its message (it may hold PII)."""
    frames = traceback.extract_tb(error.__traceback__)[-3:]
    where = " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} in {f.name}" for f in reversed(frames))
    return f"{type(error).__module__}.{type(error).__qualname__} at {where or '?'}"
