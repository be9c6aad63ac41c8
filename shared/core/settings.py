"""The one place that reads app settings.

Every name the application reads is declared once in ``APP_SETTINGS``. ``local.settings.sample.json``,
the Bicep app settings in ``infra/`` and the README list the same names; ``tests/infra`` keeps them in
step. Names the platform reads (the Functions host, the OpenTelemetry exporter) are declared in
``PLATFORM_SETTINGS`` so the same test can account for them.

``load_settings`` is pure: it takes a mapping (``os.environ`` in production, a dict in tests) and
returns a frozen ``Settings`` or raises ``SettingsError`` naming every missing or malformed setting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

# Time allowed for renewing a lease before a write (a ledger write takes milliseconds; one slower
# than this defers its event rather than writing on a short lease).
LEASE_RENEWAL_MARGIN_SECONDS = 1.0


_Number = TypeVar("_Number", int, float)
_Choice = TypeVar("_Choice", bound=Enum)


class SettingsError(ValueError):
    """Settings are incomplete or malformed. ``problems`` lists each one, naming the setting."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        known = [s.name for s in APP_SETTINGS]
        # The setting names alone: safe to show anonymously (health endpoint), unlike values.
        self.names = sorted({n for n in known for p in problems if re.search(rf"\b{n}\b", p)})
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Setting:
    name: str
    description: str
    default: str | None = None  # None: no default (required, or optional and empty)
    secret: bool = False  # held in Key Vault in Azure, never logged or reported
    where: str = "both"  # "both", "local" (never in Azure) or "azure" (never in local.settings)


class AuthMode(str, Enum):
    CLIENT_SECRET = "client_secret"
    CERTIFICATE = "certificate"
    MANAGED_IDENTITY = "managed_identity"
    WORKLOAD_IDENTITY = "workload_identity"  # app registration trusting the managed identity: no secret
    STATIC_DEV_TOKEN = "static_dev_token"  # emulator and local runs only


class InvalidFieldPolicy(str, Enum):
    REJECT = "reject"
    DROP = "drop"


class PhoneClear(str, Enum):
    """What clearing ``phone`` does to the phone contact (docs/event-contract.md)."""

    KEEP = "keep"  # the contact stays as it is (Commerce documents no way to delete one)
    BLANK = "blank"  # the contact's Value and ValueExtension are PATCHed to ""
    OMIT = "omit"  # Contacts is PATCHed with every contact but the phone one


