"""Discovering an app's functions from ``FunctionApp.get_functions()`` and resolving their bindings.

Nothing here knows the app's function names: each function is classified by its trigger binding, and
``%NAME%`` binding expressions are resolved from the environment mapping passed in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from devhost import ncrontab
from devhost.invoke import Invoker, make_invoker
from devhost.routing import RouteTemplate, compile_route

_EXPRESSION = re.compile(r"%([^%]+)%")
ALL_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class BindingError(ValueError):
    pass


def resolve(text: str, env: Mapping[str, str], *, where: str) -> str:
    """Replace every ``%NAME%`` in ``text`` with ``env[NAME]``, as the host does at startup."""

    def substitute(match: re.Match[str]) -> str:
        name = match[1]
        if name not in env or env[name] == "":
            raise BindingError(f"{where}: '%{name}%' does not resolve to a value (set {name})")
        return env[name]

    return _EXPRESSION.sub(substitute, text)


@dataclass(frozen=True)
class HttpFunction:
    name: str
    route: RouteTemplate
    methods: frozenset[str]
    auth_level: str
    invoker: Invoker


@dataclass(frozen=True)
class QueueFunction:
    name: str
    queue_name: str
    connection: str
    invoker: Invoker


@dataclass(frozen=True)
class TimerFunction:
    name: str
    schedule: ncrontab.CronSchedule
    run_on_startup: bool
    invoker: Invoker


@dataclass
class AppFunctions:
    """What a host serves. Lists, so a caller may narrow them before ``LocalHost.start()``."""

    http: list[HttpFunction]
    queues: list[QueueFunction]
    timers: list[TimerFunction]


def _enum_text(value: Any) -> str:
    return str(getattr(value, "value", value))


def indexed_functions(app: Any) -> list[Any]:
    """``app.get_functions()``, callable any number of times.

    azure-functions records the names it indexed in ``app.functions_bindings`` and raises "does not have
    a unique function name" when ``get_functions()`` runs twice on one app (the worker indexes once).
    Tests build several hosts over one app, so indexing here starts from a clean record and leaves the
    app's record as pristine as it found it on first use (None): a later ``get_functions()`` elsewhere
    still works. A real duplicate name still fails, on the fresh indexing.
    """
    if not hasattr(app, "functions_bindings"):
        return app.get_functions()
    app.functions_bindings = None
    try:
        return app.get_functions()
    finally:
        app.functions_bindings = None


def discover(app: Any, env: Mapping[str, str], only: Collection[str] | None = None) -> AppFunctions:
    """Every function of ``app`` (or those named in ``only``, like ``func start --functions``)."""
    http, queues, timers = [], [], []
    functions = indexed_functions(app)
    if only is not None:
        unknown = set(only) - {f.get_function_name() for f in functions}
        if unknown:
            raise BindingError(f"no function named {sorted(unknown)} in the app")
    for function in functions:
        name = function.get_function_name()
        if only is not None and name not in only:
            continue
        bindings = json.loads(function.get_function_json())["bindings"]
        triggers = [b for b in bindings if str(b.get("type", "")).endswith("Trigger")]
        if len(triggers) != 1:
            raise BindingError(f"function {name!r}: expected one trigger, found {len(triggers)}")
        trigger = triggers[0]
        others = [
            b for b in bindings if b is not trigger and not (b.get("type") == "http" and b.get("name") == "$return")
        ]
        if others:
            kinds = sorted({str(b.get("type")) for b in others})
            raise BindingError(f"function {name!r}: bindings {kinds} are not supported by the local host")
        invoker = make_invoker(name, function.get_user_function(), trigger["name"])
        kind = trigger["type"]
        where = f"function {name!r}"
        if kind == "httpTrigger":
            methods = trigger.get("methods")
            route = resolve(trigger.get("route") or name, env, where=where)
            http.append(
                HttpFunction(
                    name,
                    compile_route(route),
                    frozenset(_enum_text(m).upper() for m in methods) if methods else ALL_METHODS,
                    _enum_text(trigger.get("authLevel") or "function").lower(),
                    invoker,
                )
            )
        elif kind == "queueTrigger":
            queues.append(
                QueueFunction(
                    name,
                    resolve(trigger["queueName"], env, where=where),
                    trigger.get("connection") or "AzureWebJobsStorage",
                    invoker,
                )
            )
        elif kind == "timerTrigger":
            expression = resolve(trigger["schedule"], env, where=where)
            try:
                schedule = ncrontab.parse(expression)
            except ncrontab.CronError as error:
                raise BindingError(f"{where}: {error}") from error
            timers.append(TimerFunction(name, schedule, bool(trigger.get("runOnStartup")), invoker))
        else:
            raise BindingError(f"function {name!r}: trigger {kind!r} is not supported by the local host")
    return AppFunctions(http, queues, timers)
