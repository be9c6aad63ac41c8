"""What the Commerce client tests run the client with: its settings, a scripted in-memory transport, a
clock the test moves, and an Entra credential that counts the tokens it issues."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import requests
from azure.core.credentials import AccessToken
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from shared.core.settings import AuthMode, CommerceSettings

EMULATOR_TOKEN = "local-dev-emulator-token"


def make_settings(**overrides: Any) -> CommerceSettings:
    base = CommerceSettings(
        base_url="http://commerce.test/Commerce",
        oun="052",
        api_version="7.3",
        auth_scheme="id_token",
        auth_mode=AuthMode.STATIC_DEV_TOKEN,
        tenant_id="",
        client_id="",
        client_secret="",
        client_certificate_path="",
        managed_identity_client_id="",
        server_resource_id="",
        static_dev_token=EMULATOR_TOKEN,
        connect_timeout=2.0,
        read_timeout=5.0,
        search_page_size=50,
    )
    return replace(base, **overrides)


@dataclass
class Sent:
    method: str
    url: str
    headers: dict[str, str]
    body: Any
    timeout: Any = None


@dataclass
class ScriptedAdapter(BaseAdapter):
    """A requests transport that answers from ``handler(Sent) -> (status, body, headers)`` (or raises)."""

    handler: Callable[[Sent], tuple[int, Any, dict[str, str]]]
    sent: list[Sent] = field(default_factory=list)

    def __post_init__(self):
        super().__init__()

    def send(self, request, **kwargs):
        body = json.loads(request.body) if request.body else None
        sent = Sent(request.method, request.url, dict(request.headers), body, kwargs.get("timeout"))
        self.sent.append(sent)
        status, payload, headers = self.handler(sent)
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict(headers)
        if isinstance(payload, (bytes, str)):
            response._content = payload.encode() if isinstance(payload, str) else payload
        else:
            response._content = json.dumps(payload).encode() if payload is not None else b""
        response.url = request.url
        response.request = request
        return response

    def close(self):
        pass


def scripted_session(handler) -> tuple[requests.Session, ScriptedAdapter]:
    adapter = ScriptedAdapter(handler)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session, adapter


class FakeClock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingCredential:
    """Issues token-1, token-2, ... each valid for ``lifetime`` seconds of the given clock."""

    def __init__(self, clock, lifetime: float):
        self.clock = clock
        self.lifetime = lifetime
        self.scopes: list[str] = []
        self.issued: dict[str, float] = {}  # token -> expires_on
        self._lock = threading.Lock()

    def get_token(self, *scopes, **kwargs):
        with self._lock:
            self.scopes.append(scopes[0])
            token = f"token-{len(self.scopes)}"
            expires = self.clock() + self.lifetime
            self.issued[token] = expires
            return AccessToken(token, int(expires) if expires == int(expires) else expires)
