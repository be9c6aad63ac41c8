"""Processes ``python -m devhost`` may start for a local run: Azurite and the Commerce emulator."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from devhost.storage import LOOPBACK


def is_listening(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def emulator_port(base_url: str, port: int) -> int | None:
    """``port`` when COMMERCE_BASE_URL points at this machine on that port (the emulator to start)."""
    url = urlsplit(base_url or "")
    if url.hostname in LOOPBACK and (url.port or 80) == port:
        return port
    return None


@dataclass
class Child:
    name: str
    process: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 3.0) -> None:
        if self.process.poll() is not None:
            return
        # Each child leads its own process group (start_new_session), so the group holds its helpers.
        _signal_group(self.process, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.process, signal.SIGKILL)
            self.process.wait()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            process.send_signal(sig)
        except ProcessLookupError:
            pass


def start_emulator(port: int, token: str, cwd: Path, timeout: float = 20.0) -> Child:
    cmd = [sys.executable, "-m", "commerce_emulator", "--port", str(port), "--token", token]
    process = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, start_new_session=True)
    child = Child("commerce-emulator", process)
    deadline = time.monotonic() + timeout
    while not is_listening(port):
        if process.poll() is not None:
            raise RuntimeError(f"the Commerce emulator exited with code {process.returncode}")
        if time.monotonic() > deadline:
            child.stop()
            raise RuntimeError(f"the Commerce emulator did not listen on port {port} in {timeout}s")
        time.sleep(0.05)
    return child
