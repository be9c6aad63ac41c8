"""Running ``python -m devhost`` as a subprocess from tests (for example several queue workers that
share one Azurite). The process is started in its own session and stopped with SIGINT, like Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devhost.cli import READY_PREFIX, ROOT


@dataclass
class DevhostProcess:
    process: subprocess.Popen
    ready: dict = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    @property
    def http_url(self) -> str | None:
        """``http://127.0.0.1:<port>/api``, or None for a process without HTTP (``--only-queues``)."""
        return self.ready.get("http_url")

    @property
    def children(self) -> dict[str, int]:
        return dict(self.ready.get("children") or {})

    def output(self) -> str:
        """Everything the process printed so far (stdout and stderr)."""
        return "".join(self.lines)

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGINT) -> int:
        """``sig`` (Ctrl-C by default), then wait; SIGKILL after ``timeout`` s. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_devhost_process(
    *,
    env: Mapping[str, str],
    app: str = "function_app:app",
    args: Sequence[str] = ("--no-azurite", "--no-emulator", "--port", "0"),
    cwd: Path = ROOT,
    inherit_environment: bool = True,
    timeout: float = 30.0,
) -> DevhostProcess:
    """Start ``python -m devhost --app <app> <args>`` and return once it printed its ready line.

    ``env`` overlays the current environment (settings files still fill what neither sets).
    Raises RuntimeError with the process output if it exits or is not ready within ``timeout``.
    """
    full_env = {**(os.environ if inherit_environment else {}), **env, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "devhost", "--app", app, *args],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    handle = DevhostProcess(process)
    ready = threading.Event()

    def drain() -> None:  # keeps the pipe from filling up for the life of the process
        assert process.stdout is not None
        for line in process.stdout:
            handle.lines.append(line)
            if line.startswith(READY_PREFIX):
                handle.ready = json.loads(line[len(READY_PREFIX) :])
                ready.set()
        ready.set()

    threading.Thread(target=drain, name="devhost-output", daemon=True).start()
    deadline = time.monotonic() + timeout
    if not ready.wait(timeout=max(deadline - time.monotonic(), 0)) or not handle.ready:
        handle.stop(timeout=5)
        raise RuntimeError(f"devhost did not become ready (exit code {process.returncode}):\n" + handle.output())
    return handle