APP_SETTINGS: tuple[Setting, ...] = (
    # --- storage -----------------------------------------------------------------------------
    Setting(
        "AzureWebJobsStorage",
        "Storage for the host, the event queue and the tables. A connection "
        "string locally; in Azure the identity-based form AzureWebJobsStorage__queueServiceUri / "
        "__tableServiceUri / __blobServiceUri / __credential / __clientId.",
    ),
    Setting(
        "EVENTS_QUEUE_NAME",
        "Queue the ingest function writes and the processor reads. The host "
        "moves messages that exhaust maxDequeueCount to '<name>-poison'.",
        "customer-events",
    ),
    Setting(
        "DEADLETTER_TABLE_NAME", "Table holding dead-lettered events, keyed by email hash and event id.", "deadletters"
    ),
    Setting("DEADLETTER_RETENTION_DAYS", "Dead letters older than this are purged by the queue monitor.", "30"),
    Setting(
        "LEDGER_TABLE_NAME",
        "Table holding the per-email sync ledger: Commerce account number, "
        "last applied event, field-group hashes and the writer's lease, keyed by email hash.",
        "syncledger",
    ),
    Setting(
        "LEDGER_LEASE_SECONDS",
        "How long a worker holds an email's lease while it writes to "
        "Commerce. At least twice one Commerce call's connect + read timeout, plus 1 s: a write "
        "starts only with twice a call's budget left (a slot wait and the call), checked again "
        "after the lease is renewed, so it ends before the lease does.",
        "120",
    ),
    Setting(
        "RETRY_BASE_DELAY_SECONDS",
        "First delay before a transiently failed event is tried "
        "again when Commerce sends no Retry-After; doubles per attempt, with jitter.",
        "5",
    ),
    Setting(
        "RETRY_MAX_DELAY_SECONDS",
        "Longest backoff delay between two attempts. A Retry-After from "
        "Commerce is honoured in full (up to the queue's 7-day limit).",
        "900",
    ),
    Setting(
        "RETRY_MAX_AGE_SECONDS",
        "An event still failing transiently this long after it was "
        "queued is dead-lettered with its last error (24 hours by default).",
        "86400",
    ),
    Setting(
        "COMMERCE_MAX_CONCURRENCY",
        "Most Commerce calls in flight at once per worker process; "
        "with maximumInstanceCount it bounds the load on the Commerce Scale Unit.",
        "8",
    ),
    Setting(
        "BACKFILL_MAX_CONCURRENCY",
        "Most backfill queue messages (packs of events queued by "
        "tools.backfill on '<EVENTS_QUEUE_NAME>-backfill') processed at once per worker process, so an "
        "initial load never takes the capacity live events need.",
        "2",
    ),
    Setting("QUEUE_MONITOR_SCHEDULE", "NCRONTAB schedule of the queue-depth metrics timer.", "0 */5 * * * *"),
    # --- Commerce Scale Unit -------------------------------------------------------------------
    Setting("COMMERCE_BASE_URL", "Commerce Scale Unit base URL ending in /Commerce, e.g. https://<csu-host>/Commerce."),
    Setting("COMMERCE_OUN", "Operating unit number sent as the OUN header (the channel context)."),
    Setting("COMMERCE_API_VERSION", "Value of the api-version query parameter; empty omits it.", "7.3"),
    Setting("COMMERCE_AUTH_SCHEME", "Authorization scheme: id_token (Commerce docs) or Bearer.", "id_token"),
    Setting(
        "COMMERCE_AUTH_MODE",
        "How tokens are obtained: client_secret, certificate, "
        "managed_identity, workload_identity or static_dev_token (emulator only).",
    ),
    Setting("COMMERCE_TENANT_ID", "Entra tenant of the client app registration."),
    Setting(
        "COMMERCE_CLIENT_ID",
        "Client (application) id of the app registration that Commerce headquarters lists as a relying party.",
    ),
    Setting(
        "COMMERCE_CLIENT_SECRET", "Client secret (client_secret mode). A Key Vault reference in Azure.", secret=True
    ),
    Setting("COMMERCE_CLIENT_CERTIFICATE_PATH", "PEM/PFX certificate path (certificate mode)."),
    Setting(
        "COMMERCE_MANAGED_IDENTITY_CLIENT_ID",
        "Client id of the user-assigned managed identity (managed_identity and workload_identity modes).",
    ),
    Setting(
        "COMMERCE_SERVER_RESOURCE_ID",
        "Application ID URI of the Retail Server app registration (api://...). The token scope is '<this>/.default'.",
    ),
    Setting("COMMERCE_STATIC_DEV_TOKEN", "Fixed token for static_dev_token mode (the emulator).", secret=True),
    Setting("COMMERCE_CONNECT_TIMEOUT_SECONDS", "TCP connect timeout per Commerce call.", "3.05"),
    Setting("COMMERCE_READ_TIMEOUT_SECONDS", "Read timeout per Commerce call.", "30"),
    Setting("COMMERCE_SEARCH_PAGE_SIZE", "$top used when paging SearchByFields results.", "50"),
    # --- mapping defaults (applied on create only) ----------------------------------------------
    Setting("CUSTOMER_DEFAULT_TYPE", "CustomerTypeValue on create: 1 Person, 2 Organization.", "1"),
    Setting(
        "CUSTOMER_DEFAULT_GROUP",
        "CustomerGroup on create when the event has none (environment-specific); empty leaves it to Commerce.",
        "",
    ),
    Setting(
        "CUSTOMER_DEFAULT_CURRENCY", "CurrencyCode on create when the event has none; empty leaves it to Commerce.", ""
    ),
    Setting("CUSTOMER_DEFAULT_LANGUAGE", "Language on create when the event has none.", "en-us"),
    Setting(
        "CUSTOMER_ADDRESS_TYPE", "AddressTypeValue of the primary address (7 Home, 2 Delivery, 1 Invoice, ...).", "7"
    ),
    Setting(
        "DEFAULT_COUNTRY",
        "ISO 3166-1 alpha-2 region used to read national phone numbers when "
        "the event has no address country; empty requires international format.",
        "",
    ),
    Setting(
        "STATE_ID_OVERRIDES",
        "JSON object mapping alpha-3 country to {ISO 3166-2 code: "
        "Commerce state id}, for headquarters address data that differs from ISO.",
        "{}",
    ),
    Setting(
        "INVALID_OPTIONAL_FIELDS",
        "reject: refuse an event with any invalid field; drop: leave invalid optional fields out and record a warning.",
        "reject",
    ),
    Setting(
        "PHONE_CLEAR_CONTACT",
        "What clearing phone does to the phone contact: keep (default: "
        "it stays, Commerce documents no way to delete a contact), blank (PATCH its Value and "
        "ValueExtension to empty) or omit (PATCH Contacts without it). blank and omit are not "
        "verified against a real Commerce Scale Unit.",
        "keep",
    ),
    # --- ingest ----------------------------------------------------------------------------------
    Setting("INGEST_MAX_EVENTS", "Most events accepted in one request.", "500"),
    Setting("INGEST_MAX_BODY_BYTES", "Largest request body accepted.", "1048576"),
    # --- webhooks from marketing systems (shared.core.sources, docs/sources.md) -------------------------
    Setting(
        "WEBHOOK_SECRETS",
        "Signing secrets of the webhook sources, a JSON object {\"<source>\": "
        "[\"<secret>\", ...]}: every secret listed is accepted, so a rotation lists the new one "
        "beside the old until the sender uses it. A source without a secret is refused (401). A Key "
        "Vault reference in Azure.",
        secret=True,
    ),
    Setting(
        "WEBHOOK_SOURCE_OPTIONS",
        "Per-source options, a JSON object {\"<source>\": {...}}: "
        "createDefaults (customerGroup, currencyCode, language on create), invalidOptionalFields "
        "(reject or drop), shopDomains (Shopify allow-list), toleranceSeconds.",
        "{}",
    ),
    Setting(
        "WEBHOOK_MAPPINGS_DIR",
        "Folder of declarative mapping files, one <source>.json per "
        "further webhook source; relative paths are read from the app's folder.",
        "webhook_mappings",
    ),
    Setting(
        "WEBHOOK_PUBLIC_BASE_URL",
        "The scheme and host senders call (https://<host>), for "
        "signatures over the URL (HubSpot v3) when the worker sees another one; empty: the URL "
        "of the request as received.",
        "",
    ),
    Setting(
        "WEBHOOK_DELIVERY_TABLE_NAME",
        "Table of received webhook deliveries by source and "
        "delivery id: a redelivery is acknowledged without being queued again.",
        "webhookdeliveries",
    ),
    Setting(
        "WEBHOOK_IDENTITY_TABLE_NAME",
        "Table mapping each sender's own customer id (keyed by a "
        "hash) to the email it last carried, so a sender's email change moves the customer.",
        "webhookidentities",
    ),
    # --- privacy ---------------------------------------------------------------------------------
    Setting(
        "EMAIL_HASH_KEY",
        "HMAC-SHA256 key that turns an email into the pseudonymous key used in "
        "logs, telemetry, dead letters and replay filters. A Key Vault reference in Azure; "
        "changing it changes every hash.",
        secret=True,
    ),
)

