import json
from datetime import timedelta
from pathlib import Path

import pytest

from devhost.host_config import host_options, parse_timespan

ROOT = Path(__file__).resolve().parents[2]


def test_documented_defaults_when_absent():
    options = host_options({"version": "2.0"}, cpu_count=4)
    q = options.queues
    assert (q.batch_size, q.new_batch_threshold, q.max_dequeue_count) == (16, 32, 5)
    assert q.visibility_timeout == timedelta(0)
    assert q.max_polling_interval == timedelta(minutes=1)
    assert q.message_encoding == "base64"
    assert q.max_concurrency == 48
    assert options.route_prefix == "api"
    assert options.function_timeout == timedelta(minutes=5)


def test_project_host_json():
    options = host_options(json.loads((ROOT / "host.json").read_text()))
    q = options.queues
    assert (q.batch_size, q.new_batch_threshold, q.max_dequeue_count) == (16, 8, 5)
    assert q.visibility_timeout == timedelta(seconds=30)
    assert q.max_polling_interval == timedelta(seconds=2)


def test_route_prefix_and_numeric_polling_interval():
    options = host_options({"extensions": {"http": {"routePrefix": "/v1/"}, "queues": {"maxPollingInterval": 250}}})
    assert options.route_prefix == "v1"
    assert options.queues.max_polling_interval == timedelta(milliseconds=250)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("00:00:30", timedelta(seconds=30)),
        ("00:00:00.200", timedelta(milliseconds=200)),
        ("1.02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ],
)
def test_timespans(text, expected):
    assert parse_timespan(text) == expected


@pytest.mark.parametrize(
    "raw",
    [
        {"extensions": {"queues": {"batchSize": 64}}},
        {"extensions": {"queues": {"messageEncoding": "utf8"}}},
        {"extensions": {"queues": {"visibilityTimeout": "30s"}}},
    ],
)
def test_invalid_values_are_refused(raw):
    with pytest.raises(ValueError):
        host_options(raw)


def test_worker_thread_count():
    from devhost.invoke import default_thread_count

    assert default_thread_count({}, cpu_count=1) == 5
    assert default_thread_count({}, cpu_count=64) == 32
    assert default_thread_count({"PYTHON_THREADPOOL_THREAD_COUNT": "3"}, cpu_count=64) == 3
