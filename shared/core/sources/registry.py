"""Which adapter serves ``POST /api/webhooks/<source>``: the four built-in ones, and one per mapping
file in ``WEBHOOK_MAPPINGS_DIR``."""

from __future__ import annotations

from shared.core.sources import hubspot, klaviyo, shopify, standard
from shared.core.sources.base import Adapter
from shared.core.sources.config import WebhookConfig
from shared.core.sources.declarative import DeclarativeAdapter

BUILT_IN: dict[str, Adapter] = {
    a.name: a for a in (shopify.ADAPTER, klaviyo.ADAPTER, hubspot.ADAPTER, standard.ADAPTER)
}


class SourceRegistry:
    def __init__(self, config: WebhookConfig):
        self._adapters: dict[str, Adapter] = dict(BUILT_IN)
        for name, spec in config.mappings.items():
            self._adapters[name] = DeclarativeAdapter(spec)

    def get(self, source: str) -> Adapter | None:
        return self._adapters.get(source.lower()) if isinstance(source, str) else None

    def names(self) -> list[str]:
        return sorted(self._adapters)
