"""Further webhook sources described by a mapping file instead of code: ``<source>.json`` in
``WEBHOOK_MAPPINGS_DIR`` is served at ``POST /api/webhooks/<source>``.

A mapping file names the signature (one of the built-in schemes, or an HMAC header with its
algorithm, encoding and prefix), where the records are in the body, which records apply, and for each
contract field the path of its value in a record, with constant defaults. For example (docs/sources.md
has the reference)::

    {
      "signature": {"scheme": "hmac", "header": "X-Signature", "algorithm": "sha1", "encoding": "hex"},
      "records": "",
      "when": {"path": "type", "in": ["identify"]},
      "deliveryId": {"path": "messageId"},
      "fields": {
        "eventId": "messageId",
        "occurredAt": {"path": ["timestamp", "sentAt"]},
        "senderCustomerId": "userId",
        "customer.email": "traits.email",
        "customer.isOptedInMarketing": {"path": "traits.unsubscribed", "map": {"true": false}}
      },
      "defaults": {"eventType": "customer.updated"}
    }

A path is dot-separated keys (a number indexes an array; a key with a dot is written ``a["b.c"]``);
a list of paths takes the first one present. ``format`` is ``text`` (the default: strings and numbers,
empty means absent), ``epoch`` (seconds or milliseconds to ISO 8601), ``boolean`` (true/false, "yes",
"1"...) or ``raw`` (the JSON value as it is). ``map`` translates values (matched as lower-case text)
after the format. A target left without a value is absent, which the contract reads as "unchanged".
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.core.fields import MAPPABLE
from shared.core.sources.base import (
    CanonicalEvent,
    Translation,
    Unreadable,
    WebhookRequest,
    digest,
    epoch_to_iso,
    event_id,
    text_or_none,
)
from shared.core.sources.config import SourceOptions
from shared.core.sources.hubspot import signed_uri
from shared.core.sources.signatures import (
    HmacHeaderScheme,
    Verified,
    verify_hmac_header,
    verify_hubspot_v3,
    verify_klaviyo,
    verify_shopify,
    verify_standard,
)

SCHEMES = ("standard", "shopify", "hubspot-v3", "klaviyo", "hmac")
FORMATS = ("text", "epoch", "boolean", "raw")
TOP_KEYS = {"description", "signature", "records", "when", "deliveryId", "fields", "defaults"}
# The envelope's own fields, then every contract field (shared.core.fields).
TARGETS = ("eventId", "occurredAt", "eventType", "senderCustomerId", *MAPPABLE)
_TRUE, _FALSE = {"true", "yes", "y", "1", "on"}, {"false", "no", "n", "0", "off"}
_SEGMENT = re.compile(r'\["((?:[^"\\]|\\.)*)"\]|([^.\[\]]+)')


class MappingError(ValueError):
    """The mapping file is not usable; the message says where (start-up fails, naming the file)."""


def parse_path(text: str) -> tuple[str | int, ...]:
    if not isinstance(text, str):
        raise MappingError("a path must be a string")
    if text == "":
        return ()
    steps: list[str | int] = []
    pos = 0
    for match in _SEGMENT.finditer(text):
        if match.start() != pos and text[pos : match.start()] != ".":
            raise MappingError(f"path {text!r} is not dot-separated keys")
        quoted, plain = match.group(1), match.group(2)
        steps.append(json.loads(f'"{quoted}"') if quoted is not None else int(plain) if plain.isdigit() else plain)
        pos = match.end()
    if pos != len(text):
        raise MappingError(f"path {text!r} is not dot-separated keys")
    return tuple(steps)


def _follow(value: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        if isinstance(value, dict):
            value = value.get(str(step))
        elif isinstance(value, list) and isinstance(step, int) and step < len(value):
            value = value[step]
        else:
            return None
    return value


@dataclass(frozen=True)
class FieldSpec:
    paths: tuple[tuple[str | int, ...], ...]
    format: str = "text"
    mapping: dict[str, Any] = field(default_factory=dict)

    def read(self, record: Any) -> Any:
        for path in self.paths:
            value = _convert(_follow(record, path), self.format)
            if value is not None:
                if self.mapping:
                    key = json.dumps(value) if not isinstance(value, str) else value
                    value = self.mapping.get(key.lower(), value)
                return value
        return None


def _convert(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "raw":
        return value
    if kind == "epoch":
        return epoch_to_iso(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        return True if text in _TRUE else False if text in _FALSE else None
    if isinstance(value, bool):
        return value
    return text_or_none(value)


def _field_spec(target: str, spec: Any) -> FieldSpec:
    if isinstance(spec, str):
        return FieldSpec((parse_path(spec),))
    if not isinstance(spec, dict) or "path" not in spec or set(spec) - {"path", "format", "map"}:
        raise MappingError(f"fields.{target}: a path, or {{\"path\", \"format\", \"map\"}}")
    paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
    kind = spec.get("format", "text")
    if kind not in FORMATS:
        raise MappingError(f"fields.{target}: format must be one of {', '.join(FORMATS)}")
    mapping = spec.get("map") or {}
    if not isinstance(mapping, dict):
        raise MappingError(f"fields.{target}: map must be an object")
    return FieldSpec(tuple(parse_path(p) for p in paths), kind, {str(k).lower(): v for k, v in mapping.items()})


@dataclass(frozen=True)
class MappingSpec:
    source: str
    scheme: str
    hmac: HmacHeaderScheme | None
    records: tuple[str | int, ...]
    when_path: tuple[str | int, ...] | None
    when_in: tuple[str, ...]
    delivery_header: str | None
    delivery_path: tuple[str | int, ...] | None
    fields: dict[str, FieldSpec]
    defaults: dict[str, Any]


def load_mapping(source: str, text: str) -> MappingSpec:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise MappingError(f"not JSON ({error.msg}, line {error.lineno})") from None
    except ValueError as error:  # valid syntax, but an integer longer than Python's digit limit
        raise MappingError(f"not JSON ({error})") from None
    if not isinstance(raw, dict):
        raise MappingError("a mapping file is a JSON object")
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise MappingError(f"unknown keys {sorted(unknown)}; known: {sorted(TOP_KEYS)}")
    signature = raw.get("signature")
    if not isinstance(signature, dict) or signature.get("scheme") not in SCHEMES:
        raise MappingError(f"signature.scheme must be one of {', '.join(SCHEMES)}")
    scheme = signature["scheme"]
    hmac_scheme = None
    if scheme == "hmac":
        try:
            hmac_scheme = HmacHeaderScheme(
                header=str(signature.get("header") or ""),
                algorithm=str(signature.get("algorithm", "sha256")).lower(),
                encoding=str(signature.get("encoding", "base64")).lower(),
                prefix=str(signature.get("prefix", "")),
            )
        except ValueError as error:
            raise MappingError(f"signature: {error}") from None
    elif set(signature) != {"scheme"}:
        raise MappingError(f"signature: the {scheme} scheme takes no other keys")
    fields = raw.get("fields")
    if not isinstance(fields, dict):
        raise MappingError("fields must be an object of target -> path")
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise MappingError("defaults must be an object of target -> constant")
    for target in [*fields, *defaults]:
        if target not in TARGETS:
            raise MappingError(f"{target!r} is not a contract field; targets: {', '.join(TARGETS)}")
    for required in ("eventId", "occurredAt", "customer.email"):
        if required not in fields and required not in defaults:
            if required == "customer.email" and "senderCustomerId" in fields:
                continue  # the email can come from the sender-id map
            raise MappingError(f"fields.{required} is required")
    if "eventId" not in fields:
        raise MappingError("fields.eventId is required (a constant cannot identify events)")
    when = raw.get("when")
    when_path: tuple[str | int, ...] | None = None
    when_in: tuple[str, ...] = ()
    if when is not None:
        if not isinstance(when, dict) or set(when) != {"path", "in"} or not isinstance(when["in"], list):
            raise MappingError('when must be {"path": ..., "in": [values]}')
        when_path, when_in = parse_path(when["path"]), tuple(str(v) for v in when["in"])
    delivery = raw.get("deliveryId")
    header = path = None
    if delivery is not None:
        if not isinstance(delivery, dict) or len(delivery) != 1 or not set(delivery) <= {"header", "path"}:
            raise MappingError('deliveryId must be {"header": name} or {"path": path}')
        header = delivery.get("header")
        path = parse_path(delivery["path"]) if "path" in delivery else None
    records = raw.get("records", "")
    return MappingSpec(
        source=source,
        scheme=scheme,
        hmac=hmac_scheme,
        records=parse_path(records),
        when_path=when_path,
        when_in=when_in,
        delivery_header=header,
        delivery_path=path,
        fields={t: _field_spec(t, s) for t, s in fields.items()},
        defaults=dict(defaults),
    )


class DeclarativeAdapter:
    def __init__(self, spec: MappingSpec):
        self.spec = spec
        self.name = spec.source
        self.scheme = spec.scheme

    def verify(
        self,
        request: WebhookRequest,
        secrets: Sequence[str],
        now: datetime,
        options: SourceOptions,
        public_base_url: str,
    ) -> Verified:
        body, headers, scheme = request.body, request.headers, self.spec.scheme
        if scheme == "standard":
            return verify_standard(body, headers, secrets, now, options.tolerance_seconds)
        if scheme == "shopify":
            return verify_shopify(body, headers, secrets)
        if scheme == "hubspot-v3":
            return verify_hubspot_v3(
                body,
                headers,
                secrets,
                method=request.method,
                now=now,
                uri=signed_uri(request.url, public_base_url),
                tolerance=options.tolerance_seconds,
            )
        if scheme == "klaviyo":
            return verify_klaviyo(body, headers, secrets, now)
        assert self.spec.hmac is not None
        return verify_hmac_header(body, headers, secrets, self.spec.hmac)

    def _records(self, body: Any) -> list[Any]:
        found = _follow(body, self.spec.records) if self.spec.records else body
        if isinstance(found, list):
            return found
        if isinstance(found, dict):
            return [found]
        raise Unreadable("records_not_found")

    def _applies(self, record: Any) -> bool:
        if self.spec.when_path is None:
            return True
        value = _follow(record, self.spec.when_path)
        text = json.dumps(value) if not isinstance(value, str) else value
        return text in self.spec.when_in

    def _value(self, record: Any, target: str) -> Any:
        spec = self.spec.fields.get(target)
        value = spec.read(record) if spec else None
        return self.spec.defaults.get(target) if value is None else value

    def delivery_key(self, request: WebhookRequest, verified: Verified, body: Any) -> str:
        if self.spec.delivery_header and request.headers.get(self.spec.delivery_header):
            return request.headers.get(self.spec.delivery_header)  # type: ignore[return-value]
        if self.spec.delivery_path is not None:
            found = text_or_none(_follow(body, self.spec.delivery_path))
            if found:
                return found
        if verified.delivery_id:
            return verified.delivery_id
        ids = [text_or_none(self._value(r, "eventId")) for r in self._records(body)]
        return digest(*filter(None, ids)) if any(ids) else digest(request.body)

    def translate(self, request: WebhookRequest, verified: Verified, body: Any) -> Translation:
        translation = Translation(topic=self.name)
        for index, record in enumerate(self._records(body)):
            if not self._applies(record):
                value = _follow(record, self.spec.when_path or ())
                translation.ignored.append(str(value)[:64] if value is not None else "(not applicable)")
                continue
            given_id = self._value(record, "eventId")
            event: dict[str, Any] = {
                "specVersion": "1.0",
                "source": self.name,
                "eventId": event_id(self.name, given_id) or f"{self.name}:{digest(request.body, str(index))}",
            }
            customer: dict[str, Any] = {}
            for target in TARGETS:
                if target in ("eventId", "senderCustomerId"):
                    continue
                value = self._value(record, target)
                if value is None:
                    continue
                if target.startswith("customer.address."):
                    customer.setdefault("address", {})[target.removeprefix("customer.address.")] = value
                elif target.startswith("customer."):
                    customer[target.removeprefix("customer.")] = value
                else:
                    event[target] = value
            event["customer"] = customer
            sender = text_or_none(self._value(record, "senderCustomerId"))
            translation.events.append(CanonicalEvent(event, sender_id=sender, topic=self.name))
        return translation
