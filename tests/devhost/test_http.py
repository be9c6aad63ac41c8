"""HTTP triggers through a real socket: routing, methods, 404/405/500, request and response mapping."""

import logging

import pytest
import requests

pytestmark = pytest.mark.integration


@pytest.fixture
def http_host(make_host):
    return make_host(queues=False, timers=False)


def test_echo_maps_request_and_response(http_host):
    r = requests.post(
        f"{http_host.http_url}/echo/Ann%20Lee?a=1&status=201", data="héllo".encode(), headers={"X-Test": "yes"}
    )
    assert r.status_code == 201
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert r.headers["X-Echo"] == "yes"
    body = r.json()
    assert body["method"] == "POST"
    assert body["route"] == {"name": "Ann Lee"}
    assert body["params"] == {"a": "1", "status": "201"}
    assert body["x_test"] == "yes"  # headers are case-insensitive
    assert body["body"] == "héllo"
    assert body["url"].endswith("/api/echo/Ann%20Lee?a=1&status=201")


def test_keep_alive_and_get_without_body(http_host):
    with requests.Session() as session:
        first = session.get(f"{http_host.http_url}/echo/a")
        second = session.get(f"{http_host.http_url}/echo/b")
    assert (first.json()["route"], second.json()["route"]) == ({"name": "a"}, {"name": "b"})
    assert first.json()["body"] == ""


def test_literal_route_wins_and_constraints_apply(http_host):
    special = requests.get(f"{http_host.http_url}/items/special")
    assert (special.status_code, special.text) == (200, "special")
    assert special.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert requests.get(f"{http_host.http_url}/items/12").text == "item 12"
    assert requests.get(f"{http_host.http_url}/items/twelve").status_code == 404


def test_unknown_route_404_and_wrong_method_405(http_host):
    assert requests.get(f"{http_host.http_url}/nowhere").status_code == 404
    assert requests.get(http_host.http_url.replace("/api", "/other/echo/x")).status_code == 404
    r = requests.put(f"{http_host.http_url}/echo/x", data=b"x")
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, POST"


def test_exception_is_500_with_empty_body_and_a_log_line_without_the_message(http_host, caplog):
    with caplog.at_level(logging.INFO, logger="devhost"):
        r = requests.post(f"{http_host.http_url}/boom", data=b"{}")
    assert (r.status_code, r.content) == (500, b"")
    failures = [rec for rec in caplog.records if "Functions.boom" in rec.getMessage()]
    assert failures and failures[0].levelno == logging.ERROR
    assert "RuntimeError" in failures[0].getMessage()
    assert "secret@example.com" not in caplog.text


def test_async_function(http_host):
    assert requests.get(f"{http_host.http_url}/async-hello").text == "hello from async"


def test_route_prefix_from_host_json(make_host):
    host = make_host(queues=False, timers=False, host_json={"extensions": {"http": {"routePrefix": "v1"}}})
    assert host.http_url.endswith("/v1")
    assert requests.get(f"{host.http_url}/echo/z").json()["route"] == {"name": "z"}
    assert requests.get(host.http_url.replace("/v1", "/api") + "/echo/z").status_code == 404


def test_body_over_the_host_limit_is_413(http_host, monkeypatch):
    import devhost.http_server as server

    monkeypatch.setattr(server, "MAX_BODY_BYTES", 10)
    r = requests.post(f"{http_host.http_url}/echo/x", data=b"x" * 11)
    assert r.status_code == 413
    assert requests.post(f"{http_host.http_url}/echo/x", data=b"x" * 10).status_code == 200
