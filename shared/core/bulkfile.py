"""Customer files for the operator tools (``tools.backfill``, ``tools.dryrun``, ``tools.duplicates``).

Three kinds of file, each read one record at a time (memory does not grow with the file):

- **Shopify's customer export** (CSV with ``Customer ID``, ``First Name``, ``Email``... columns);
- **JSON Lines** of canonical events (``docs/event-contract.md``), one event per line;
- **any other CSV**, through a column mapping: ``target=Column`` pairs (targets as in the webhook
  mapping files: ``customer.email``, ``customer.address.city``...), or the ``fields`` / ``defaults`` of
  a webhook mapping file (``docs/sources.md``) whose paths are column names.

Every record becomes a raw contract event with a **deterministic** ``eventId`` (the file's content
digest and the record number, so a resumed run sends the same ids again and the ledger skips what it
already applied) and ``occurredAt`` = the export time the operator gives (``--as-of``): an edit made in
the marketing system after the export is newer and always wins. The event is then validated by
``shared.core.validation`` exactly as ingest validates it. Pure apart from reading the file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.core.fields import BOOLEANS, MAPPABLE

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

FORMATS = ("auto", "shopify", "jsonl", "csv")
SOURCE = "backfill"
ID_PREFIX = "bf"

# Shopify's customer export: the columns read, by contract target. The others (Customer ID, Accepts
# SMS Marketing, Total Spent, Total Orders, Note, Tax Exempt, Tags) have no place in the contract.
SHOPIFY_COLUMNS: Mapping[str, str] = {
    "customer.email": "Email",
    "customer.firstName": "First Name",
    "customer.lastName": "Last Name",
    "customer.isOptedInMarketing": "Accepts Email Marketing",
    "customer.phone": "Phone",
    "customer.address.name": "Default Address Company",
    "customer.address.street": "Default Address Address1",
    "customer.address.city": "Default Address City",
    "customer.address.state": "Default Address Province Code",
    "customer.address.country": "Default Address Country Code",
    "customer.address.postalCode": "Default Address Zip",
}
SHOPIFY_ADDRESS2 = "Default Address Address2"  # appended to the street, after ", "
SHOPIFY_ADDRESS_PHONE = "Default Address Phone"  # the phone when Phone is empty
SHOPIFY_SIGNATURE = ("Customer ID", "Email", "Accepts Email Marketing")
_TRUE, _FALSE = {"true", "yes", "y", "1"}, {"false", "no", "n", "0"}
TARGETS = MAPPABLE  # the columns a file may be mapped to: every contract field (shared.core.fields)
BOOLEAN_TARGETS = BOOLEANS


class FileFormatError(ValueError):
    """The file or the mapping cannot be read at all (not one record's problem)."""


@dataclass(frozen=True)
class Record:
    """One record of the file: its number (1 = the first customer, after any header), the raw event
    built from it (None when the record itself is unreadable) and why not."""

    row: int
    event: dict[str, Any] | None
    problem: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)  # contract pointer -> the column it came from


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of the file's bytes: its content identity (a renamed or copied file keeps it)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def event_id(digest: str, row: int) -> str:
    """The deterministic id of record ``row`` of the file with content digest ``digest``. Zero-padded,
    so among one file's records for the same email (same ``occurredAt``) the later record wins the
    ordering tie, as it would in the export."""
    return f"{ID_PREFIX}-{digest[:16]}-{row:010d}"


