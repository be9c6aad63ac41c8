"""``python -m commerce_emulator --port N [--host H] [--token T] [--config JSON]``.

Prints exactly one line, ``commerce-emulator listening on http://HOST:PORT``, once it accepts connections;
runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .config import DEFAULT_PORT, DEFAULT_TOKEN, ConfigError
from .server import EmulatorServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m commerce_emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--config", default=None, help="JSON object merged into the default config")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = json.loads(args.config) if args.config else None
        server = EmulatorServer(args.host, args.port, config, token=args.token)
    except (ValueError, ConfigError) as err:  # json.JSONDecodeError is a ValueError
        print(f"commerce-emulator: bad --config: {err}", file=sys.stderr)
        return 2
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    server.start()
    print(f"commerce-emulator listening on {server.url}", flush=True)
    while not stopping.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
