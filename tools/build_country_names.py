"""Build ``shared/core/normalise/data/places.json``: every name a country or subdivision is known by.

    python -m tools.build_country_names            # write the file
    python -m tools.build_country_names --check    # exit 1 when the file differs from a fresh build

Loading CLDR's 1,100-odd locales takes seconds, so the lookup is built here, ahead, and shipped as
one sorted, deterministic JSON file that ``shared.core.normalise.country`` reads at import. The runtime
never imports Babel. Sources (all pinned; a test rebuilds the file and compares):

- country names in every locale CLDR ships: Babel (``babel``, requirements-dev.txt), which carries
  CLDR's main names only;
- CLDR's alternative names (``alt="short"``, ``alt="variant"``: "UK", "Ivory Coast", "Swaziland",
  "Turkey", "Czech Republic"…) in every locale, which Babel drops: the Unicode Consortium's
  ``cldr-localenames-full`` (npm, package.json);
- English subdivision names ("Bavaria", "Tuscany"): ``cldr-subdivisions-full`` (npm; Babel does not
  expose CLDR's subdivisions);
- ISO 3166-1 codes and English names (short, official, common), ISO 3166-2 codes and local names,
  and ISO 3166-3's former names with a successor code (Zaire → CD, Burma → MM, East Timor → TL):
  pycountry (requirements.txt);
- ``EVERYDAY``, below: the few everyday English names that no library holds.

Rules (docs/event-contract.md explains them to senders):

- only ISO 3166-1 countries are kept (CLDR also names XK, EU, 001, QO…);
- names are folded with ``shared.core.normalise.folding.fold``; spellings derived here, not typed:
  the ASCII transcriptions of German (ä → ae, ö → oe, ü → ue) and Danish/Norwegian (å → aa,
  ø → oe) names, and "the" before English names ("The Netherlands", "the Gambia");
- a folded name claimed by two countries is ambiguous and refused, naming the candidates, except
  that an ISO English name keeps its meaning where the other names that fold like it are spaced
  otherwise ("Malawi"; Toki Pona's "ma Lawi" is Latvia): those are told apart word by word;
- subdivisions: ISO names first, then ISO codes without the country prefix, then CLDR's English
  names; a top-level subdivision wins over a lower-level one of the same name, and two of the same
  level are ambiguous. A country whose CLDR subdivision ids no longer match ISO's (a CLDR name is
  the ISO name of another subdivision for 3 or more of them: Iran, renumbered by ISO) uses ISO names
  only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "shared" / "normalise" / "data" / "places.json"
NODE_MODULES = ROOT / "node_modules"

# Everyday English names that neither CLDR (any locale, any alternative) nor pycountry holds.
EVERYDAY: dict[str, tuple[str, ...]] = {
    "GB": ("Great Britain",),  # CLDR: United Kingdom, UK; pycountry: United Kingdom (of Great Britain…)
    "MK": ("Macedonia",),  # its ISO short name until 2019; CLDR and pycountry now say North Macedonia
    "AE": ("UAE",),  # CLDR: United Arab Emirates only
}
# Locales whose names are also written in an ASCII transcription.
TRANSCRIPTIONS: dict[str, dict[str, str]] = {
    **dict.fromkeys(("de", "gsw", "lb"), {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"}),
    **dict.fromkeys(("da", "nb", "nn", "no"), {"å": "aa", "ø": "oe", "Å": "Aa", "Ø": "Oe"}),
}
# A country whose CLDR subdivision names contradict ISO's this often uses ISO names only.
DISTRUST_SUBDIVISIONS_AT = 3


def _fold():
    sys.path.insert(0, str(ROOT))
    from shared.core.normalise.folding import FOLD_VERSION, fold

    return fold, FOLD_VERSION


def _language(locale: str) -> str:
    return locale.replace("-", "_").split("_", 1)[0]


def spellings(locale: str, name: str) -> set[str]:
    """``name`` and the spellings senders derive from it in ``locale``'s language."""
    out = {name}
    table = TRANSCRIPTIONS.get(_language(locale))
    if table and any(c in name for c in table):
        out.add("".join(table.get(c, c) for c in name))
    if _language(locale) == "en" and not name.lower().startswith("the "):
        out.add("The " + name)
    return out


# --- sources ----------------------------------------------------------------------------------


def iso_countries():
    import pycountry

    return sorted(pycountry.countries, key=lambda c: c.alpha_2)


def babel_names(iso: set[str]) -> Iterator[tuple[str, str, str]]:
    """(locale, alpha-2, name) for every Babel locale's main name of an ISO country."""
    return (row for row in _all_babel_names() if row[1] in iso)


@lru_cache(maxsize=1)
def _all_babel_names() -> tuple[tuple[str, str, str], ...]:
    from babel import Locale, localedata

    rows = []
    for locale in sorted(localedata.locale_identifiers()):
        if locale == "root":
            continue
        for code, name in sorted(Locale.parse(locale).territories.items()):
            if name:
                rows.append((locale, code, name))
    return tuple(rows)


