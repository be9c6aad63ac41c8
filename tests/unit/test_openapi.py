"""docs/openapi.json is what the models generate, and is a structurally valid OpenAPI 3.1 document."""

from __future__ import annotations

import json

import pytest

from tools import openapi


def test_committed_document_matches_the_models():
    assert openapi.DOCUMENT.read_text(encoding="utf-8") == openapi.render(), "run: python -m tools.openapi --write"


def test_check_mode_exit_codes(tmp_path, monkeypatch):
    target = tmp_path / "openapi.json"
    monkeypatch.setattr(openapi, "DOCUMENT", target)
    assert openapi.main(["--check"]) == 1
    assert openapi.main(["--write"]) == 0
    assert openapi.main(["--check"]) == 0
    target.write_text(target.read_text() + " ", encoding="utf-8")
    assert openapi.main(["--check"]) == 1


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_structure():
    doc = json.loads(openapi.render())
    assert doc["openapi"].startswith("3.1")
    assert {"title", "version"} <= set(doc["info"])
    post = doc["paths"]["/api/customers/events"]["post"]
    assert {"202", "207", "400", "413", "415", "503"} <= set(post["responses"])
    assert post["responses"]["503"]["content"]["application/problem+json"]
    assert "get" in doc["paths"]["/api/health"]
    schemes = doc["components"]["securitySchemes"]
    assert {(s["in"], s["name"]) for s in schemes.values()} == {("header", "x-functions-key"), ("query", "code")}
    assert doc["security"]
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas
    assert schemas["CustomerEvent"]["additionalProperties"] is False
    assert "queuedEventIds" in schemas["Problem"]["properties"]


def test_valid_openapi_31():
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(json.loads(openapi.render()))
