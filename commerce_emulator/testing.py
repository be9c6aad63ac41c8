"""Start the emulator as a subprocess and drive its control API (for tests, benchmarks and devhost)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from .config import DEFAULT_TOKEN

ROOT = Path(__file__).resolve().parent.parent
READY_PREFIX = "commerce-emulator listening on "


class EmulatorHandle:
    """A running emulator: its URLs and token, and thin wrappers of its /_emulator control API."""

    def __init__(self, url: str, token: str, process: subprocess.Popen | None = None, timeout: float = 10.0):
        self.url = url
        self.base_url = url + "/Commerce"
        self.token = token
        self.process = process
        self._timeout = timeout
        self._session = requests.Session()
        self._session_lock = threading.Lock()  # requests.Session is not documented as thread-safe

    def _call(self, method: str, path: str, body: Any = None, ok_404: bool = False) -> Any:
        with self._session_lock:
            response = self._session.request(
                method, f"{self.url}/_emulator/{path}", timeout=self._timeout, json=body if body is not None else None
            )
        if ok_404 and response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise RuntimeError(f"emulator control call {method} {path} failed: {response.status_code} {response.text}")
        return response.json()

    def reset(self) -> None:
        self._call("POST", "reset")

    def config(self) -> dict[str, Any]:
        return self._call("GET", "config")

    def configure(self, **options: Any) -> dict[str, Any]:
        return self._call("PATCH", "config", options)

    def faults(self) -> dict[str, Any]:
        return self._call("GET", "faults")

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        return self._call("PUT", "faults", faults)

    def clear_faults(self) -> dict[str, Any]:
        return self._call("PUT", "faults", {})

    def seed(self, customers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._call("POST", "customers", customers)

    def customers(self) -> list[dict[str, Any]]:
        return self._call("GET", "customers")

    def customer(self, account_number: str) -> dict[str, Any] | None:
        return self._call("GET", "customers/" + quote(account_number, safe=""), ok_404=True)

    def calls(self) -> dict[str, int]:
        return self._call("GET", "calls")

    def reset_calls(self) -> dict[str, int]:
        return self._call("POST", "calls/reset")

    def injected(self) -> dict[str, int]:
        """Faults injected since the calls were reset, by ``"operation:fault"``."""
        return self._call("GET", "faults/injected")

    def in_flight(self) -> list[dict[str, Any]]:
        """Commerce requests being answered now: ``operation``, ``client_port``, ``seconds``."""
        return self._call("GET", "inflight")

    def sync_async_customers(self) -> dict[str, str]:
        return self._call("POST", "async/sync")

    def stop(self) -> None:
        self._session.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout:
            self.process.stdout.close()


def start_emulator_process(
    token: str = DEFAULT_TOKEN, config: dict[str, Any] | None = None, timeout: float = 20.0
) -> EmulatorHandle:
    """Spawn ``python -m commerce_emulator --port 0`` and wait for its ready line. Raises with its stderr."""
    cmd = [sys.executable, "-m", "commerce_emulator", "--port", "0", "--token", token]
    if config:
        cmd += ["--config", json.dumps(config)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "PYTHONUNBUFFERED": "1",
    }
    stderr = tempfile.TemporaryFile()  # a file, not a pipe: a chatty child can never block on it
    process = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True, text=True
    )
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    ready = line and line[0].startswith(READY_PREFIX)
    if not ready:
        if process.poll() is None:
            process.kill()
        process.wait()
        stderr.seek(0)
        detail = stderr.read().decode("utf-8", "replace").strip()
        stderr.close()
        raise RuntimeError(
            f"the Commerce emulator did not start (exit code {process.returncode}): "
            f"{detail or (line[0] if line else 'no output')}"
        )
    stderr.close()  # the child keeps its own descriptor
    return EmulatorHandle(line[0][len(READY_PREFIX) :].strip(), token, process)
