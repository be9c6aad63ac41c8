"""``python -m devhost``: run the app locally the way ``func start`` would (``make run`` calls this).

Loads local.settings.json (else the sample) into the environment without overriding real variables,
starts Azurite and the Commerce emulator when they are needed and not already listening, creates the
queues and the dead-letter table, imports the app, serves it, and on SIGINT/SIGTERM stops everything
it started. When ready it prints the banner and one machine-readable line::

    DEVHOST_READY {"http_url": "http://127.0.0.1:7071/api", "pid": ..., "children": {...}}
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devhost import azurite as azurite_module
from devhost.banner import BannerFacts, banner
from devhost.children import Child, emulator_port, is_listening, start_emulator
from devhost.local_host import LocalHost
from devhost.queue_listener import POISON_SUFFIX
from devhost.storage import clear_table, ensure_queues, ensure_tables, expand_connection_string, local_storage_ports
from tools.local_settings import merged, read_settings, settings_path

log = logging.getLogger("devhost")
ROOT = Path(__file__).resolve().parent.parent
READY_PREFIX = "DEVHOST_READY "
DEFAULT_TOKEN = "local-dev-emulator-token"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m devhost", description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=ROOT, help="function app folder (host.json, settings)")
    p.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    p.add_argument("--settings", type=Path, help="settings file (default: local.settings.json, else the sample)")
    p.add_argument("--host-json", type=Path, help="default: <root>/host.json")
    p.add_argument("--host", default="127.0.0.1", help="HTTP listen address")
    p.add_argument("--port", type=int, help="HTTP port, 0 for a free one (default: Host.LocalHttpPort or 7071)")
    p.add_argument("--no-azurite", action="store_true", help="never start Azurite")
    p.add_argument("--azurite-location", type=Path, help="Azurite data folder (default: <root>/.azurite)")
    p.add_argument("--no-emulator", action="store_true", help="never start the Commerce emulator")
    p.add_argument(
        "--emulator-port",
        type=int,
        default=7075,
        help="start the emulator when COMMERCE_BASE_URL points at 127.0.0.1 on this port",
    )
    p.add_argument("--no-http", action="store_true", help="no HTTP server (a queue and timer worker)")
    p.add_argument("--no-timers", action="store_true", help="do not run timer triggers")
    p.add_argument("--only-queues", action="store_true", help="queue triggers only: no HTTP, no timers")
    p.add_argument("--functions", nargs="+", metavar="NAME", help="run only these functions")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def _load_app(spec: str, root: Path) -> Any:
    module_name, _, attribute = spec.partition(":")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return getattr(importlib.import_module(module_name), attribute or "app")


def _storage_children(args: argparse.Namespace, connection: str, root: Path) -> tuple[list[Child], str]:
    """Start Azurite when the connection points at local ports nobody listens on."""
    ports = local_storage_ports(connection)
    if ports is None:
        return [], "Storage: remote account (from AzureWebJobsStorage)"
    listening = [is_listening(port) for port in ports.values()]
    if all(listening):
        return [], f"Storage: Azurite already listening on {ports['queue']} (queues)"
    if args.no_azurite:
        raise SystemExit(
            f"devhost: storage ports {list(ports.values())} are not listening and --no-azurite "
            "was given: start Azurite first"
        )
    if any(listening):
        raise SystemExit(f"devhost: only some of the storage ports {list(ports.values())} are listening")
    location = args.azurite_location or root / ".azurite"
    location.mkdir(parents=True, exist_ok=True)
    az = azurite_module.start_azurite(
        blob_port=ports["blob"], queue_port=ports["queue"], table_port=ports["table"], location=str(location)
    )
    assert az.process is not None
    return [Child("azurite", az.process)], f"Storage: Azurite started (pid {az.process.pid}, data in {location})"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every request at INFO
    root = args.root.resolve()

    path = args.settings or settings_path(root)
    host_settings: dict[str, Any] = {}
    if path:
        values, host_settings = read_settings(path)
        os.environ.update(merged(values, os.environ))
    connection = os.environ.get("AzureWebJobsStorage", "")
    if not connection:
        print("devhost: AzureWebJobsStorage is not set (no settings file and no environment variable)", file=sys.stderr)
        return 2

    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())

    children: list[Child] = []
    host: LocalHost | None = None
    try:
        started, storage_line = _storage_children(args, connection, root)
        children += started
        lines = [storage_line]
        emulator_url = None
        fresh_emulator = False
        port = None if args.no_emulator else emulator_port(os.environ.get("COMMERCE_BASE_URL", ""), args.emulator_port)
        if port:
            emulator_url = f"http://127.0.0.1:{port}"
            if is_listening(port):
                lines.append(f"Commerce emulator: already listening on {port}")
            else:
                child = start_emulator(port, os.environ.get("COMMERCE_STATIC_DEV_TOKEN") or DEFAULT_TOKEN, root)
                children.append(child)
                lines.append(f"Commerce emulator: started (pid {child.pid}) on {port}")
                fresh_emulator = True
        else:
            lines.append("Commerce emulator: not started (COMMERCE_BASE_URL is elsewhere or --no-emulator)")

        lines.append(_configure_telemetry())
        app = _load_app(args.app, root)
        only_queues = args.only_queues
        host = LocalHost(
            app,
            host_json=args.host_json or root / "host.json",
            env=os.environ,
            http_port=args.port if args.port is not None else int(host_settings.get("LocalHttpPort") or 7071),
            http_host=args.host,
            storage_connection=expand_connection_string(connection),
            http=not (args.no_http or only_queues),
            timers=not (args.no_timers or only_queues),
            functions=args.functions,
        )
        _provision(host, connection)
        ledger = os.environ.get("LEDGER_TABLE_NAME")
        if fresh_emulator and ledger:
            # The ledger mirrors what Commerce holds; the emulator just started empty, so what the
            # ledger kept from an earlier run (in .azurite/) would make the same events "duplicate".
            cleared = clear_table(connection, ledger)
            if cleared:
                lines.append(
                    f"Sync ledger: {cleared} entr{'y' if cleared == 1 else 'ies'} from an earlier run "
                    "cleared (the emulator starts empty)"
                )
        host.start()
        http_url = host.http_url if host.serving_http else None
        shown = http_url.replace("127.0.0.1", "localhost") if http_url and args.host == "127.0.0.1" else http_url
        sample = root / "samples" / "event.json"
        print(
            banner(
                BannerFacts(
                    functions=host.functions,
                    http_base=shown,
                    settings_file=str(path.relative_to(root) if path and path.is_relative_to(root) else path),
                    processes=lines,
                    sample_event=sample.relative_to(root) if sample.is_file() else None,
                    emulator_url=emulator_url,
                    now=datetime.now(UTC).replace(tzinfo=None),
                    queues_enabled=True,
                    timers_enabled=not (args.no_timers or only_queues),
                )
            ),
            flush=True,
        )
        print(
            READY_PREFIX
            + json.dumps({"http_url": http_url, "pid": os.getpid(), "children": {c.name: c.pid for c in children}}),
            flush=True,
        )
        while not stopping.wait(0.5):
            pass
        log.info("Stopping")
        return 0
    except SystemExit as exit_:
        print(exit_.code, file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - any startup failure is printed with a hint, not a traceback
        hint = ""
        if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
            hint = (
                " - a port is taken (7071 for HTTP, 7075 for the emulator, 10000-10002 for "
                "Azurite): stop the other process, or use --port / --emulator-port"
            )
        log.error("devhost could not start: %s: %s%s", type(error).__name__, error, hint)
        return 1
    finally:
        if host is not None:
            host.stop()
            log.debug("Host stopped")
        for child in reversed(children):
            child.stop()
            log.debug("Stopped %s", child.name)


def _configure_telemetry() -> str:
    """Export to Application Insights when a connection string is set, as the Python worker does in
    Azure (PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY); the app itself never configures exporters."""
    if not os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip():
        return "Telemetry: not exported (APPLICATIONINSIGHTS_CONNECTION_STRING is empty)"
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor(logger_name="customer_sync")
    return "Telemetry: exported to Application Insights (azure-monitor-opentelemetry)"


def _provision(host: LocalHost, connection: str) -> None:
    """Queues of every queue trigger and their poison queues, and the app's tables, if missing."""
    names = [q.queue_name for q in host.functions.queues]
    wanted = sorted({n for n in names} | {n + POISON_SUFFIX for n in names if not n.endswith(POISON_SUFFIX)})
    ensure_queues(connection, wanted)
    tables = [os.environ.get(name) for name in ("DEADLETTER_TABLE_NAME", "LEDGER_TABLE_NAME")]
    if any(tables):
        ensure_tables(connection, [t for t in tables if t])
