"""Start and stop Azurite (the Azure Storage emulator, from npm) for local runs and tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key: public, documented, accepted only by the emulator.
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def azurite_command() -> list[str]:
    local = ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return [str(local)]
    found = shutil.which("azurite")
    if found:
        return [found]
    raise RuntimeError("Azurite is not installed: run 'npm ci' in the project folder (make setup does)")


@dataclass
class Azurite:
    blob_port: int
    queue_port: int
    table_port: int
    process: subprocess.Popen | None = None

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={DEV_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{ACCOUNT};"
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait_listening(port: int, deadline: float, process: subprocess.Popen) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Azurite exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"Azurite did not listen on port {port} in time")


def start_azurite(
    *,
    blob_port: int | None = None,
    queue_port: int | None = None,
    table_port: int | None = None,
    location: str | None = None,
    quiet: bool = True,
    timeout: float = 30.0,
) -> Azurite:
    """Start Azurite on the given ports (free ones when omitted). In memory unless ``location``."""
    az = Azurite(blob_port or free_port(), queue_port or free_port(), table_port or free_port())
    cmd = azurite_command() + [
        # --disableTelemetry: Azurite otherwise reports usage over the network, and on shutdown waits
        # for that report (seconds, up to minutes offline) before it exits.
        "--skipApiVersionCheck",
        "--loose",
        "--disableTelemetry",
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(az.blob_port),
        "--queueHost",
        "127.0.0.1",
        "--queuePort",
        str(az.queue_port),
        "--tableHost",
        "127.0.0.1",
        "--tablePort",
        str(az.table_port),
    ]
    cmd += ["--location", location] if location else ["--inMemoryPersistence"]
    if quiet:
        cmd.append("--silent")
    az.process = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL if quiet else None,
        stderr=subprocess.DEVNULL if quiet else None,
        start_new_session=True,
        env={**os.environ},
    )
    deadline = time.monotonic() + timeout
    try:
        for port in (az.blob_port, az.queue_port, az.table_port):
            _wait_listening(port, deadline, az.process)
    except Exception:
        az.stop()
        raise
    return az
