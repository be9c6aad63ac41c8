"""The webhook sources' settings, read once at start-up: secrets, per-source options, mapping files.

``load_webhook_config`` is pure apart from reading the mapping folder, and raises ``SettingsError``
naming every problem at once (never a value: the secrets setting is reported by name only).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.core.contract import CreateDefaults
from shared.core.fields import DEFAULTED, FIELD
from shared.core.normalise.invalid import Invalid
from shared.core.settings import InvalidFieldPolicy, MappingSettings, Settings, SettingsError, read_setting
from shared.core.sources.signatures import DEFAULT_TOLERANCE_SECONDS, standard_secret

APP_ROOT = Path(__file__).resolve().parents[3]
SOURCE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
BUILT_IN = ("shopify", "klaviyo", "hubspot", "standard")
OPTION_KEYS = {"createDefaults", "invalidOptionalFields", "shopDomains", "toleranceSeconds"}
DEFAULT_KEYS = DEFAULTED


@dataclass(frozen=True)
class SourceOptions:
    create_defaults: CreateDefaults | None = None
    invalid_field_policy: InvalidFieldPolicy | None = None  # None: INVALID_OPTIONAL_FIELDS
    shop_domains: frozenset[str] = frozenset()  # Shopify: empty accepts any shop the secret signs for
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS

    def mapping(self, base: MappingSettings) -> MappingSettings:
        """The global mapping settings with this source's policy."""
        if self.invalid_field_policy is None:
            return base
        return dataclasses.replace(base, invalid_field_policy=self.invalid_field_policy)


@dataclass(frozen=True)
class WebhookConfig:
    secrets: Mapping[str, tuple[str, ...]] = field(repr=False, default_factory=dict)
    options: Mapping[str, SourceOptions] = field(default_factory=dict)
    mappings: Mapping[str, Any] = field(default_factory=dict)  # source -> declarative.MappingSpec
    public_base_url: str = ""
    delivery_table: str = "webhookdeliveries"
    identity_table: str = "webhookidentities"

    def options_for(self, source: str) -> SourceOptions:
        return self.options.get(source, SourceOptions())

    def sources(self) -> list[str]:
        return sorted(set(BUILT_IN) | set(self.mappings))

    def all_secrets(self) -> list[str]:
        """Every configured secret (to mask them wherever text is logged)."""
        return [s for values in self.secrets.values() for s in values]


def _create_defaults(defaults: Mapping[str, Any]) -> CreateDefaults:
    """A source's createDefaults, each value normalised as the field it stands for (its table record)."""
    values: dict[str, Any] = {}
    for record in FIELD.values():  # in contract order, so the first problem named is always the same
        raw = defaults.get(record.name)
        if record.default and raw:
            assert record.normalise is not None  # every field with a create default has a normaliser
            values[record.attr] = record.normalise(str(raw), record.limit, datetime.now(UTC))
    return CreateDefaults(**values)


def _json_object(raw: str, name: str, problems: list[str]) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        problems.append(f"{name} must be a JSON object")
        return {}
    if not isinstance(value, dict):
        problems.append(f"{name} must be a JSON object")
        return {}
    return value


def _secrets(raw: str, problems: list[str]) -> dict[str, tuple[str, ...]]:
    parsed = _json_object(raw, "WEBHOOK_SECRETS", problems)
    out: dict[str, tuple[str, ...]] = {}
    for source, values in parsed.items():
        if isinstance(values, str):
            values = [values]
        if (
            not isinstance(source, str)
            or not SOURCE_NAME.match(source)
            or not isinstance(values, list)
            or not all(isinstance(v, str) and v.strip() for v in values)
        ):
            # Never the value: it is a secret. The source name is safe.
            problems.append(
                "WEBHOOK_SECRETS must map source names (a-z, 0-9, -) to a list of "
                f"non-empty secrets; check the entry for {str(source)[:32]!r}"
            )
            continue
        secrets = tuple(v.strip() for v in values)
        if source == "standard":
            try:
                for secret in secrets:
                    standard_secret(secret)
            except ValueError:
                problems.append(
                    "WEBHOOK_SECRETS: the standard source's secrets must be whsec_ followed "
                    "by base64 (as Standard Webhooks senders show them)"
                )
                continue
        out[source] = secrets
    return out