# Names read by the platform rather than by this code. Kept here so the parity test accounts for them.
PLATFORM_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "FUNCTIONS_WORKER_RUNTIME",
        "Set by Core Tools locally; Flex Consumption sets the runtime in functionAppConfig instead.",
        where="local",
    ),
    Setting(
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "Application Insights connection string; empty locally disables export.",
    ),
    Setting(
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "Authorization=AAD;ClientId=<identity>: Entra ingestion for Application Insights with local auth disabled.",
        where="azure",
    ),
    Setting(
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
        "Lets the Python worker configure OpenTelemetry export itself (host.json telemetryMode OpenTelemetry).",
        "true",
        where="azure",
    ),
    Setting(
        "PYTHON_THREADPOOL_THREAD_COUNT",
        "Worker threads for the plain-def functions; matched to the per-instance queue concurrency.",
        where="azure",
    ),
)

SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in APP_SETTINGS}


@dataclass(frozen=True)
class CommerceSettings:
    base_url: str
    oun: str
    api_version: str
    auth_scheme: str
    auth_mode: AuthMode
    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    client_certificate_path: str
    managed_identity_client_id: str
    server_resource_id: str
    static_dev_token: str = field(repr=False)
    connect_timeout: float
    read_timeout: float
    search_page_size: int

    @property
    def scope(self) -> str:
        return self.server_resource_id.rstrip("/") + "/.default"


