import pytest

from devhost.routing import compile_route, match_route


def test_literal_and_parameter():
    t = compile_route("customers/{id}")
    assert match_route(t, "/customers/42") == {"id": "42"}
    assert match_route(t, "/CUSTOMERS/42/") == {"id": "42"}
    assert match_route(t, "/customers") is None
    assert match_route(t, "/customers/42/extra") is None


def test_constraint_optional_and_catch_all():
    assert match_route(compile_route("items/{id:int}"), "/items/x") is None
    assert match_route(compile_route("items/{id:int}"), "/items/7") == {"id": "7"}
    optional = compile_route("items/{id?}")
    assert match_route(optional, "/items") == {}
    assert match_route(optional, "/items/3") == {"id": "3"}
    assert match_route(compile_route("files/{*path}"), "/files/a/b%20c") == {"path": "a/b c"}


def test_specificity_prefers_literals():
    assert compile_route("items/special").specificity < compile_route("items/{id}").specificity


@pytest.mark.parametrize("bad", ["a/{*rest}/b", "a/x{id}"])
def test_unsupported_templates(bad):
    with pytest.raises(ValueError):
        compile_route(bad)