def _options(raw: str, problems: list[str]) -> dict[str, SourceOptions]:
    parsed = _json_object(raw, "WEBHOOK_SOURCE_OPTIONS", problems)
    out: dict[str, SourceOptions] = {}
    for source, value in parsed.items():
        where = f"WEBHOOK_SOURCE_OPTIONS[{str(source)[:32]!r}]"
        if not isinstance(value, dict) or not isinstance(source, str) or not SOURCE_NAME.match(source):
            problems.append(f"{where} must be an object keyed by a source name")
            continue
        unknown = set(value) - OPTION_KEYS
        if unknown:
            problems.append(f"{where} has unknown options {sorted(unknown)}; known: {sorted(OPTION_KEYS)}")
        defaults = value.get("createDefaults") or {}
        create = None
        if not isinstance(defaults, dict) or set(defaults) - DEFAULT_KEYS:
            problems.append(f"{where}.createDefaults may hold only {sorted(DEFAULT_KEYS)}")
        elif defaults:
            try:
                create = _create_defaults(defaults)
            except Invalid as problem:
                problems.append(f"{where}.createDefaults: {problem.message}")
        policy = None
        if value.get("invalidOptionalFields") is not None:
            try:
                policy = InvalidFieldPolicy(str(value["invalidOptionalFields"]).lower())
            except ValueError:
                problems.append(f"{where}.invalidOptionalFields must be reject or drop")
        domains = value.get("shopDomains") or []
        if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
            problems.append(f"{where}.shopDomains must be a list of shop domains (<shop>.myshopify.com)")
            domains = []
        tolerance = value.get("toleranceSeconds", DEFAULT_TOLERANCE_SECONDS)
        if not isinstance(tolerance, (int, float)) or not 30 <= tolerance <= 3600:
            problems.append(f"{where}.toleranceSeconds must be a number from 30 to 3600")
            tolerance = DEFAULT_TOLERANCE_SECONDS
        out[source] = SourceOptions(
            create_defaults=create,
            invalid_field_policy=policy,
            shop_domains=frozenset(d.strip().lower() for d in domains),
            tolerance_seconds=float(tolerance),
        )
    return out


def _mappings(folder: str, problems: list[str]) -> dict[str, Any]:
    from shared.core.sources.declarative import MappingError, load_mapping

    path = Path(folder)
    if not path.is_absolute():
        path = APP_ROOT / path
    if not path.is_dir():
        return {}  # no further sources
    out: dict[str, Any] = {}
    for file in sorted(path.glob("*.json")):
        name = file.stem
        if not SOURCE_NAME.match(name) or name in BUILT_IN:
            problems.append(
                f"WEBHOOK_MAPPINGS_DIR: {file.name}: the file name is the source name "
                f"(a-z, 0-9, -; not one of {', '.join(BUILT_IN)})"
            )
            continue
        try:
            out[name] = load_mapping(name, file.read_text(encoding="utf-8"))
        except (MappingError, ValueError, OSError) as error:
            problems.append(f"WEBHOOK_MAPPINGS_DIR: {file.name}: {error}")
    return out


def load_webhook_config(env: Mapping[str, str], settings: Settings | None = None) -> WebhookConfig:
    problems: list[str] = []
    raw_secrets = (env.get("WEBHOOK_SECRETS") or "").strip()
    secrets = {} if raw_secrets.startswith("@Microsoft.KeyVault(") else _secrets(raw_secrets, problems)
    options = _options(read_setting(env, "WEBHOOK_SOURCE_OPTIONS"), problems)
    mappings = _mappings(read_setting(env, "WEBHOOK_MAPPINGS_DIR"), problems)
    base = read_setting(env, "WEBHOOK_PUBLIC_BASE_URL").rstrip("/")
    if base and not re.match(r"^https?://[^/?#\s]+$", base):
        problems.append("WEBHOOK_PUBLIC_BASE_URL must be a scheme and host only, e.g. https://sync.example.com")
    if problems:
        raise SettingsError(problems)
    return WebhookConfig(
        secrets=secrets,
        options=options,
        mappings=mappings,
        public_base_url=base,
        delivery_table=read_setting(env, "WEBHOOK_DELIVERY_TABLE_NAME"),
        identity_table=read_setting(env, "WEBHOOK_IDENTITY_TABLE_NAME"),
    )
