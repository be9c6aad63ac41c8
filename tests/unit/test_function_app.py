"""The triggers' own contract, without the host: health, and settings problems at the HTTP edge."""

import json

import azure.functions as func

import function_app
from devhost.bindings import indexed_functions
from shared.core import telemetry_names as names


def functions():
    return {f.get_function_name(): f for f in indexed_functions(function_app.app)}


def request(method="GET", body=b"", headers=None):
    return func.HttpRequest(
        method=method, url="http://localhost/api/x", headers=headers or {}, params={}, route_params={}, body=body
    )


def test_every_function_name_is_one_of_the_alerted_names():
    assert set(functions()) == {
        names.FUNCTION_INGEST,
        names.FUNCTION_PROCESS,
        names.FUNCTION_POISON,
        names.FUNCTION_QUEUE_MONITOR,
        names.FUNCTION_HEALTH,
        names.FUNCTION_WEBHOOK,
        names.FUNCTION_BACKFILL,
        names.FUNCTION_BACKFILL_POISON,
    }


def test_health_names_missing_settings_without_values(monkeypatch):
    for key in ("COMMERCE_BASE_URL", "EMAIL_HASH_KEY", "AzureWebJobsStorage", "COMMERCE_OUN", "COMMERCE_AUTH_MODE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("COMMERCE_CLIENT_SECRET", "do-not-show-this-secret")
    function_app.use_runtime(None)
    try:
        response = functions()[names.FUNCTION_HEALTH].get_user_function()(request())
    finally:
        function_app.use_runtime(None)
    body = json.loads(response.get_body())
    assert response.status_code == 503
    assert body["settingsComplete"] is False and body["status"] == "degraded"
    assert {"COMMERCE_BASE_URL", "EMAIL_HASH_KEY", "AzureWebJobsStorage"} <= set(body["problems"])
    assert "do-not-show-this-secret" not in response.get_body().decode()


def test_ingest_without_settings_is_a_503_problem_not_a_500(monkeypatch):
    monkeypatch.delenv("COMMERCE_BASE_URL", raising=False)
    monkeypatch.delenv("EMAIL_HASH_KEY", raising=False)
    function_app.use_runtime(None)
    try:
        response = functions()[names.FUNCTION_INGEST].get_user_function()(
            request("POST", b"{}", {"content-type": "application/json", "x-correlation-id": "abc-123"})
        )
    finally:
        function_app.use_runtime(None)
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert json.loads(response.get_body())["correlationId"] == "abc-123"
