"""Tokens for the Commerce Scale Unit.

One credential is built at start-up for the explicit ``COMMERCE_AUTH_MODE`` (no
DefaultAzureCredential: a fallback chain hides misconfiguration and makes the first call slow), and
wrapped in ``CachedTokenProvider`` so every call reuses one token until shortly before it expires.
Microsoft's Logic App sample fetches a token per run; at thousands of calls that is thousands of
round trips to Entra, so don't.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError

from shared.core.commerce_errors import CommerceAuthError, CommerceConnectionError, mask_text
from shared.core.settings import AuthMode, CommerceSettings, SettingsError

# The audience Entra expects for a managed identity token used as a client assertion (workload
# identity federation: the app registration trusts the managed identity, so no secret exists).
TOKEN_EXCHANGE_SCOPE = "api://AzureADTokenExchange/.default"
MAX_REFRESH_MARGIN_S = 300.0  # the margin azure-identity itself uses


@runtime_checkable
class TokenProvider(Protocol):
    def get_token(self) -> str: ...


class TokenCredentialLike(Protocol):
    """What CachedTokenProvider needs of an azure-identity credential."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken: ...


class CachedTokenProvider:
    """Reuses one AccessToken until ``expires_on - margin``, margin = min(300 s, half its lifetime).

    The half-lifetime rule keeps short-lived tokens (tests, unusual tenant policies) from being sent
    after they expire; the lock makes 32 threads that find the token stale fetch it once.
    """

    def __init__(self, credential: TokenCredentialLike, scope: str, clock: Callable[[], float] = time.time):
        self._credential = credential
        self._scope = scope
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self.fetches = 0  # how many tokens were obtained: observable in tests and diagnostics

    def get_token(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is not None and now < self._refresh_at:
                return self._token
            access = self._fetch()
            fetched_at = now
            lifetime = float(access.expires_on) - fetched_at
            if lifetime <= 0:
                raise CommerceAuthError("the credential returned an already expired token", operation="token")
            margin = min(MAX_REFRESH_MARGIN_S, lifetime / 2)
            self._token = access.token
            self._refresh_at = float(access.expires_on) - margin
            self.fetches += 1
            return self._token

    def _fetch(self) -> AccessToken:
        try:
            return self._credential.get_token(self._scope)
        except (ServiceRequestError, ServiceResponseError) as exc:
            # Entra or the managed identity endpoint could not be reached: transient.
            raise CommerceConnectionError(
                f"token request failed: {type(exc).__name__}: {exc}", operation="token"
            ) from None
        except ClientAuthenticationError as exc:
            raise CommerceAuthError(
                f"token request failed: {type(exc).__name__}: {mask_text(str(exc))}", operation="token"
            ) from None


class StaticTokenProvider:
    """The configured token, as is: the emulator and local runs only."""

    def __init__(self, token: str):
        self._token = token

    def get_token(self) -> str:
        return self._token

    def __repr__(self) -> str:
        return "StaticTokenProvider(<redacted>)"


# Which CommerceSettings attributes each mode needs, with the app setting that fills them.
_REQUIRED: dict[AuthMode, tuple[tuple[str, str], ...]] = {
    AuthMode.CLIENT_SECRET: (
        ("tenant_id", "COMMERCE_TENANT_ID"),
        ("client_id", "COMMERCE_CLIENT_ID"),
        ("client_secret", "COMMERCE_CLIENT_SECRET"),
        ("server_resource_id", "COMMERCE_SERVER_RESOURCE_ID"),
    ),
    AuthMode.CERTIFICATE: (
        ("tenant_id", "COMMERCE_TENANT_ID"),
        ("client_id", "COMMERCE_CLIENT_ID"),
        ("client_certificate_path", "COMMERCE_CLIENT_CERTIFICATE_PATH"),
        ("server_resource_id", "COMMERCE_SERVER_RESOURCE_ID"),
    ),
    AuthMode.MANAGED_IDENTITY: (
        ("managed_identity_client_id", "COMMERCE_MANAGED_IDENTITY_CLIENT_ID"),
        ("server_resource_id", "COMMERCE_SERVER_RESOURCE_ID"),
    ),
    AuthMode.WORKLOAD_IDENTITY: (
        ("tenant_id", "COMMERCE_TENANT_ID"),
        ("client_id", "COMMERCE_CLIENT_ID"),
        ("managed_identity_client_id", "COMMERCE_MANAGED_IDENTITY_CLIENT_ID"),
        ("server_resource_id", "COMMERCE_SERVER_RESOURCE_ID"),
    ),
    AuthMode.STATIC_DEV_TOKEN: (("static_dev_token", "COMMERCE_STATIC_DEV_TOKEN"),),
}


def missing_settings(settings: CommerceSettings) -> list[str]:
    """App setting names the configured auth mode needs but are empty."""
    return [
        name for attr, name in _REQUIRED[AuthMode(settings.auth_mode)] if not str(getattr(settings, attr) or "").strip()
    ]


def build_credential(settings: CommerceSettings) -> TokenCredential:
    """The azure-identity credential for the configured mode (not static_dev_token)."""
    # Imported here so the emulator path and the unit tests never touch azure-identity.
    from azure.identity import (
        CertificateCredential,
        ClientAssertionCredential,
        ClientSecretCredential,
        ManagedIdentityCredential,
    )

    mode = AuthMode(settings.auth_mode)
    if mode is AuthMode.CLIENT_SECRET:
        return ClientSecretCredential(settings.tenant_id, settings.client_id, settings.client_secret)
    if mode is AuthMode.CERTIFICATE:
        return CertificateCredential(
            settings.tenant_id, settings.client_id, certificate_path=settings.client_certificate_path
        )
    if mode is AuthMode.MANAGED_IDENTITY:
        return ManagedIdentityCredential(client_id=settings.managed_identity_client_id)
    if mode is AuthMode.WORKLOAD_IDENTITY:
        identity = CachedTokenProvider(
            ManagedIdentityCredential(client_id=settings.managed_identity_client_id), TOKEN_EXCHANGE_SCOPE
        )
        return ClientAssertionCredential(settings.tenant_id, settings.client_id, identity.get_token)
    raise ValueError(f"no credential for auth mode {mode.value}")


def build_token_provider(settings: CommerceSettings, *, logger: logging.Logger) -> TokenProvider:
    """The token provider for ``settings.auth_mode``, built once at start-up. Raises SettingsError
    naming every missing setting."""
    mode = AuthMode(settings.auth_mode)
    missing = missing_settings(settings)
    if missing:
        raise SettingsError([f"COMMERCE_AUTH_MODE={mode.value} needs {', '.join(missing)}"])
    if mode is AuthMode.STATIC_DEV_TOKEN:
        logger.warning(
            "COMMERCE_AUTH_MODE=static_dev_token: a fixed token for the Commerce emulator and "
            "local runs only; never use it against a real Commerce Scale Unit"
        )
        return StaticTokenProvider(settings.static_dev_token)
    logger.info("Commerce tokens: auth mode %s, scope %s", mode.value, settings.scope)
    return CachedTokenProvider(build_credential(settings), settings.scope)
