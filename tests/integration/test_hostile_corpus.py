"""Every request that ever broke the ingest edge, replayed over real HTTP through the local host, and
schemathesis's generated requests from docs/openapi.json: no 5xx, answers that match the documented
schemas, nothing queued for a refused event, no echoed address.

The corpus (tests/corpus/ingest.jsonl) holds one request per line: ``body`` is the JSON text, or a
recipe for a large one (``prefix`` + ``repeat`` × ``times`` + ``suffix``; ``unknown_properties``: an
event with that many; ``copies``: a batch of one event repeated), or ``raw`` is the whole HTTP
request for framing the server must refuse. A new way to break the endpoint gets a line here."""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks

from tests.support.stack import event

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "ingest.jsonl"
ENTRIES = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def _body(spec: object) -> bytes:
    if isinstance(spec, str):
        return spec.encode("utf-8", "surrogatepass")
    assert isinstance(spec, dict)
    if "repeat" in spec:
        return (spec.get("prefix", "") + spec["repeat"] * spec["times"] + spec.get("suffix", "")).encode()
    if "unknown_properties" in spec:
        return json.dumps({**event(1), **{f"k{i:05}": 0 for i in range(spec["unknown_properties"])}}).encode()
    if "copies" in spec:
        return json.dumps([{**spec["event"], "eventId": f"evt-{i}"} for i in range(spec["copies"])]).encode()
    raise AssertionError(f"unknown corpus recipe {sorted(spec)}")


def _raw_exchange(url: str, request: str, timeout: float) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as conn:
        conn.sendall(request.encode("latin-1"))
        chunks = []
        while True:
            try:
                data = conn.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            chunks.append(data)
            if b"\r\n\r\n" in b"".join(chunks):
                head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
                length = next(
                    (int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")), 0
                )
                if len(rest) >= length:
                    break
        return b"".join(chunks)


def test_the_corpus_covers_every_class_of_break():
    assert {e["class"] for e in ENTRIES} == {"cpu", "500", "leak", "spoof", "amplification", "framing"}


@pytest.fixture(scope="module")
def ingest_only(azurite, emulator_process, tmp_path_factory):
    """HTTP only, shared by the module: no queue trigger, so a queued event stays visible."""
    from tests.support.stack import make_stack

    monkeypatch = pytest.MonkeyPatch()
    stack = make_stack(azurite, emulator_process, tmp_path_factory.mktemp("hostile"), monkeypatch, queues=False)
    yield stack
    stack.host.stop()
    monkeypatch.undo()
    import function_app

    function_app.use_runtime(None)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_every_request_that_broke_the_endpoint_is_answered(ingest_only, entry):
    stack = ingest_only
    queue = stack.queue()
    queue.clear_messages()
    started = time.perf_counter()
    if "raw" in entry:
        answer = _raw_exchange(stack.host.http_url, entry["raw"], timeout=entry.get("max_seconds", 10))
        status_line = answer.split(b"\r\n", 1)[0]
        assert status_line.startswith(b"HTTP/1.1 "), answer[:200]
        assert int(status_line.split()[1]) == entry["status"], answer[:300]
    else:
        response = stack.post(_body(entry["body"]))
        assert response.status_code == entry["status"], response.text[:500]
        answer = response.content
        body = response.json()  # always valid UTF-8 JSON
        if "pointer" in entry:
            assert entry["pointer"] in {e["pointer"] for e in body["errors"]}
        if entry["status"] >= 400:
            assert queue.get_queue_properties().approximate_message_count == 0
    elapsed = time.perf_counter() - started
    assert elapsed < entry.get("max_seconds", 10), f"{elapsed:.1f} s"
    assert len(answer) <= entry.get("max_answer_bytes", 1_000_000)
    for text in entry.get("must_not_contain", []):
        assert text.encode() not in answer


def test_health_answers_while_the_worst_body_is_being_refused(ingest_only):
    """One request must never stall the instance: health answers during the worst-case body."""
    import threading

    import requests

    worst = _body(ENTRIES[0]["body"])
    done = threading.Event()
    thread = threading.Thread(target=lambda: (ingest_only.post(worst), done.set()))
    thread.start()
    try:
        started = time.perf_counter()
        health = requests.get(f"{ingest_only.host.http_url}/health", timeout=5)
        assert health.status_code == 200 and time.perf_counter() - started < 2
    finally:
        thread.join(30)
    assert done.is_set()


# --- schemathesis ------------------------------------------------------------------------------
SCHEMA = schemathesis.openapi.from_path(str(OPENAPI))
# Requests per operation and mode: positive data follows the schema, negative data breaks it.
BUDGET = {
    ("/api/customers/events", "POST", GenerationMode.POSITIVE): 400,
    ("/api/customers/events", "POST", GenerationMode.NEGATIVE): 300,
    ("/api/health", "GET", GenerationMode.POSITIVE): 10,
    # Unsigned by construction: every answer is a documented refusal, never a 5xx.
    ("/api/webhooks/{source}", "POST", GenerationMode.POSITIVE): 60,
    ("/api/webhooks/{source}", "POST", GenerationMode.NEGATIVE): 60,
}
# Not positive_data_acceptance: the schema cannot say everything validation refuses (a real email,
# a country's postal format), so a schema-valid event may rightly get a 422.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.negative_data_rejection,
]
SENT: Counter[tuple[str, int]] = Counter()


@pytest.mark.parametrize("path, method, mode", list(BUDGET), ids=[f"{m} {p} {g.value}" for p, m, g in BUDGET])
def test_schemathesis_finds_no_5xx_and_no_undocumented_answer(ingest_only, path, method, mode):
    operation = SCHEMA[path][method]
    base_url = ingest_only.host.http_url.removesuffix("/api")
    label = f"{method} {path} {mode.value}"

    @settings(
        max_examples=BUDGET[(path, method, mode)],
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        response = case.call(base_url=base_url, timeout=30)
        SENT[(label, response.status_code)] += 1
        assert response.status_code < 500, response.text[:500]
        case.validate_response(response, checks=CHECKS)

    run()
    statuses = {status: n for (op, status), n in sorted(SENT.items()) if op == label}
    print(f"\nschemathesis {label}: {sum(statuses.values())} requests, statuses {statuses}")
