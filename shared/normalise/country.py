"""Countries (ISO 3166-1) and their subdivisions (ISO 3166-2), from pycountry.

Lookup tables are built once, at import: pycountry's fuzzy search is slow and may guess, so it is
never used per call. Keys are case-folded, so "us", "USA" and "united states" all find the same entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import pycountry

from shared.normalise.errors import Invalid

MAX_STATE_ID = 10  # LogisticsAddressStateId
MAX_STATE_NAME = 60  # LogisticsAddressStateName


@dataclass(frozen=True)
class Country:
    alpha2: str
    alpha3: str
    name: str


@dataclass(frozen=True)
class Subdivision:
    code: str  # full ISO 3166-2 code, e.g. US-WA
    name: str


def _country_table() -> dict[str, Country]:
    table: dict[str, Country] = {}
    names: dict[str, Country] = {}
    for c in pycountry.countries:
        country = Country(c.alpha_2, c.alpha_3, c.name)
        table[c.alpha_2.casefold()] = country
        table[c.alpha_3.casefold()] = country
        for attr in ("name", "official_name", "common_name"):
            label = getattr(c, attr, None)
            if label:
                names.setdefault(label.casefold(), country)
    # Codes win over names should a name ever collide with a code.
    return {**names, **table}


def _display(name: str) -> str:
    """ISO names sometimes carry a bracketed alias ("Wales [Cymru GB-CYM]"): keep the name."""
    return name.split(" [", 1)[0].strip() or name


def _subdivision_table() -> dict[str, dict[str, Subdivision]]:
    tables: dict[str, dict[str, Subdivision]] = {}
    # Top-level subdivisions first, so that a name shared by a region and one of its own
    # departments (or similar) resolves to the top-level entry.
    ordered = sorted(pycountry.subdivisions, key=lambda s: (s.parent_code is not None, s.code))
    for s in ordered:
        table = tables.setdefault(s.country_code, {})
        sub = Subdivision(s.code, _display(s.name))
        table.setdefault(s.name.casefold(), sub)
        table.setdefault(sub.name.casefold(), sub)
    for s in ordered:
        table = tables[s.country_code]
        sub = Subdivision(s.code, _display(s.name))
        table[s.code.casefold()] = sub
        table.setdefault(s.code.split("-", 1)[1].casefold(), sub)
    return tables


COUNTRIES: dict[str, Country] = _country_table()
SUBDIVISIONS: dict[str, dict[str, Subdivision]] = _subdivision_table()


def find_country(value: object) -> Country:
    """Country from alpha-2, alpha-3 or English name (case-insensitive)."""
    if not isinstance(value, str):
        raise Invalid("type", "must be a string")
    country = COUNTRIES.get(" ".join(value.split()).casefold())
    if country is None:
        raise Invalid("invalid_country", "not an ISO 3166-1 alpha-2 or alpha-3 code or an English "
                      "country name")
    return country


def resolve_state(country: Country, value: str,
                  overrides: Mapping[str, Mapping[str, str]]) -> tuple[str, str | None, str | None]:
    """``(state_id, state_name, iso_code)`` for a state given as code ("WA", "US-WA") or name.

    The state id is the ISO 3166-2 code without its country prefix unless ``overrides`` (alpha-3 ->
    {ISO code: id}, from STATE_ID_OVERRIDES) says otherwise. For a country without ISO subdivisions
    the value is kept as the id, with no name.
    """
    table = SUBDIVISIONS.get(country.alpha2)
    if not table:
        if len(value) > MAX_STATE_ID:
            raise Invalid("too_long", f"must be at most {MAX_STATE_ID} characters")
        return value, None, None
    sub = table.get(" ".join(value.split()).casefold())
    if sub is None:
        raise Invalid("invalid_state", f"not a subdivision of {country.alpha3} (ISO 3166-2 code "
                      "or name)")
    state_id = overrides.get(country.alpha3, {}).get(sub.code) or sub.code.split("-", 1)[1]
    if len(state_id) > MAX_STATE_ID:
        raise Invalid("too_long", f"state id must be at most {MAX_STATE_ID} characters")
    return state_id, sub.name[:MAX_STATE_NAME], sub.code
