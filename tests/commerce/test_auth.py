"""Token providers: one credential per mode, cached tokens refreshed before expiry."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

from shared.adapters.commerce import auth
from shared.adapters.commerce.auth import CachedTokenProvider, StaticTokenProvider, build_token_provider
from shared.core.commerce_errors import CommerceAuthError, CommerceConnectionError
from shared.core.settings import AuthMode, SettingsError
from tests.support.commerce_client_fakes import CountingCredential, make_settings


def test_n_calls_fetch_one_token(clock):
    credential = CountingCredential(clock, lifetime=3600)
    provider = CachedTokenProvider(credential, "api://retail/.default", clock=clock)
    tokens = {provider.get_token() for _ in range(100)}
    assert tokens == {"token-1"}
    assert credential.scopes == ["api://retail/.default"]
    clock.advance(3600 - 301)  # still more than the 300 s margin left
    assert provider.get_token() == "token-1"
    clock.advance(2)  # inside the margin: refreshed
    assert provider.get_token() == "token-2"


def test_concurrent_callers_fetch_one_token(clock):
    credential = CountingCredential(clock, lifetime=3600)
    provider = CachedTokenProvider(credential, "s", clock=clock)
    barrier = threading.Barrier(32)
    results: list[str] = []

    def worker():
        barrier.wait()
        results.append(provider.get_token())

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["token-1"] * 32 and len(credential.scopes) == 1


def test_short_lived_tokens_refresh_before_expiry(clock):
    """Tokens living 2 s (margin 1 s): calls from 0 s to past the first token's expiry fetch exactly
    two tokens, and no token is handed out at or after its expiry."""
    credential = CountingCredential(clock, lifetime=2)
    provider = CachedTokenProvider(credential, "s", clock=clock)
    start = clock.now
    used = []
    for step in range(8):  # 0.0, 0.3, ... 2.1 s: the first token expires at 2.0 s
        clock.now = start + round(step * 0.3, 1)
        token = provider.get_token()
        used.append(token)
        assert credential.issued[token] > clock()
    assert used == ["token-1"] * 4 + ["token-2"] * 4
    assert provider.fetches == 2 and len(credential.scopes) == 2


def test_already_expired_token_is_refused(clock):
    credential = CountingCredential(clock, lifetime=-1)
    with pytest.raises(CommerceAuthError, match="expired"):
        CachedTokenProvider(credential, "s", clock=clock).get_token()


class FailingCredential:
    def __init__(self, exc):
        self.exc = exc

    def get_token(self, *scopes, **kwargs):
        raise self.exc


def test_credential_failures_are_classified(clock):
    with pytest.raises(CommerceAuthError) as auth_error:
        CachedTokenProvider(
            FailingCredential(ClientAuthenticationError("AADSTS7000215: Invalid client secret")), "s"
        ).get_token()
    assert auth_error.value.operation == "token"
    with pytest.raises(CommerceConnectionError):
        CachedTokenProvider(FailingCredential(ServiceRequestError("unreachable")), "s").get_token()


# --- build_token_provider --------------------------------------------------------------------------
ENTRA = dict(
    tenant_id="00000000-0000-0000-0000-000000000001",
    client_id="00000000-0000-0000-0000-000000000002",
    server_resource_id="api://retail-server-app",
)


def test_static_dev_token_warns(caplog):
    logger = logging.getLogger("test.auth")
    with caplog.at_level(logging.DEBUG, logger="test.auth"):
        provider = build_token_provider(make_settings(static_dev_token="t-123"), logger=logger)
    assert isinstance(provider, StaticTokenProvider) and provider.get_token() == "t-123"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "emulator" in warnings[0].getMessage()
    assert "t-123" not in caplog.text and "t-123" not in repr(provider)


@pytest.mark.parametrize(
    "mode,settings,credential_type",
    [
        (AuthMode.CLIENT_SECRET, dict(ENTRA, client_secret="shh"), "ClientSecretCredential"),
        (
            AuthMode.MANAGED_IDENTITY,
            dict(managed_identity_client_id="mi-id", server_resource_id="api://x"),
            "ManagedIdentityCredential",
        ),
        (AuthMode.WORKLOAD_IDENTITY, dict(ENTRA, managed_identity_client_id="mi-id"), "ClientAssertionCredential"),
    ],
)
def test_builds_the_credential_for_the_mode(mode, settings, credential_type, caplog):
    provider = build_token_provider(
        make_settings(auth_mode=mode, static_dev_token="", **settings), logger=logging.getLogger("test.auth")
    )
    assert isinstance(provider, CachedTokenProvider)
    assert type(provider._credential).__name__ == credential_type
    assert provider._scope == settings["server_resource_id"] + "/.default"
    assert "shh" not in caplog.text


def test_certificate_mode_builds_certificate_credential(monkeypatch):
    built = {}

    class FakeCertificateCredential:
        def __init__(self, tenant_id, client_id, certificate_path=None, **kwargs):
            built.update(tenant_id=tenant_id, client_id=client_id, certificate_path=certificate_path)

    import azure.identity

    monkeypatch.setattr(azure.identity, "CertificateCredential", FakeCertificateCredential)
    settings = make_settings(auth_mode=AuthMode.CERTIFICATE, client_certificate_path="/certs/app.pem", **ENTRA)
    provider = build_token_provider(settings, logger=logging.getLogger("test.auth"))
    assert isinstance(provider._credential, FakeCertificateCredential)
    assert built == dict(tenant_id=ENTRA["tenant_id"], client_id=ENTRA["client_id"], certificate_path="/certs/app.pem")


def test_workload_identity_assertion_uses_managed_identity_exchange_token(monkeypatch, clock):
    calls = []

    class FakeManagedIdentity:
        def __init__(self, *, client_id):
            calls.append(("mi", client_id))

        def get_token(self, *scopes, **kwargs):
            calls.append(("mi-token", scopes))
            return AccessToken("mi-assertion", 2_000_000_000)

    captured = {}

    class FakeAssertionCredential:
        def __init__(self, tenant_id, client_id, func, **kwargs):
            captured.update(tenant_id=tenant_id, client_id=client_id, func=func)

    import azure.identity

    monkeypatch.setattr(azure.identity, "ManagedIdentityCredential", FakeManagedIdentity)
    monkeypatch.setattr(azure.identity, "ClientAssertionCredential", FakeAssertionCredential)
    settings = make_settings(auth_mode=AuthMode.WORKLOAD_IDENTITY, managed_identity_client_id="mi-id", **ENTRA)
    build_token_provider(settings, logger=logging.getLogger("test.auth"))
    assert captured["client_id"] == ENTRA["client_id"]
    assert captured["func"]() == "mi-assertion" and captured["func"]() == "mi-assertion"
    assert calls == [("mi", "mi-id"), ("mi-token", ("api://AzureADTokenExchange/.default",))]


@pytest.mark.parametrize(
    "mode,present,missing",
    [
        (AuthMode.CLIENT_SECRET, dict(ENTRA), ["COMMERCE_CLIENT_SECRET"]),
        (
            AuthMode.CERTIFICATE,
            dict(tenant_id="t", client_id="c"),
            ["COMMERCE_CLIENT_CERTIFICATE_PATH", "COMMERCE_SERVER_RESOURCE_ID"],
        ),
        (AuthMode.MANAGED_IDENTITY, dict(server_resource_id="api://x"), ["COMMERCE_MANAGED_IDENTITY_CLIENT_ID"]),
        (
            AuthMode.WORKLOAD_IDENTITY,
            dict(managed_identity_client_id="m", server_resource_id="api://x"),
            ["COMMERCE_TENANT_ID", "COMMERCE_CLIENT_ID"],
        ),
        (AuthMode.STATIC_DEV_TOKEN, {}, ["COMMERCE_STATIC_DEV_TOKEN"]),
    ],
)
def test_incomplete_settings_name_the_missing_setting(mode, present, missing):
    settings = replace(make_settings(static_dev_token=""), auth_mode=mode, **present)
    with pytest.raises(SettingsError) as error:
        build_token_provider(settings, logger=logging.getLogger("test.auth"))
    for name in missing:
        assert name in str(error.value)


def test_no_default_azure_credential_anywhere():
    source = open(auth.__file__).read()
    assert "DefaultAzureCredential(" not in source and "import DefaultAzureCredential" not in source
    assert not hasattr(auth, "DefaultAzureCredential")