@dataclass(frozen=True)
class MappingSettings:
    default_customer_type: int
    default_group: str
    default_currency: str
    default_language: str
    address_type: int
    default_country: str
    state_id_overrides: Mapping[str, Mapping[str, str]]
    invalid_field_policy: InvalidFieldPolicy
    phone_clear: PhoneClear = PhoneClear.KEEP


@dataclass(frozen=True)
class RetrySettings:
    base_delay: float
    max_delay: float
    max_age: float


@dataclass(frozen=True)
class Settings:
    storage_connection: str = field(repr=False)
    events_queue: str
    deadletter_table: str
    deadletter_retention_days: int
    ledger_table: str
    ledger_lease_seconds: float
    retry: RetrySettings
    commerce_max_concurrency: int
    queue_monitor_schedule: str
    commerce: CommerceSettings
    mapping: MappingSettings
    ingest_max_events: int
    ingest_max_body_bytes: int
    email_hash_key: bytes = field(repr=False)
    backfill_max_concurrency: int = 2

    @property
    def poison_queue(self) -> str:
        return f"{self.events_queue}-poison"

    @property
    def backfill_queue(self) -> str:
        """The initial load's own queue (``shared.usecases.backfill``), named after the event queue like the
        poison queue, so the trigger's binding needs no setting of its own."""
        return f"{self.events_queue}-backfill"

    @property
    def backfill_poison_queue(self) -> str:
        return f"{self.backfill_queue}-poison"


_AUTH_MODE_REQUIRES: dict[AuthMode, tuple[str, ...]] = {
    AuthMode.CLIENT_SECRET: (
        "COMMERCE_TENANT_ID",
        "COMMERCE_CLIENT_ID",
        "COMMERCE_CLIENT_SECRET",
        "COMMERCE_SERVER_RESOURCE_ID",
    ),
    AuthMode.CERTIFICATE: (
        "COMMERCE_TENANT_ID",
        "COMMERCE_CLIENT_ID",
        "COMMERCE_CLIENT_CERTIFICATE_PATH",
        "COMMERCE_SERVER_RESOURCE_ID",
    ),
    AuthMode.MANAGED_IDENTITY: ("COMMERCE_MANAGED_IDENTITY_CLIENT_ID", "COMMERCE_SERVER_RESOURCE_ID"),
    AuthMode.WORKLOAD_IDENTITY: (
        "COMMERCE_TENANT_ID",
        "COMMERCE_CLIENT_ID",
        "COMMERCE_MANAGED_IDENTITY_CLIENT_ID",
        "COMMERCE_SERVER_RESOURCE_ID",
    ),
    AuthMode.STATIC_DEV_TOKEN: ("COMMERCE_STATIC_DEV_TOKEN",),
}


def read_setting(env: Mapping[str, str], name: str) -> str:
    """One setting's value or its registry default, for commands that need only a few settings."""
    value = (env.get(name) or "").strip()
    return value or (SETTINGS_BY_NAME[name].default or "")


def storage_configured(env: Mapping[str, str]) -> bool:
    return _storage_connection(env) is not None


def _storage_connection(env: Mapping[str, str]) -> str | None:
    """The connection string, or a marker for the identity-based form (``AzureWebJobsStorage__*``)."""
    value = env.get("AzureWebJobsStorage", "").strip()
    if value:
        return value
    if any(k.startswith("AzureWebJobsStorage__") and env[k].strip() for k in env):
        return "identity"
    return None


