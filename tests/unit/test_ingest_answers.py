"""Every answer POST /api/customers/events can give is what docs/openapi.json publishes for its status:
the response model of shared.core.contract, with no member the model lacks, and the JSON Schema of the
document, under the media type it names."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from shared.adapters.telemetry import Telemetry
from shared.core.contract import Accepted, MultiStatus, Problem
from shared.core.settings import InvalidFieldPolicy, Settings
from shared.usecases.ingest import HttpResult, IngestDeps, handle_ingest, problem
from tests.support.builders import NOW
from tests.support.ingest import SETTINGS, RecordingQueue, event

DOCUMENT = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text(encoding="utf-8"))
RESPONSES = DOCUMENT["paths"]["/api/customers/events"]["post"]["responses"]
MODELS: dict[int, type[BaseModel]] = {202: Accepted, 207: MultiStatus}
DROP = dataclasses.replace(
    SETTINGS, mapping=dataclasses.replace(SETTINGS.mapping, invalid_field_policy=InvalidFieldPolicy.DROP)
)


def answer(
    body: object,
    settings: Settings = SETTINGS,
    *,
    queue: RecordingQueue | None = None,
    content_type: str = "application/json",
) -> HttpResult:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    deps = IngestDeps(settings=settings, queue=queue or RecordingQueue(), telemetry=Telemetry(), clock=lambda: NOW)
    return handle_ingest(raw, content_type, "corr-1", deps)


ANSWERS = {
    "accepted": answer(event()),
    "accepted, with warnings": answer([event(1, phone="12"), event(2)], DROP),
    "accepted, problems omitted": answer(
        [event(i, phone="12", address={"country": "Atlantis"}) for i in range(40)], DROP
    ),
    "some rejected": answer({"events": [event(1), event(2, email="bad"), event(3)]}),
    "some rejected, problems omitted": answer(
        [event(i, email="bad", phone="1", nickname=1) if i % 2 else event(i) for i in range(60)]
    ),
    "not JSON": answer(b"{not json"),
    "too deep": answer(b"[" * 40 + b"]" * 40),
    "body too large": answer(b"[" + b'{"a":1},' * 200_000 + b"{}]"),
    "too many events": answer([event(i) for i in range(SETTINGS.ingest_max_events + 1)]),
    "not a JSON media type": answer(b"{}", content_type="text/plain"),
    "all rejected": answer([event(1, email="nope", phone="12")]),
    "all rejected, problems omitted": answer([event(i, email="nope", foo=1, bar=2) for i in range(30)]),
    "queue unavailable": answer([event(1), event(2)], queue=RecordingQueue(fail_after=1)),
    # function_app's outermost handlers: an unexpected failure, incomplete settings
    "internal error": problem(500, "Internal error", "The request could not be processed.", "corr-1"),
    "not configured": problem(503, "Service not configured", "The settings are incomplete.", "corr-1"),
}


def test_every_status_of_the_route_is_answered_and_published():
    statuses = {result.status for result in ANSWERS.values()}
    assert statuses == {202, 207, 400, 413, 415, 422, 500, 503}
    assert statuses <= {int(status) for status in RESPONSES}
    assert ANSWERS["accepted, with warnings"].body["warnings"]
    omitted = {name: result.body.get("omittedProblems") for name, result in ANSWERS.items()}
    assert {name for name, count in omitted.items() if count} == {
        "accepted, problems omitted",
        "some rejected, problems omitted",
        "all rejected, problems omitted",
    }
    assert 0 not in omitted.values()  # absent when nothing was left out
    assert ANSWERS["queue unavailable"].body["queuedEventIds"] == ["evt-1"]


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_an_answer_is_its_model_with_nothing_left_over(name):
    result = ANSWERS[name]
    model = MODELS.get(result.status, Problem)
    body = json.loads(result.json())
    parsed = model.model_validate(body)
    # What the model kept is all the body held: no member the model does not know, none retyped.
    assert parsed.model_dump(exclude_unset=True) == body


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_an_answer_matches_the_published_document(name):
    result = ANSWERS[name]
    content = RESPONSES[str(result.status)]["content"]
    assert list(content) == [result.content_type]
    schema = {**content[result.content_type]["schema"], "components": DOCUMENT["components"]}
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(json.loads(result.json()))]
    assert errors == []
