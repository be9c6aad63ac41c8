import azure.functions as func
import pytest

from devhost.bindings import BindingError, discover, resolve
from tests.support.fixture_app import app

ENV = {"WORK_QUEUE": "orders", "TICK_SCHEDULE": "0 */5 * * * *"}


def test_resolve_anywhere_in_the_string():
    assert resolve("%A%-poison", {"A": "q"}, where="t") == "q-poison"
    assert resolve("pre-%A%-%B%", {"A": "1", "B": "2"}, where="t") == "pre-1-2"
    with pytest.raises(BindingError, match="MISSING"):
        resolve("%MISSING%", {}, where="t")


def test_discovers_every_trigger_from_the_app():
    found = discover(app, ENV)
    assert {f.name: (sorted(f.methods), f.route.text, f.auth_level) for f in found.http} == {
        "echo": (["GET", "POST"], "echo/{name}", "function"),
        "special_item": (["GET"], "items/special", "anonymous"),
        "item": (["DELETE", "GET"], "items/{id:int}", "function"),
        "boom": (["POST"], "boom", "function"),
        "async_hello": (["GET"], "async-hello", "function"),
    }
    assert {q.name: q.queue_name for q in found.queues} == {"work": "orders", "collect_poison": "orders-poison"}
    assert all(q.connection == "AzureWebJobsStorage" for q in found.queues)
    (timer,) = found.timers
    assert timer.schedule.expression == "0 */5 * * * *"
    assert [f.invoker.is_async for f in found.http if f.name == "async_hello"] == [True]


def test_only_selected_functions():
    found = discover(app, {"WORK_QUEUE": "orders"}, only=["work"])  # TICK_SCHEDULE not needed then
    assert [q.name for q in found.queues] == ["work"] and not found.http and not found.timers
    with pytest.raises(BindingError, match="nope"):
        discover(app, ENV, only=["nope"])


def test_unresolved_setting_fails_at_startup():
    with pytest.raises(BindingError, match="WORK_QUEUE"):
        discover(app, {"TICK_SCHEDULE": "0 */5 * * * *"})


def test_output_bindings_are_refused_not_ignored():
    other = func.FunctionApp()

    @other.route(route="x", methods=["POST"])
    @other.queue_output(arg_name="out", queue_name="q", connection="AzureWebJobsStorage")
    def with_output(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
        return func.HttpResponse("")

    with pytest.raises(BindingError, match="queue"):
        discover(other, {})


def test_indexing_twice_and_leaving_the_app_indexable():
    discover(app, ENV)
    discover(app, ENV)
    assert {f.get_function_name() for f in app.get_functions()} >= {"echo", "work", "tick"}
    app.functions_bindings = None  # what get_functions() recorded, so later tests start clean


def test_real_duplicate_names_still_fail():
    dup = func.FunctionApp()

    @dup.function_name("same")
    @dup.route(route="a")
    def a(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("")

    @dup.function_name("same")
    @dup.route(route="b")
    def b(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("")

    with pytest.raises(ValueError, match="unique"):
        discover(dup, {})
