"""Preflight: check a deployment's settings against the real services before go-live.

    python -m tools.preflight [--settings local.settings.json]

One line per check, PASS or FAIL, and for each failure the fix. Creates nothing in Commerce: the
search uses an address under the reserved .invalid domain, which no customer can have.
Exit code 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pycountry
from azure.core.exceptions import ResourceNotFoundError, ServiceRequestError, ServiceResponseError

from shared.adapters.storage import StorageFactory
from shared.core.commerce_errors import (
    CommerceAuthError,
    CommerceConnectionError,
    CommerceError,
    CommerceTimeoutError,
)
from shared.core.settings import AuthMode, Settings, SettingsError, load_settings
from tools.replay import load_env, operator_credential

PROBE_EMAIL = "preflight-probe@commerce-customer-sync.invalid"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{'PASS' if self.ok else 'FAIL'}  {self.name:<22} {self.detail}"
        return text if self.ok else f"{text}\n      fix: {self.fix}"


def _commerce_fix(error: CommerceError) -> str:
    if isinstance(error, CommerceAuthError):
        return (
            "Commerce refused the token: in headquarters add the client id as a relying party "
            "(Type Confidential, UserType Application), add COMMERCE_SERVER_RESOURCE_ID under "
            "Server resource IDs, run distribution job 1110; check COMMERCE_AUTH_SCHEME"
        )
    if isinstance(error, (CommerceConnectionError, CommerceTimeoutError)):
        return "check COMMERCE_BASE_URL (https://<csu-host>/Commerce) and outbound network access"
    if error.error_resource_id and "MissingRequiredArgument" in error.error_resource_id:
        return "check COMMERCE_OUN: the channel's operating unit number"
    return "see the ErrorResourceId above; compare COMMERCE_API_VERSION and COMMERCE_OUN with the CSU"


def run_checks(
    settings: Settings, env, *, make_token_provider=None, make_client=None, storage: StorageFactory | None = None
) -> list[Check]:
    from shared.adapters.commerce.auth import build_token_provider
    from shared.adapters.commerce.client import CommerceClient

    checks: list[Check] = []
    log = logging.getLogger("customer_sync.preflight")
    if settings.commerce.auth_mode is AuthMode.STATIC_DEV_TOKEN:
        host = urlsplit(settings.commerce.base_url).hostname or ""
        local = host in ("127.0.0.1", "localhost", "::1")
        checks.append(
            Check(
                "auth mode",
                local,
                f"static_dev_token against {host or '?'}",
                "static_dev_token is for the Commerce emulator only: choose "
                "workload_identity, managed_identity, certificate or client_secret",
            )
        )
    provider = None
    try:
        provider = (make_token_provider or build_token_provider)(settings.commerce, logger=log)
        provider.get_token()
        checks.append(Check("commerce token", True, f"acquired ({settings.commerce.auth_mode.value})"))
    except Exception as error:  # noqa: BLE001 - every failure is reported with its fix
        checks.append(
            Check(
                "commerce token",
                False,
                f"{type(error).__name__}",
                "check COMMERCE_TENANT_ID / COMMERCE_CLIENT_ID and the credential for "
                f"COMMERCE_AUTH_MODE={settings.commerce.auth_mode.value}; the app "
                "registration must exist and its secret/certificate/federation be valid",
            )
        )

    if provider is not None:
        client = (make_client or CommerceClient)(settings.commerce, provider)
        try:
            found = client.search_customers_by_email(PROBE_EMAIL)
            checks.append(
                Check(
                    "commerce search",
                    True,
                    f"SearchByFields answered with OUN {settings.commerce.oun} "
                    f"({len(found)} exact match(es) for the probe)",
                )
            )
        except CommerceError as error:
            checks.append(
                Check(
                    "commerce search",
                    False,
                    f"{type(error).__name__} status={error.status} {error.error_resource_id or ''}",
                    _commerce_fix(error),
                )
            )

    checks.extend(check_defaults(settings))
    checks.extend(check_storage(settings, storage or StorageFactory(env)))
    return checks


def check_defaults(settings: Settings) -> list[Check]:
    m = settings.mapping
    out = []
    if m.default_currency:
        ok = pycountry.currencies.get(alpha_3=m.default_currency) is not None
        out.append(
            Check(
                "default currency",
                ok,
                m.default_currency,
                "CUSTOMER_DEFAULT_CURRENCY must be an ISO 4217 code used by the channel",
            )
        )
    else:
        out.append(Check("default currency", True, "not set: Commerce decides on create"))
    try:
        import langcodes

        ok = langcodes.tag_is_valid(m.default_language)
    except ImportError:  # pragma: no cover - langcodes is a pinned dependency
        ok = bool(m.default_language)
    out.append(
        Check(
            "default language",
            ok,
            m.default_language or "(empty)",
            "CUSTOMER_DEFAULT_LANGUAGE must be a BCP 47 tag such as en-us",
        )
    )
    out.append(
        Check(
            "default group",
            True,
            f"{m.default_group or 'not set'} (existence cannot be checked through the "
            "documented API: confirm the group in headquarters)",
        )
    )
    return out


def check_storage(settings: Settings, storage: StorageFactory) -> list[Check]:
    out = []
    for name in (settings.events_queue, settings.poison_queue, settings.backfill_queue):
        out.append(
            _probe(
                f"queue {name}",
                lambda n=name: storage.queue(n).get_queue_properties(),
                "grant the identity Storage Queue Data Contributor and provision the queue",
            )
        )
    for name in (settings.deadletter_table, settings.ledger_table):
        out.append(
            _probe(
                f"table {name}",
                lambda n=name: next(iter(storage.table(n).list_entities(results_per_page=1)), None),
                "grant the identity Storage Table Data Contributor and provision the table",
            )
        )
    return out


def _probe(name: str, action: Callable[[], object], fix: str) -> Check:
    try:
        action()
        return Check(name, True, "reachable")
    except ResourceNotFoundError:
        return Check(name, False, "does not exist", "deploy infra/main.bicep (it provisions it)")
    except (ServiceRequestError, ServiceResponseError) as error:
        return Check(
            name,
            False,
            f"unreachable ({type(error).__name__})",
            "check AzureWebJobsStorage / AzureWebJobsStorage__* and network access",
        )
    except Exception as error:  # noqa: BLE001 - reported with its fix
        return Check(name, False, type(error).__name__, fix)


def main(argv: list[str] | None = None, out=sys.stdout) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tools.preflight", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--settings", type=Path)
    p.add_argument(
        "--credential",
        choices=["azure-cli", "managed-identity"],
        default="azure-cli",
        help="identity for identity-based storage settings (default: your az login)",
    )
    args = p.parse_args(argv)
    env = load_env(args.settings)
    try:
        settings = load_settings(env)
    except SettingsError as error:
        for problem in error.problems:
            print(f"FAIL  settings               {problem}", file=out)
        return 1
    print("PASS  settings               complete", file=out)
    checks = run_checks(settings, env, storage=StorageFactory(env, operator_credential(args.credential)))
    for check in checks:
        print(check.line(), file=out)
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
