"""shared/core/fields.py is the one declaration of the customer's fields: every model, list, group,
Commerce mapping and published schema is the table's, a plain field is named nowhere else, and the
docs agree with it."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from shared.core import contract, fields, ledger_rules, validation
from shared.core.commerce_bodies import create, groups
from shared.core.fields import ADDRESS, CUSTOMER, GROUP_NAMES, NESTED, NullMeans
from shared.core.settings import MappingSettings
from tests.support.commerce_documents import ADDRESS_PROPERTIES, CONTACT_PROPERTIES, CUSTOMER_PROPERTIES

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"customer": CUSTOMER, "address": ADDRESS}


def _own_fields(model: type[BaseModel], base: type[BaseModel]) -> list[str]:
    return [name for name in model.model_fields if name not in base.model_fields]


# --- one record per field, and the models are the tables -------------------------------------------


@pytest.mark.parametrize("table", TABLES.values(), ids=TABLES.keys())
def test_one_record_per_field(table):
    names = [f.name for f in table]
    attrs = [a for f in table for a in f.attrs]
    assert len(names) >= 9 and len(set(names)) == len(names)
    assert len(set(attrs)) == len(attrs)
    for f in table:
        assert re.fullmatch(r"[a-z][A-Za-z0-9]*", f.name), f.name
        assert f.attr == re.sub(r"(?<!^)(?=[A-Z])", "_", f.name).lower()
        assert f.limit is None or f.type is str, f.name
    # a customer field mapped generically is validated by the table too (not by hand)
    assert all(f.normalise is not None for f in CUSTOMER if f.scalar)


def test_the_published_models_are_the_tables():
    assert list(contract.CustomerIn.model_fields) == [f.name for f in CUSTOMER]
    assert list(contract.AddressIn.model_fields) == [f.name for f in ADDRESS]
    assert contract.CustomerIn.model_fields["address"].annotation.__args__[0] is contract.AddressIn
    assert validation.CUSTOMER_FIELDS == tuple(f.name for f in CUSTOMER)
    assert validation.ADDRESS_FIELDS == tuple(f.name for f in ADDRESS)


def test_the_queue_models_are_the_tables():
    event_base = contract.NormalisedEvent.__mro__[1]
    assert _own_fields(contract.NormalisedEvent, event_base) == [
        *(a for f in CUSTOMER for a in f.attrs),
        "create_defaults",
    ]
    assert list(contract.NormalisedAddress.model_fields) == [
        "present",
        *(a for f in ADDRESS if f.queued for a in f.attrs),
    ]
    assert list(contract.CreateDefaults.model_fields) == [f.attr for f in CUSTOMER if f.default]
    # what is required on the queue is what the contract requires
    for model, table in ((contract.NormalisedEvent, CUSTOMER), (contract.NormalisedAddress, ADDRESS)):
        for f in table:
            if f.queued:
                assert model.model_fields[f.attr].is_required() == (f.null is NullMeans.REQUIRED), f.name


def test_null_semantics_are_the_tables():
    everything = CUSTOMER + ADDRESS
    assert contract.CLEARABLE_CUSTOMER_FIELDS == {f.name for f in CUSTOMER if f.null is NullMeans.CLEAR}
    assert contract.CLEARABLE_ADDRESS_FIELDS == {f.name for f in ADDRESS if f.null is NullMeans.CLEAR}
    assert contract.NULL_MEANS_ABSENT == {"source"} | {f.name for f in everything if f.null is NullMeans.ABSENT}
    assert [f.name for f in CUSTOMER if f.null is NullMeans.REQUIRED] == ["email"]
    assert [f.name for f in ADDRESS if f.null is NullMeans.REQUIRED] == ["country"]


def test_defaults_name_settings_and_commerce_properties_exist():
    settings = {s.name for s in dataclasses.fields(MappingSettings)}
    for f in CUSTOMER:
        if f.default:
            assert f.default in settings, f.default
            assert f.scalar, f.name  # a default fills the create body's property
        if f.commerce and f.name == "isOptedInMarketing":
            assert f.commerce in CONTACT_PROPERTIES
        elif f.commerce:
            assert f.commerce in CUSTOMER_PROPERTIES, f.commerce
    for f in ADDRESS:
        for prop in (f.commerce, *(p for _, p in f.also)):
            assert prop is None or prop in ADDRESS_PROPERTIES, prop


# --- groups -----------------------------------------------------------------------------------------


def test_groups_come_from_the_table():
    assert ledger_rules.GROUPS is fields.GROUPS is groups.GROUPS
    assert tuple(fields.GROUPS) == GROUP_NAMES
    assert all(fields.GROUPS[g] for g in GROUP_NAMES)  # no empty group
    assert {f.group for f in CUSTOMER} - {None} == set(GROUP_NAMES)
    assert all(f.group is None for f in ADDRESS)  # the address is one group, "address"
    assert ledger_rules.ORDERED_GROUPS == tuple(g for g in GROUP_NAMES if g != "email")
    # the field order within a group is part of its hash: the existing groups keep theirs
    assert fields.GROUPS["name"] == ("firstName", "middleName", "lastName")
    assert fields.GROUPS["profile"] == ("language", "currencyCode", "customerGroup")
    assert fields.GROUPS["consent"][0] == "isOptedInMarketing"
    assert create.NAME_PARTS == ledger_rules.NAME_PARTS == ("FirstName", "MiddleName", "LastName")


def test_a_field_that_reaches_commerce_is_in_a_group():
    for f in CUSTOMER:
        assert (f.group is not None) == (f.commerce is not None), f.name


# --- a plain field is named once, in the table --------------------------------------------------------

# The modules every field concern derives in. A plain field (one the table validates and maps, not
# one with hand-written rules) must not be named in them: by contract name, model attribute, Commerce
# property or settings default. Address fields are checked by contract name and attribute only: the
# FullAddress format names its Address properties, and "name" is also the name group's name.
DERIVED_MODULES = [
    "shared/core/contract.py",
    "shared/core/validation.py",
    "shared/core/commerce_bodies/create.py",
    "shared/core/commerce_bodies/patch.py",
    "shared/core/commerce_bodies/groups.py",
    "shared/core/ledger_rules.py",
    "tools/openapi.py",
]


def _plain_tokens() -> dict[str, str]:
    tokens: dict[str, str] = {}
    for f in CUSTOMER:
        if f.normalise is not None and not f.by_hand:
            for token in (f.name, f.attr, f.commerce, f.default):
                if token:
                    tokens[token] = f.name
    for f in ADDRESS:
        if f.normalise is not None and f.name != "name":
            tokens[f.name] = tokens[f.attr] = f"address.{f.name}"
    return tokens


def _names_in(path: Path) -> list[tuple[int, str]]:
    """Every identifier and string literal of a module (docstrings are sentences: they never equal a name)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.Attribute):
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.Name):
            found.append((node.lineno, node.id))
        elif isinstance(node, (ast.keyword, ast.arg)) and node.arg:
            found.append((node.lineno, node.arg))
        elif isinstance(node, ast.alias):
            found.append((node.lineno, node.asname or node.name))
    return found