def as_of_text(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def parse_as_of(text: str) -> datetime:
    """``--as-of``: ISO 8601; a value without an offset is read as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- column mappings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnMapping:
    """Contract target -> column name, plus constant defaults for targets without a value."""

    columns: Mapping[str, str]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    maps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # target -> value translation

    def check(self) -> None:
        for target in [*self.columns, *self.defaults]:
            if target not in TARGETS:
                raise FileFormatError(f"{target!r} is not a contract field; targets: {', '.join(TARGETS)}")
        if "customer.email" not in self.columns and "customer.email" not in self.defaults:
            raise FileFormatError("the mapping needs customer.email=<column>")


def mapping_from_pairs(pairs: list[str]) -> ColumnMapping:
    """``--map customer.email=E-mail --map customer.firstName=Given name`` (the column after the first ``=``)."""
    columns: dict[str, str] = {}
    for pair in pairs:
        target, sep, column = pair.partition("=")
        if not sep or not column:
            raise FileFormatError(f"--map {pair!r}: expected target=Column")
        columns[target.strip()] = column
    mapping = ColumnMapping(columns)
    mapping.check()
    return mapping


def mapping_from_file(text: str) -> ColumnMapping:
    """The ``fields`` and ``defaults`` of a webhook mapping file (``docs/sources.md``), each path a column
    name (``{"path": "Opt in", "map": {"y": true}}`` is accepted too). Signature, records and the event
    id / time targets are ignored: the file gives the records, and ids and times are the backfill's own."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise FileFormatError(f"mapping file: not JSON ({error.msg}, line {error.lineno})") from None
    except ValueError as error:  # valid syntax, but an integer longer than Python's digit limit
        raise FileFormatError(f"mapping file: not JSON ({error})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("fields"), dict):
        raise FileFormatError("mapping file: needs an object with fields: {target: column}")
    columns: dict[str, str] = {}
    maps: dict[str, dict[str, Any]] = {}
    for target, spec in raw["fields"].items():
        if target in ("eventId", "occurredAt", "eventType", "senderCustomerId"):
            continue
        if isinstance(spec, dict):
            path = spec.get("path")
            path = path[0] if isinstance(path, list) and path else path
            if spec.get("map"):
                maps[target] = {str(k).lower(): v for k, v in spec["map"].items()}
            spec = path
        if not isinstance(spec, str):
            raise FileFormatError(f"mapping file: fields.{target} must name a column")
        columns[target] = spec
    defaults = {k: v for k, v in (raw.get("defaults") or {}).items() if k.startswith("customer.")}
    mapping = ColumnMapping(columns, defaults, maps)
    mapping.check()
    return mapping


# --- reading --------------------------------------------------------------------------------------


def detect_format(path: Path, requested: str = "auto") -> str:
    if requested != "auto":
        return requested
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return "jsonl"
    with path.open("r", encoding="utf-8-sig", newline="") as f:
        header = next(csv.reader(f), [])
    if all(column in header for column in SHOPIFY_SIGNATURE):
        return "shopify"
    return "csv"


class Progress:
    """Bytes of the file read so far (for a progress bar's share and ETA)."""

    def __init__(self) -> None:
        self.bytes = 0


class _Counting(io.RawIOBase):
    def __init__(self, raw: io.BufferedReader, progress: Progress):
        self._raw, self._progress = raw, progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        n = self._raw.readinto(buffer)
        self._progress.bytes += n or 0
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open_text(path: Path, progress: Progress | None, newline: str | None = None) -> io.TextIOWrapper:
    raw = path.open("rb")
    stream = io.BufferedReader(_Counting(raw, progress)) if progress is not None else raw
    return io.TextIOWrapper(stream, encoding="utf-8-sig", newline=newline)


def read_records(
    path: Path,
    *,
    as_of: datetime,
    digest: str,
    fmt: str = "auto",
    mapping: ColumnMapping | None = None,
    start_after: int = 0,
    progress: Progress | None = None,
) -> Iterator[Record]:
    """Every record of the file as a raw contract event, in file order. Records up to ``start_after``
    are counted but not built (a resumed run). ``progress`` counts the bytes read."""
    fmt = detect_format(path, fmt)
    occurred = as_of_text(as_of)
    if fmt == "jsonl":
        yield from _jsonl(path, occurred, digest, start_after, progress)
        return
    if fmt == "shopify":
        mapping = ColumnMapping(SHOPIFY_COLUMNS)
    elif mapping is None:
        raise FileFormatError(
            "a CSV that is not a Shopify export needs a column mapping (--map target=Column, or --mapping FILE)"
        )
    yield from _csv(path, mapping, occurred, digest, start_after, shopify=fmt == "shopify", progress=progress)


def _envelope(digest: str, row: int, occurred: str, customer: dict[str, Any]) -> dict[str, Any]:
    return {
        "specVersion": "1.0",
        "eventId": event_id(digest, row),
        "eventType": "customer.updated",
        "occurredAt": occurred,
        "source": SOURCE,
        "customer": customer,
    }


def _jsonl(path: Path, occurred: str, digest: str, start_after: int, progress: Progress | None) -> Iterator[Record]:
    with _open_text(path, progress) as f:
        row = 0
        for line in f:
            if not line.strip():
                continue
            row += 1
            if row <= start_after:
                continue
            try:
                data = json.loads(line)
            except ValueError:
                yield Record(row, None, "not a JSON object")
                continue
            if not isinstance(data, dict) or not isinstance(data.get("customer"), dict):
                yield Record(row, None, "not an event: needs a customer object")
                continue
            # The backfill's own id and time replace the line's: resumable, and older than any live edit.
            yield Record(
                row,
                {
                    **data,
                    "eventId": event_id(digest, row),
                    "occurredAt": occurred,
                    "source": data.get("source") or SOURCE,
                },
            )


def _cell(value: str | None, target: str, maps: Mapping[str, Mapping[str, Any]]) -> Any:
    if value is None:
        return None
    text = value.strip()
    if text.startswith("'") and target in ("customer.phone", "customer.address.postalCode"):
        text = text[1:]  # spreadsheet exports keep leading zeros and '+' with a quote
    if not text:
        return None  # an empty cell is absent: the contract reads it as "unchanged"
    table = maps.get(target)
    if table:
        return table.get(text.lower(), text)
    if target in BOOLEAN_TARGETS:
        low = text.lower()
        return True if low in _TRUE else False if low in _FALSE else text
    return text


def _csv(
    path: Path,
    mapping: ColumnMapping,
    occurred: str,
    digest: str,
    start_after: int,
    shopify: bool,
    progress: Progress | None = None,
) -> Iterator[Record]:
    with _open_text(path, progress, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return
        index = {name.strip(): i for i, name in enumerate(header)}
        missing = [c for c in mapping.columns.values() if c not in index]
        if missing:
            raise FileFormatError(f"column(s) not in the file's header: {', '.join(missing)}")
        columns = {_pointer(t): c for t, c in mapping.columns.items()}
        if shopify:
            columns["/customer/address/street"] = "Default Address Address1 + Address2"
        picks = [(t, index[c]) for t, c in mapping.columns.items()]
        address2 = index.get(SHOPIFY_ADDRESS2) if shopify else None
        address_phone = index.get(SHOPIFY_ADDRESS_PHONE) if shopify else None
        width = len(header)
        for row, cells in enumerate(reader, start=1):
            if row <= start_after:
                continue
            if not any(c.strip() for c in cells):
                yield Record(row, None, "empty row", columns)
                continue
            if len(cells) < width:
                cells = cells + [""] * (width - len(cells))
            values = {t: _cell(cells[i], t, mapping.maps) for t, i in picks}
            if shopify:
                second = _cell(cells[address2], "", {}) if address2 is not None else None
                if second:
                    first = values.get("customer.address.street")
                    values["customer.address.street"] = f"{first}, {second}" if first else second
                if values.get("customer.phone") is None and address_phone is not None:
                    values["customer.phone"] = _cell(cells[address_phone], "customer.phone", {})
            for target, constant in mapping.defaults.items():
                if values.get(target) is None:
                    values[target] = constant
            yield Record(row, _envelope(digest, row, occurred, _nest(values)), None, columns)


def _pointer(target: str) -> str:
    return "/" + target.replace(".", "/")


def _nest(values: Mapping[str, Any]) -> dict[str, Any]:
    customer: dict[str, Any] = {}
    address: dict[str, Any] = {}
    for target, value in values.items():
        if value is None:
            continue
        parts = target.split(".")
        if len(parts) == 3:
            address[parts[2]] = value
        else:
            customer[parts[1]] = value
    if address:
        customer["address"] = address
    return customer


@dataclass(frozen=True)
class Checked:
    """A record after validation: the normalised event, or the problems that refuse it."""

    row: int
    event: Any  # shared.core.contract.NormalisedEvent | None
    problems: tuple[tuple[str, str, str], ...] = ()  # (field, reason code, message), never the value

    @property
    def ok(self) -> bool:
        return self.event is not None


def check(record: Record, *, now: datetime, settings: Any, hash_key: bytes) -> Checked:
    """Validate one record as ingest validates an event (``shared.core.validation.validate_event``). A
    problem's field is the column it came from when the file is a CSV, else the JSON pointer."""
    from shared.core.validation import validate_event

    if record.event is None:
        return Checked(record.row, None, (("", "unreadable", record.problem or "unreadable record"),))
    result = validate_event(record.event, now=now, settings=settings, hash_key=hash_key, index=record.row)
    if result.ok:
        return Checked(record.row, result.event)
    problems = tuple((record.columns.get(p.pointer, p.pointer), p.code, p.message) for p in result.errors)
    if result.omitted:
        problems += (("", "more_problems", f"{result.omitted} more problem(s) not listed"),)
    return Checked(record.row, None, problems)


def rejects_header() -> list[str]:
    return ["row", "field", "reason", "message"]


def csv_line(values: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()
