"""Countries (ISO 3166-1) and their subdivisions (ISO 3166-2), by code or by any name senders use.

The lookup is generated ahead (``tools/build_country_names.py`` → ``data/places.json``): every CLDR
locale's country names and alternatives, ISO's English and former names, ISO 3166-2 codes and local
names, CLDR's English subdivision names, all folded by ``shared.core.normalise.folding.fold``. Reading that
file is the only work done at import (no Babel, no pycountry database, no folding of 40,000 names).

A country is found by, in order:

1. its ISO alpha-2 or alpha-3 code, written upper- or lower-case ("DE", "deu");
2. any of its names, folded (case, spaces, punctuation, diacritics: "Österreich", "osterreich",
   "Oesterreich", "Côte d'Ivoire", "UK", "Holland", "Zaire").

A name that two countries share somewhere ("Kongo": Congo - Kinshasa in Norwegian, Congo -
Brazzaville in Akan) is refused with the candidates named: a wrong country is worse than a refusal.
Only an ISO English name is told apart from another country's name by its spacing ("Malawi" is
Malawi; Toki Pona's "ma Lawi" is Latvia).
A mixed-case 2- or 3-letter value ("Nga", Vietnamese for Russia; NGA is Nigeria) that is both a code
and another country's name is refused the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared.core.normalise.folding import fold, fold_words
from shared.core.normalise.invalid import Invalid

MAX_STATE_ID = 10  # LogisticsAddressStateId
MAX_STATE_NAME = 60  # LogisticsAddressStateName
MAX_NAME_INPUT = 100  # longer values are no place name (the longest CLDR name has about 60 characters)
DATA_FILE = Path(__file__).with_name("data") / "places.json"


@dataclass(frozen=True)
class Country:
    alpha2: str
    alpha3: str
    name: str


@dataclass(frozen=True)
class Subdivision:
    code: str  # full ISO 3166-2 code, e.g. US-WA
    name: str


@dataclass(frozen=True)
class _Subdivisions:
    codes: dict[str, Subdivision]  # casefolded full code ("us-wa") -> subdivision
    names: dict[str, Subdivision]  # folded name or code without prefix -> subdivision
    ambiguous: dict[str, tuple[str, ...]] = field(default_factory=dict)  # folded -> ISO codes


def _load() -> tuple[
    dict[str, Country], dict[str, Country], dict[str, tuple[Country, ...]], dict[str, Country], dict[str, _Subdivisions]
]:
    data = json.loads(DATA_FILE.read_text("utf-8"))
    by_alpha2: dict[str, Country] = {}
    codes: dict[str, Country] = {}
    names: dict[str, Country] = {}
    for alpha2, (alpha3, name, keys) in data["countries"].items():
        country = by_alpha2[alpha2] = Country(alpha2, alpha3, name)
        codes[alpha2.lower()] = codes[alpha3.lower()] = country
        names.update(dict.fromkeys(keys.split(), country))
    ambiguous = {key: tuple(by_alpha2[c] for c in owners.split()) for key, owners in data["ambiguous"].items()}
    by_words = {key: by_alpha2[code] for key, code in data["ambiguousBySpacing"].items()}
    subdivisions: dict[str, _Subdivisions] = {}
    shared_names = data["subdivisionsAmbiguous"]
    for alpha2, entries in data["subdivisions"].items():
        table = _Subdivisions({}, {}, {k: tuple(v.split()) for k, v in shared_names.get(alpha2, {}).items()})
        for code, (name, *keys) in entries.items():
            sub = Subdivision(code, name)
            table.codes[code.casefold()] = sub
            table.names.update(dict.fromkeys(keys, sub))
        subdivisions[alpha2] = table
    return codes, names, ambiguous, by_words, subdivisions


_CODES, _NAMES, _AMBIGUOUS, _BY_WORDS, SUBDIVISIONS = _load()
# alpha-2, alpha-3 (lower-case) -> Country; every ISO 3166-1 country once by alpha-2 in COUNTRIES.
COUNTRIES: dict[str, Country] = {c.alpha2: c for c in _CODES.values()}


def _ambiguous(candidates: tuple[Country, ...] | list[Country]) -> Invalid:
    listed = ", ".join(f"{c.alpha3} ({c.name})" for c in sorted(set(candidates), key=lambda c: c.alpha3))
    return Invalid("ambiguous_country", f"names more than one country: {listed}; send the ISO code")


def find_country(value: object) -> Country:
    """Country from an ISO 3166-1 alpha-2 or alpha-3 code or any of its names (see the module)."""
    if not isinstance(value, str):
        raise Invalid("type", "must be a string")
    text = " ".join(value.split())
    if len(text) > MAX_NAME_INPUT:
        raise Invalid("invalid_country", "not an ISO 3166-1 code or a country name")
    if 2 <= len(text) <= 3 and text.isascii() and text.isalpha():
        by_code = _CODES.get(text.lower())
        if by_code is not None and (text.isupper() or text.islower()):
            return by_code
        by_name = _NAMES.get(text.lower())
        if by_code is not None and by_name is not None and by_name != by_code:
            raise _ambiguous([by_code, by_name])
        if by_code is not None:
            return by_code
    key = fold(text)
    country = _NAMES.get(key)
    if country is not None:
        return country
    if key in _AMBIGUOUS:
        country = _BY_WORDS.get(fold_words(text))
        if country is not None:
            return country
        raise _ambiguous(_AMBIGUOUS[key])
    raise Invalid("invalid_country", "not an ISO 3166-1 code or a country name (in any language)")


def resolve_state(
    country: Country, value: str, overrides: Mapping[str, Mapping[str, str]]
) -> tuple[str, str | None, str | None]:
    """``(state_id, state_name, iso_code)`` for a state given as code ("WA", "US-WA") or name, local
    or English, folded like country names ("Bavaria", "Bayern", "ile-de-france").

    The state id is the ISO 3166-2 code without its country prefix unless ``overrides`` (alpha-3 ->
    {ISO code: id}, from STATE_ID_OVERRIDES) says otherwise. For a country without ISO subdivisions
    the value is kept as the id, with no name.
    """
    table = SUBDIVISIONS.get(country.alpha2)
    if not table or not table.codes:
        if len(value) > MAX_STATE_ID:
            raise Invalid("too_long", f"must be at most {MAX_STATE_ID} characters")
        return value, None, None
    text = " ".join(value.split())
    sub = table.codes.get(text.casefold())
    key = fold(text) if sub is None and len(text) <= MAX_NAME_INPUT else ""
    if sub is None:
        sub = table.names.get(key)
    if sub is None:
        if key in table.ambiguous:
            raise Invalid(
                "ambiguous_state",
                f"names more than one subdivision of {country.alpha3}: "
                f"{', '.join(table.ambiguous[key])}; send the ISO 3166-2 code",
            )
        raise Invalid("invalid_state", f"not a subdivision of {country.alpha3} (ISO 3166-2 code or name)")
    state_id = overrides.get(country.alpha3, {}).get(sub.code) or sub.code.split("-", 1)[1]
    if len(state_id) > MAX_STATE_ID:
        raise Invalid("too_long", f"state id must be at most {MAX_STATE_ID} characters")
    return state_id, sub.name[:MAX_STATE_NAME], sub.code
