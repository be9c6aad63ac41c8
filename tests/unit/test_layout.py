"""The test tree's import rules. A test module takes what it shares with other test modules from
tests.support, and its fixtures from conftest.py the way pytest hands them out: never by importing
another test module or a conftest, whose import would run that module's own setup and tie one test's
helpers to another's. Nothing outside tests/ imports tests: the bench measures the product, and the
deployed app ships without tests/."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from tests.support.repo import ROOT

TESTS = ROOT / "tests"
OUTSIDE_TESTS = ("shared", "bench", "tools", "devhost", "commerce_emulator", "function_app.py")


def python_files(*roots: str) -> list[Path]:
    paths = []
    for root in roots:
        path = ROOT / root
        paths.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return paths


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_repository_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module the import statements of ``source`` (the text of ``module``) name, anywhere in it,
    relative ones resolved; ``from package import name`` also names ``package.name`` when that is a
    module of this repository."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                parts = package[: len(package) - node.level + 1] + ([node.module] if node.module else [])
                base = ".".join(parts)
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if is_repository_module(f"{base}.{a.name}"))
    return found


@cache
def imports_of(path: Path) -> frozenset[str]:
    source = path.read_text(encoding="utf-8")
    return frozenset(imported_modules(source, module_name(path), path.name == "__init__.py"))


def is_test_module_or_conftest(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return last.startswith("test_") or last == "conftest"


def is_tests(name: str) -> bool:
    return name == "tests" or name.startswith("tests.")


def test_the_scan_reads_the_trees_it_guards():
    inside, outside = python_files("tests"), python_files(*OUTSIDE_TESTS)
    assert inside and outside
    assert {TESTS / "unit" / "test_processor.py", TESTS / "integration" / "conftest.py"} <= set(inside)
    assert {ROOT / "bench" / "cost.py", ROOT / "bench" / "pipeline.py", ROOT / "shared" / "runtime.py"} <= set(outside)
    assert "shared.core.ledger_rules" in imports_of(ROOT / "shared" / "adapters" / "memory_ledger.py")


@pytest.mark.parametrize(
    "source, module, names",
    [
        ("from tests.unit.test_ledger import event", "tests.unit.test_x", {"tests.unit.test_ledger"}),
        ("from tests.unit import test_ledger", "tests.unit.test_x", {"tests.unit.test_ledger"}),
        ("import tests.integration.conftest as c", "tests.integration.test_x", {"tests.integration.conftest"}),
        ("from .conftest import make_settings", "tests.commerce.test_x", {"tests.commerce.conftest"}),
        ("from . import test_auth", "tests.commerce.test_x", {"tests.commerce.test_auth"}),
        ("from ..unit.test_ledger import event", "tests.integration.test_x", {"tests.unit.test_ledger"}),
        ("def f():\n    from tests.unit.test_ingest import ingest", "tests.unit.test_x", {"tests.unit.test_ingest"}),
    ],
    ids=["from-module", "from-package", "import", "relative-conftest", "relative-package", "parent", "in-function"],
)
def test_imports_of_test_modules_and_conftests_are_recognised(source, module, names):
    found = imported_modules(source, module)
    assert names <= {n for n in found if is_test_module_or_conftest(n)}


def test_a_function_named_test_something_is_not_a_test_module():
    found = imported_modules("from tests.support.stack import test_env", "tests.integration.test_x")
    assert not [n for n in found if is_test_module_or_conftest(n)]


def test_no_module_under_tests_imports_a_test_module_or_a_conftest():
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in imports_of(path) if is_test_module_or_conftest(n))
        for path in python_files("tests")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_nothing_outside_tests_imports_tests():
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in imports_of(path) if is_tests(n))
        for path in python_files(*OUTSIDE_TESTS)
    }
    assert {path: names for path, names in offenders.items() if names} == {}
