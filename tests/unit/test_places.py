"""The generated place-name lookup against the libraries it is generated from.

Every CLDR locale's name of every ISO 3166-1 country (Babel), every alternative name (cldr-json),
every ISO code, English and former name (pycountry) and every ISO 3166-2 code and name is looked up
the way an event's value is; the counts are printed to the test log.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from shared.core.normalise.country import DATA_FILE, SUBDIVISIONS, find_country, resolve_state
from shared.core.normalise.invalid import Invalid
from tools import build_country_names as gen

pytestmark = pytest.mark.skipif(
    not (gen.NODE_MODULES / "cldr-localenames-full").exists(),
    reason="needs the CLDR packages of package.json: run npm ci",
)


def report(capsys, line: str) -> None:
    with capsys.disabled():
        print(f"\n[places] {line}")


@pytest.fixture(scope="module")
def iso() -> set[str]:
    return {c.alpha_2 for c in gen.iso_countries()}


def outcome(name: str, expected: str) -> str:
    try:
        found = find_country(name).alpha2
    except Invalid as problem:
        return "ambiguous" if problem.code == "ambiguous_country" else "refused"
    return "right" if found == expected else "wrong"


def test_the_generated_file_is_what_the_generator_builds():
    """Regenerate from the installed sources and compare: a source upgraded without regenerating
    (or a hand edit) fails here. Fix with: python -m tools.build_country_names"""
    assert DATA_FILE.read_text("utf-8") == gen.render(gen.build())


def test_the_file_is_deterministic_sorted_and_compact():
    data = json.loads(DATA_FILE.read_text("utf-8"))
    assert gen.render(data) == DATA_FILE.read_text("utf-8")  # rendering is stable
    for section in ("countries", "ambiguous", "subdivisions"):
        assert list(data[section]) == sorted(data[section])
    for _, _, keys in data["countries"].values():
        assert keys.split() == sorted(set(keys.split()))
    assert DATA_FILE.stat().st_size < 1_500_000


def test_only_iso_3166_1_countries_are_kept(iso):
    data = json.loads(DATA_FILE.read_text("utf-8"))
    assert set(data["countries"]) == iso  # CLDR's XK, EU, 001, QO... are not countries
    for name in ("Kosovo", "European Union", "Europe", "Outlying Oceania", "World"):
        assert outcome(name, "") == "refused"


def test_every_cldr_locale_names_every_country_right_or_is_refused_as_ambiguous(iso, capsys):
    from babel import localedata

    locales = [loc for loc in localedata.locale_identifiers() if loc != "root"]
    counts: Counter[str] = Counter()
    wrong, refused = [], []
    for locale, code, name in gen.babel_names(iso):
        result = outcome(name, code)
        counts[result] += 1
        if result == "wrong":
            wrong.append((locale, code))
        elif result == "refused":
            refused.append((locale, code))
    report(
        capsys,
        f"{len(locales)} CLDR locales x ISO country names: {sum(counts.values())} pairs: "
        f"{counts['right']} resolved right, {counts['ambiguous']} refused as ambiguous, "
        f"{counts['refused']} refused otherwise, {counts['wrong']} wrong",
    )
    assert wrong == [] and refused == []
    assert counts["ambiguous"] < 0.002 * sum(counts.values())


def test_every_cldr_alternative_name(iso, capsys):
    """alt="short" / alt="variant" in every locale ("UK", "Ivory Coast", "Swaziland", "Turkey").
    A few short forms are another country's ISO code ("RU", Reino Unido, in Spanish; "AS",
    Amerika Syarikat, in Malay): written as a code they keep the code's ISO meaning."""
    codes = {c.alpha_2 for c in gen.iso_countries()} | {c.alpha_3 for c in gen.iso_countries()}
    counts: Counter[str] = Counter()
    wrong = []
    for locale, code, name in gen.cldr_alt_names(iso):
        result = outcome(name, code)
        if result == "wrong" and name.strip().upper() in codes:
            result = "an ISO code of another country"
        counts[result] += 1
        if result in ("wrong", "refused"):
            wrong.append((locale, code, result))
    report(capsys, f"CLDR alternative names: {sum(counts.values())}: {dict(sorted(counts.items()))}")
    assert wrong == []


