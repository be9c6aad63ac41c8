"""The naive baseline: what a partner would otherwise deploy, measured in the same bench as the processor.

It does what Microsoft's own sample does for each event: get a token, search Commerce by email with
``$top=1``, and create the customer when the search returns nothing. No update of a customer that
exists, no ledger, no lease, no ordering, no retry policy of its own. It reads the same queue message
and sends the same create body as the processor (``shared.core.commerce_bodies.create.build_create_body``), so the
difference in cost is the flow, not the payload.

Chosen in its favour, so that the ratios against it are conservative:
- one ``requests.Session`` shared by all threads, with a pool as large as the processor's (a sample
  calling ``requests.post`` would open a connection per call and cost more CPU);
- the token "fetch" is the bench's counting credential, which answers at once: a real sample pays an
  Entra round trip (and its throttling) per event, which no figure here includes.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter

from shared.adapters.commerce.client import search_body
from shared.core.commerce_bodies.create import build_create_body
from shared.core.envelope import Envelope
from shared.core.settings import CommerceSettings, MappingSettings


class NaiveSync:
    """One event: token, ``SearchByFields?$top=1``, create if nothing came back. Returns the outcome:
    ``created``, or ``exists`` (whatever the search returned first, it is taken as the customer)."""

    def __init__(self, commerce: CommerceSettings, mapping: MappingSettings, credential: Any, scope: str):
        self._commerce, self._mapping = commerce, mapping
        self._credential, self._scope = credential, scope
        self._base = commerce.base_url.rstrip("/")
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def _headers(self) -> dict[str, str]:
        token = self._credential.get_token(self._scope).token  # a token per event
        return {
            "OUN": self._commerce.oun,
            "Authorization": f"{self._commerce.auth_scheme} {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }

    def process(self, message: str) -> str:
        event = Envelope.from_json(message).event
        headers = self._headers()
        version = self._commerce.api_version
        found = self._session.post(
            f"{self._base}/Customers/SearchByFields?$top=1&api-version={version}",
            json=search_body(event.email),
            headers=headers,
            timeout=(self._commerce.connect_timeout, self._commerce.read_timeout),
        )
        found.raise_for_status()
        if found.json().get("value"):
            return "exists"  # no update: a changed name, address or phone never reaches Commerce
        created = self._session.post(
            f"{self._base}/Customers?api-version={version}",
            json=build_create_body(event, self._mapping),
            headers=headers,
            timeout=(self._commerce.connect_timeout, self._commerce.read_timeout),
        )
        created.raise_for_status()
        return "created"

    def close(self) -> None:
        self._session.close()