def cldr_alt_names(iso: set[str]) -> Iterator[tuple[str, str, str]]:
    """(locale, alpha-2, name) for every alternative name (alt="short", "variant"…) in cldr-json."""
    main = NODE_MODULES / "cldr-localenames-full" / "main"
    for folder in sorted(main.iterdir()):
        path = folder / "territories.json"
        if not path.exists():
            continue
        names = json.loads(path.read_text("utf-8"))["main"][folder.name]["localeDisplayNames"]["territories"]
        for key, name in sorted(names.items()):
            code, alt, _ = key.partition("-alt-")
            if alt and code in iso and name:
                yield folder.name, code, name


def english_iso_names() -> Iterator[tuple[str, str]]:
    for c in iso_countries():
        for attr in ("name", "official_name", "common_name"):
            label = getattr(c, attr, None)
            if label:
                yield c.alpha_2, label


def former_names(iso: set[str]) -> Iterator[tuple[str, str]]:
    """ISO 3166-3 names whose code's last two letters are a current alpha-2 (the successor)."""
    import pycountry

    for h in sorted(pycountry.historic_countries, key=lambda h: h.alpha_4):
        successor = h.alpha_4[2:]
        if successor in iso:
            for attr in ("name", "official_name"):
                label = getattr(h, attr, None)
                if label:
                    yield successor, label
                    # "Zaire, Republic of": the name is what comes before the comma.
                    yield successor, label.split(",", 1)[0]


def cldr_subdivision_names() -> dict[str, str]:
    path = NODE_MODULES / "cldr-subdivisions-full" / "subdivisions" / "en" / "en.json"
    data = json.loads(path.read_text("utf-8"))["subdivisions"]["localeDisplayNames"]["subdivisions"]
    return {(key[:2] + "-" + key[2:]).upper(): name for key, name in data.items()}


def fold_in_libraries(name: str, iso: set[str]) -> bool:
    """Whether any library source already holds ``name`` (folded) for some country: an
    ``EVERYDAY`` name that one does is no longer needed."""
    fold, _ = _fold()
    key = fold(name)
    return any(fold(n) == key for _, _, n in (*babel_names(iso), *cldr_alt_names(iso))) or any(
        fold(n) == key for _, n in (*english_iso_names(), *former_names(iso))
    )


def versions() -> dict[str, str]:
    from babel.core import get_cldr_version

    def npm(name: str) -> str:
        return json.loads((NODE_MODULES / name / "package.json").read_text("utf-8"))["version"]

    _, fold_version = _fold()
    return {
        "babel": metadata.version("babel"),
        "babelCldr": get_cldr_version(),
        "cldr-localenames-full": npm("cldr-localenames-full"),
        "cldr-subdivisions-full": npm("cldr-subdivisions-full"),
        "pycountry": metadata.version("pycountry"),
        "fold": str(fold_version),
    }


# --- building ---------------------------------------------------------------------------------


def build_countries() -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, str]]:
    """(alpha-2 -> folded names, ambiguous folded name -> candidates, word-folded name -> alpha-2
    for the ambiguous names that their spacing tells apart from an ISO English name)."""
    fold, _ = _fold()
    from shared.core.normalise.folding import fold_words

    iso = {c.alpha_2 for c in iso_countries()}
    owners: dict[str, set[str]] = defaultdict(set)  # folded -> countries
    words: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))  # folded -> words -> countries
    iso_names: dict[str, str] = {}  # folded ISO English name -> its country

    def add(locale: str, code: str, name: str) -> None:
        for spelling in spellings(locale, name):
            key = fold(spelling)
            owners[key].add(code)
            words[key][fold_words(spelling)].add(code)

    for code, name in english_iso_names():
        iso_names[fold(name)] = code
        add("en", code, name)
    for row in babel_names(iso):
        add(*row)
    for row in cldr_alt_names(iso):
        add(*row)
    for code, name in former_names(iso):
        add("en", code, name)
    for code, names in EVERYDAY.items():
        for name in names:
            add("en", code, name)

    names: dict[str, list[str]] = defaultdict(list)
    ambiguous: dict[str, list[str]] = {}
    spaced: dict[str, str] = {}
    for key in sorted(owners):
        if not key:
            continue
        if len(owners[key]) == 1:
            names[next(iter(owners[key]))].append(key)
            continue
        ambiguous[key] = sorted(owners[key])
        if key in iso_names:
            # An ISO English name keeps its meaning ("Malawi") when the other names that fold like
            # it are spaced otherwise (Toki Pona's "ma Lawi", Latvia): the words tell them apart.
            for spelling, codes in sorted(words[key].items()):
                if len(codes) == 1:
                    spaced[spelling] = next(iter(codes))
    return dict(names), ambiguous, spaced