def test_every_iso_code_and_english_name(capsys):
    n = 0
    assert len(gen.iso_countries()) >= 249
    for c in gen.iso_countries():
        for value in (c.alpha_2, c.alpha_3, c.alpha_2.lower(), c.alpha_3.lower()):
            assert find_country(value).alpha2 == c.alpha_2
        for attr in ("name", "official_name", "common_name"):
            label = getattr(c, attr, None)
            if label:
                for variant in (label, label.upper(), label.lower(), f"  {label} "):
                    assert find_country(variant).alpha2 == c.alpha_2, (c.alpha_2, variant)
                n += 1
    report(capsys, f"{len(gen.iso_countries())} ISO countries: every code and all {n} English names right")


def test_former_names_resolve_to_the_successor(iso):
    former = list(gen.former_names(iso))
    assert len(former) >= 40
    for code, name in former:
        assert outcome(name, code) == "right", (code, name)
    for name, alpha3 in (
        ("Zaire", "COD"),
        ("Burma", "MMR"),
        ("Upper Volta", "BFA"),
        ("Dahomey", "BEN"),
        ("East Timor", "TLS"),
    ):
        assert find_country(name).alpha3 == alpha3


def test_the_everyday_names_no_library_holds(iso):
    assert len(gen.EVERYDAY) >= 3
    for code, names in gen.EVERYDAY.items():
        for name in names:
            assert find_country(name).alpha2 == code
            assert gen.fold_in_libraries(name, iso) is False, f"{name} is in a library now: drop it"


def test_every_subdivision_code_and_name(capsys):
    import pycountry

    counts: Counter[str] = Counter()
    assert len(pycountry.subdivisions) >= 5000
    for s in pycountry.subdivisions:
        country = find_country(s.country_code)
        assert resolve_state(country, s.code, {})[2] == s.code
        assert resolve_state(country, s.code.lower(), {})[2] == s.code
        for label, kind in ((s.name, "ISO name"), (s.code.split("-", 1)[1], "code without prefix")):
            try:
                found = resolve_state(country, label, {})[2]
            except Invalid as problem:
                assert problem.code == "ambiguous_state", (s.code, label)
                counts[f"{kind}: ambiguous"] += 1
                continue
            if found == s.code:
                counts[f"{kind}: right"] += 1
            else:
                # Another subdivision holds it first: a top-level one of the same name, or an ISO
                # name that is also this one's code (never a subdivision of another level's code).
                other = pycountry.subdivisions.get(code=found)
                assert other.parent_code is None or kind == "code without prefix", (s.code, label, found)
                counts[f"{kind}: another subdivision's first"] += 1
    report(
        capsys,
        f"{len(pycountry.subdivisions)} ISO 3166-2 subdivisions, every code right; {dict(sorted(counts.items()))}",
    )


def test_every_cldr_english_subdivision_name(capsys):
    import pycountry

    data = json.loads(DATA_FILE.read_text("utf-8"))
    counts: Counter[str] = Counter()
    for code, name in sorted(gen.cldr_subdivision_names().items()):
        if pycountry.subdivisions.get(code=code) is None:
            counts["no ISO subdivision"] += 1
            continue
        if code[:2] in data["subdivisionsWithoutCldrNames"]:
            counts["country with renumbered ids, not used"] += 1
            continue
        try:
            found = resolve_state(find_country(code[:2]), name, {})[2]
        except Invalid as problem:
            assert problem.code == "ambiguous_state", (code, name)
            counts["ambiguous"] += 1
            continue
        counts["right" if found == code else "an ISO name of another subdivision first"] += 1
    report(capsys, f"CLDR English subdivision names: {dict(sorted(counts.items()))}")
    assert counts["right"] > 0.95 * sum(v for k, v in counts.items() if k != "no ISO subdivision")


def test_iran_is_the_only_country_whose_cldr_subdivision_names_are_not_used():
    data = json.loads(DATA_FILE.read_text("utf-8"))
    assert data["subdivisionsWithoutCldrNames"] == ["IR"]
    assert "IR" in SUBDIVISIONS


def test_importing_the_lookup_loads_neither_babel_nor_pycountry():
    code = (
        "import sys, shared.core.normalise.country as c; "
        "print(sorted(m for m in ('babel', 'pycountry') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=gen.ROOT
    ).stdout.strip()
    assert out == "[]"


def test_the_generated_file_is_deployed():
    from tests.support.funcignore import ignore_patterns, ignored

    assert not ignored(str(DATA_FILE.relative_to(gen.ROOT)), ignore_patterns())
