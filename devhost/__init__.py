"""A local Azure Functions host for this app (Core Tools cannot be installed on the build machines).

``python -m devhost`` runs the app like ``func start``; ``devhost.local_host.LocalHost`` runs it inside
a test; ``devhost.testing.start_devhost_process`` runs ``python -m devhost`` as a worker process.
Modules: host_config (host.json), bindings (function discovery), routing, http_server, queue_codec,
queue_listener, ncrontab, timer_runner, local_host, storage, children, banner, cli (local.settings.json is read by
tools.local_settings, which the operator tools share).
"""

from __future__ import annotations

from typing import Any

__all__ = ["LocalHost"]


def __getattr__(name: str) -> Any:
    # Lazy, so ``import devhost.azurite`` (the test fixtures) does not load the Functions library.
    if name == "LocalHost":
        from devhost.local_host import LocalHost

        return LocalHost
    raise AttributeError(name)