def _display(name: str) -> str:
    """ISO names sometimes carry a bracketed alias ("Wales [Cymru GB-CYM]"): keep the name."""
    return name.split(" [", 1)[0].strip() or name


def build_subdivisions() -> tuple[dict[str, dict[str, list]], dict[str, dict[str, list[str]]], list[str]]:
    """(alpha-2 -> {code: [display name, folded names...]}, alpha-2 -> {ambiguous name: codes},
    countries whose CLDR names were not used)."""
    import pycountry

    fold, _ = _fold()
    subs = {s.code: s for s in pycountry.subdivisions}
    depth: dict[str, int] = {}

    def level(code: str) -> int:
        if code not in depth:
            parent = subs[code].parent_code
            depth[code] = 0 if not parent or parent not in subs else level(parent) + 1
        return depth[code]

    by_country: dict[str, list[str]] = defaultdict(list)
    for code in sorted(subs):
        by_country[subs[code].country_code].append(code)

    cldr = {code: name for code, name in cldr_subdivision_names().items() if code in subs}
    # (country, folded name) -> tier -> codes; tiers: 1 ISO name, 2 code without prefix, 3 CLDR English.
    tiers: dict[str, dict[str, dict[int, set[str]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(set)))
    iso_owner: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for code, s in subs.items():
        cc = s.country_code
        for label in {s.name, _display(s.name)}:
            tiers[cc][fold(label)][1].add(code)
            iso_owner[cc][fold(label)].add(code)
        tiers[cc][fold(code.split("-", 1)[1])][2].add(code)

    def related(a: str, b: str) -> bool:
        def ancestors(c: str) -> set[str]:
            out = set()
            while subs[c].parent_code and subs[c].parent_code in subs:
                c = subs[c].parent_code
                out.add(c)
            return out

        return a in ancestors(b) or b in ancestors(a)

    contradictions: dict[str, int] = defaultdict(int)
    for code, name in cldr.items():
        owners = iso_owner[code[:2]].get(fold(name), set())
        if owners and code not in owners and not any(related(code, o) for o in owners):
            contradictions[code[:2]] += 1
    distrusted = sorted(cc for cc, n in contradictions.items() if n >= DISTRUST_SUBDIVISIONS_AT)
    for code, name in cldr.items():
        if code[:2] not in distrusted:
            tiers[code[:2]][fold(name)][3].add(code)

    table: dict[str, dict[str, list]] = {}
    ambiguous: dict[str, dict[str, list[str]]] = {}
    for cc in sorted(by_country):
        entries = {code: [_display(subs[code].name)] for code in by_country[cc]}
        for key in sorted(tiers[cc]):
            if not key:
                continue
            by_tier = tiers[cc][key]
            owners = by_tier[min(by_tier)]
            top = min(level(c) for c in owners)
            owners = sorted(c for c in owners if level(c) == top)
            if len(owners) == 1:
                entries[owners[0]].append(key)
            else:
                ambiguous.setdefault(cc, {})[key] = owners
        table[cc] = entries
    return table, ambiguous, distrusted


def build() -> dict:
    countries, ambiguous, spaced = build_countries()
    subdivisions, sub_ambiguous, distrusted = build_subdivisions()
    return {
        "about": "Generated by tools/build_country_names.py: do not edit. Names are folded with "
        "shared.core.normalise.folding.fold.",
        "sources": versions(),
        "countries": {c.alpha_2: [c.alpha_3, c.name, " ".join(countries.get(c.alpha_2, []))] for c in iso_countries()},
        "ambiguous": {key: " ".join(codes) for key, codes in ambiguous.items()},
        "ambiguousBySpacing": spaced,
        "subdivisions": subdivisions,
        "subdivisionsAmbiguous": {cc: {k: " ".join(v) for k, v in t.items()} for cc, t in sub_ambiguous.items()},
        "subdivisionsWithoutCldrNames": distrusted,
    }


def render(data: dict) -> str:
    """One line per country: small diffs when a source changes, and still plain JSON."""

    def dump(value: object) -> str:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    lines = ["{"]
    sections = list(data.items())
    for i, (name, value) in enumerate(sections):
        comma = "," if i < len(sections) - 1 else ""
        if isinstance(value, dict) and name != "sources":
            lines.append(f"{dump(name)}:{{")
            items = sorted(value.items())
            lines += [f"{dump(k)}:{dump(v)}{',' if j < len(items) - 1 else ''}" for j, (k, v) in enumerate(items)]
            lines.append("}" + comma)
        else:
            lines.append(f"{dump(name)}:{dump(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.build_country_names")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(list(argv) if argv is not None else None)
    text = render(build())
    if args.check:
        same = OUTPUT.exists() and OUTPUT.read_text("utf-8") == text
        print(f"{OUTPUT.relative_to(ROOT)} is {'up to date' if same else 'OUT OF DATE'}")
        return 0 if same else 1
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, "utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(text.encode('utf-8')):,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
