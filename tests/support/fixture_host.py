"""host.json and app settings for running the fixture app (tests.support.fixture_app) in the local
host, and waiting until its functions have recorded what a test expects."""

from __future__ import annotations

import time

# Small values keep the integration tests fast (visibilityTimeout 1 s, polling 200 ms).
FAST_HOST_JSON = {
    "extensions": {
        "queues": {
            "batchSize": 4,
            "newBatchThreshold": 2,
            "maxDequeueCount": 3,
            "visibilityTimeout": "00:00:01",
            "maxPollingInterval": "00:00:00.200",
            "messageEncoding": "base64",
        }
    }
}
NEVER = "0 0 0 1 1 *"  # a timer schedule that does not fire during a test


def queues_json(**overrides) -> dict:
    return {"extensions": {"queues": {**FAST_HOST_JSON["extensions"]["queues"], **overrides}}}


def wait_for(condition, timeout=15.0):
    """The condition's first truthy value; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return value