def load_settings(env: Mapping[str, str]) -> Settings:
    """Read and check every app setting. Raises ``SettingsError`` listing every problem at once."""
    problems: list[str] = []

    def get(name: str) -> str:
        value = env.get(name)
        if value is None or value.strip() == "":
            return SETTINGS_BY_NAME[name].default or ""
        return value.strip()

    def required(name: str) -> str:
        value = get(name)
        if not value:
            problems.append(f"{name} is required ({SETTINGS_BY_NAME[name].description})")
        return value

    def number(name: str, kind: type[_Number], low: float, high: float) -> _Number:
        raw = get(name)
        try:
            value = kind(raw)
        except ValueError:
            problems.append(f"{name} must be a number, got {raw!r}")
            return kind(SETTINGS_BY_NAME[name].default or 0)
        if not low <= value <= high:
            problems.append(f"{name} must be between {low} and {high}, got {value}")
        return value

    def choice(name: str, enum: type[_Choice]) -> _Choice | None:
        raw = required(name)
        for member in enum:
            if raw.lower() == member.value:
                return member
        if raw:
            allowed = ", ".join(m.value for m in enum)
            problems.append(f"{name} must be one of {allowed}, got {raw!r}")
        return None

    for setting in APP_SETTINGS:
        if (env.get(setting.name) or "").strip().startswith("@Microsoft.KeyVault("):
            # App Service passes an unresolved reference through as its own text.
            problems.append(
                f"{setting.name} is an unresolved Key Vault reference: check the "
                "identity's Key Vault Secrets User role and the secret's name"
            )

    storage = _storage_connection(env)
    if storage is None:
        problems.append(
            "AzureWebJobsStorage is required (a connection string, or the "
            "identity-based AzureWebJobsStorage__* settings)"
        )

    base_url = required("COMMERCE_BASE_URL").rstrip("/")
    if base_url and not base_url.startswith(("https://", "http://")):
        problems.append(f"COMMERCE_BASE_URL must be an http(s) URL, got {base_url!r}")
    scheme = get("COMMERCE_AUTH_SCHEME")
    if scheme.lower() not in ("id_token", "bearer"):
        problems.append(f"COMMERCE_AUTH_SCHEME must be id_token or Bearer, got {scheme!r}")
    scheme = "Bearer" if scheme.lower() == "bearer" else "id_token"

    mode = choice("COMMERCE_AUTH_MODE", AuthMode)
    if mode is not None:
        missing = [n for n in _AUTH_MODE_REQUIRES[mode] if not get(n)]
        if missing:
            problems.append(f"COMMERCE_AUTH_MODE={mode.value} needs {', '.join(missing)}")

    overrides_raw = get("STATE_ID_OVERRIDES")
    overrides: dict[str, dict[str, str]] = {}
    try:
        parsed = json.loads(overrides_raw)
        if not isinstance(parsed, dict) or not all(
            isinstance(v, dict) and all(isinstance(x, str) for x in v.values()) for v in parsed.values()
        ):
            raise ValueError
        overrides = {k.upper(): {c.upper(): s for c, s in v.items()} for k, v in parsed.items()}
    except ValueError:
        problems.append('STATE_ID_OVERRIDES must be a JSON object like {"GBR": {"GB-ENG": "ENG"}}')

    policy = choice("INVALID_OPTIONAL_FIELDS", InvalidFieldPolicy)
    default_country = get("DEFAULT_COUNTRY").upper()
    if default_country and (len(default_country) != 2 or not default_country.isalpha()):
        problems.append(f"DEFAULT_COUNTRY must be an ISO 3166-1 alpha-2 code, got {default_country!r}")

    hash_key = required("EMAIL_HASH_KEY")
    if hash_key and len(hash_key) < 16:
        problems.append("EMAIL_HASH_KEY must be at least 16 characters")

    commerce = CommerceSettings(
        base_url=base_url,
        oun=required("COMMERCE_OUN"),
        api_version=get("COMMERCE_API_VERSION"),
        auth_scheme=scheme,
        auth_mode=mode or AuthMode.STATIC_DEV_TOKEN,
        tenant_id=get("COMMERCE_TENANT_ID"),
        client_id=get("COMMERCE_CLIENT_ID"),
        client_secret=get("COMMERCE_CLIENT_SECRET"),
        client_certificate_path=get("COMMERCE_CLIENT_CERTIFICATE_PATH"),
        managed_identity_client_id=get("COMMERCE_MANAGED_IDENTITY_CLIENT_ID"),
        server_resource_id=get("COMMERCE_SERVER_RESOURCE_ID"),
        static_dev_token=get("COMMERCE_STATIC_DEV_TOKEN"),
        connect_timeout=number("COMMERCE_CONNECT_TIMEOUT_SECONDS", float, 0.1, 60),
        read_timeout=number("COMMERCE_READ_TIMEOUT_SECONDS", float, 0.1, 600),
        search_page_size=number("COMMERCE_SEARCH_PAGE_SIZE", int, 1, 1000),
    )
    lease_seconds = number("LEDGER_LEASE_SECONDS", float, 1, 3600)
    call_budget = commerce.connect_timeout + commerce.read_timeout
    # A write starts only with 2 x the call budget left on the lease, checked again after renewing it:
    # at exactly 2 x, the renewal's own time would leave too little, and every renewed write defer.
    minimum = 2 * call_budget + LEASE_RENEWAL_MARGIN_SECONDS
    if lease_seconds < minimum:
        problems.append(
            f"LEDGER_LEASE_SECONDS must be at least twice COMMERCE_CONNECT_TIMEOUT_SECONDS + "
            f"COMMERCE_READ_TIMEOUT_SECONDS, plus {LEASE_RENEWAL_MARGIN_SECONDS:g} s for "
            f"renewing it ({minimum:g}), got {lease_seconds:g}"
        )
    mapping = MappingSettings(
        default_customer_type=number("CUSTOMER_DEFAULT_TYPE", int, 1, 2),
        default_group=get("CUSTOMER_DEFAULT_GROUP"),
        default_currency=get("CUSTOMER_DEFAULT_CURRENCY").upper(),
        default_language=get("CUSTOMER_DEFAULT_LANGUAGE"),
        address_type=number("CUSTOMER_ADDRESS_TYPE", int, 0, 10),
        default_country=default_country,
        state_id_overrides=overrides,
        invalid_field_policy=policy or InvalidFieldPolicy.REJECT,
        phone_clear=choice("PHONE_CLEAR_CONTACT", PhoneClear) or PhoneClear.KEEP,
    )
    settings = Settings(
        storage_connection=storage or "",
        events_queue=get("EVENTS_QUEUE_NAME"),
        deadletter_table=get("DEADLETTER_TABLE_NAME"),
        deadletter_retention_days=number("DEADLETTER_RETENTION_DAYS", int, 1, 3650),
        ledger_table=get("LEDGER_TABLE_NAME"),
        ledger_lease_seconds=lease_seconds,
        retry=RetrySettings(
            base_delay=number("RETRY_BASE_DELAY_SECONDS", float, 1, 3600),
            # A queue message can stay invisible for at most 7 days.
            max_delay=number("RETRY_MAX_DELAY_SECONDS", float, 1, 7 * 24 * 3600),
            max_age=number("RETRY_MAX_AGE_SECONDS", float, 1, 30 * 24 * 3600),
        ),
        commerce_max_concurrency=number("COMMERCE_MAX_CONCURRENCY", int, 1, 256),
        queue_monitor_schedule=get("QUEUE_MONITOR_SCHEDULE"),
        commerce=commerce,
        mapping=mapping,
        ingest_max_events=number("INGEST_MAX_EVENTS", int, 1, 10000),
        ingest_max_body_bytes=number("INGEST_MAX_BODY_BYTES", int, 1024, 100 * 1024 * 1024),
        email_hash_key=hash_key.encode("utf-8"),
        backfill_max_concurrency=number("BACKFILL_MAX_CONCURRENCY", int, 1, 256),
    )
    if problems:
        raise SettingsError(problems)
    return settings