def test_a_plain_field_is_named_only_in_the_table():
    tokens = _plain_tokens()
    assert {"firstName", "FirstName", "first_name", "optOutPersonalization", "default_group", "streetNumber"} <= set(
        tokens
    )
    checked = 0
    named_twice = []
    for module in DERIVED_MODULES:
        for line, name in _names_in(ROOT / module):
            checked += 1
            if name in tokens:
                named_twice.append(f"{module}:{line}: {name!r} ({tokens[name]} is declared in shared/core/fields.py)")
    assert checked > 1000
    assert named_twice == []


def test_the_scan_finds_a_field_named_again(tmp_path):
    copy = tmp_path / "contract.py"
    copy.write_text(
        'GROUPS = {"name": ("firstName", "middleName")}\nx = event.customer_group\n'
        'class M:\n    optOutPersonalization: bool\n',
        encoding="utf-8",
    )
    tokens = _plain_tokens()
    found = sorted(name for _, name in _names_in(copy) if name in tokens)
    assert found == ["customer_group", "firstName", "middleName", "optOutPersonalization"]


# --- the published schema is the table's ---------------------------------------------------------------


def _schemas() -> dict:
    return json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))["components"]["schemas"]


@pytest.mark.parametrize("model, table", [("CustomerIn", CUSTOMER), ("AddressIn", ADDRESS)])
def test_the_openapi_schema_is_the_tables(model, table):
    schema = _schemas()[model]
    assert schema["additionalProperties"] is False
    assert list(schema["properties"]) == [f.name for f in table]
    assert schema["required"] == [f.name for f in table if f.null is NullMeans.REQUIRED]
    for f in table:
        prop = schema["properties"][f.name]
        nullable = {"type": "null"} in prop.get("anyOf", [])
        assert nullable == (f.null in (NullMeans.CLEAR, NullMeans.ABSENT)), f.name
        assert ("default" in prop) == nullable, f.name  # a field that refuses null shows no default
        typed = next((p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"), prop)
        assert typed.get("maxLength") == f.limit, f.name
        assert prop.get("description") == f.description, f.name
        for key, value in (f.schema or {}).items():
            assert prop.get(key, typed.get(key)) == value, (f.name, key)
        if f.type is NESTED:
            assert typed["$ref"] == "#/components/schemas/AddressIn"
        elif f.type is bool:
            assert typed["type"] == "boolean"


# --- the docs list the table's fields ---------------------------------------------------------------------

CONTRACT_DOC = ROOT / "docs" / "event-contract.md"


def _section(text: str, heading: str) -> str:
    start = text.index(heading + "\n")
    end = text.find("\n#", start + len(heading))
    return text[start : end if end != -1 else None]


def _first_column_names(section: str) -> list[str]:
    names = []
    for row in section.splitlines():
        cells = row.split("|")
        if row.startswith("| `") and len(cells) > 2:
            names += re.findall(r"`([A-Za-z.]+)`", cells[1])
    return names


def test_the_contract_doc_lists_every_field_of_the_table():
    text = CONTRACT_DOC.read_text(encoding="utf-8")
    assert sorted(_first_column_names(_section(text, "### `customer`"))) == sorted(f.name for f in CUSTOMER)
    assert sorted(_first_column_names(_section(text, "### `customer.address`"))) == sorted(f.name for f in ADDRESS)


def test_the_contract_doc_states_the_tables_null_semantics_and_groups():
    text = re.sub(r"\s+", " ", CONTRACT_DOC.read_text(encoding="utf-8"))
    clears = re.search(r"Explicit `null` clears\*\* — only these fields: (.*?) An empty", text).group(1)
    customer_part, address_part = clears.split("address:")
    assert set(re.findall(r"`(\w+)`", customer_part)) == contract.CLEARABLE_CUSTOMER_FIELDS
    assert set(re.findall(r"`(\w+)`", address_part)) == contract.CLEARABLE_ADDRESS_FIELDS
    absent = re.search(r"except the metadata fields (.*?), for which `null` is the same", text).group(1)
    assert {n.removeprefix("address.") for n in re.findall(r"`([\w.]+)`", absent)} == contract.NULL_MEANS_ABSENT
    ordering = re.search(r"each field group — (.*?) — keeps the key", text).group(1)
    for group in GROUP_NAMES:
        if group == "email":
            continue
        named = re.search(rf"(?:^|, |and )`?{group}`?(?: \(([^)]*)\))?", ordering)
        assert named, group
        listed = re.findall(r"`(\w+)`", named.group(1) or "") or [group]
        assert listed == list(fields.GROUPS[group]), group
    ledger = re.sub(r"\s+", " ", (ROOT / "docs" / "ledger.md").read_text(encoding="utf-8"))
    consent = re.search(r"`consent` \(([^)]*)\)", ledger).group(1)
    assert re.findall(r"`(\w+)`", consent) == list(fields.GROUPS["consent"])


def test_the_contract_doc_states_the_tables_length_limits():
    section = _section(CONTRACT_DOC.read_text(encoding="utf-8"), "## Length limits and their sources")
    documented = {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.split("|")]
        if len(cells) > 3 and cells[2].isdigit():
            for name in cells[1].split(","):
                documented[name.strip().removeprefix("address.").removesuffix(" (id)")] = int(cells[2])
    limited = [f for f in CUSTOMER + ADDRESS if f.limit is not None]
    assert len(limited) >= 10
    for f in limited:
        assert documented.get(f.name) == f.limit, f.name


def test_the_contract_doc_names_the_property_of_every_scalar_field():
    text = CONTRACT_DOC.read_text(encoding="utf-8")
    create_paragraph = text[text.index("Create (`shared.core.commerce_bodies.create.build_create_body`)") :]
    create_paragraph = create_paragraph[: create_paragraph.index("\n\n")]
    assert create.SCALARS
    for _, prop in create.SCALARS:
        assert f"`{prop}`" in create_paragraph, prop
