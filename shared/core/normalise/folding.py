"""The one folding of place names (countries, subdivisions) that lookups compare.

``fold`` makes a name case-, whitespace-, punctuation- and diacritic-insensitive: "Côte d’Ivoire",
"cote d'ivoire" and "COTE-D-IVOIRE" all fold to "cotedivoire". The generated lookup
(``shared/core/normalise/data/places.json``, built by ``tools/build_country_names.py``) holds names folded
by this very function, so changing it means regenerating that file (a test compares the two).

What is removed or replaced:

- compatibility forms (NFKD): full-width ``ＤＥ`` is ``de``, the ligature ``ﬁ`` is ``fi``;
- diacritics: the combining marks of Latin, Greek and Cyrillic (é, ö, ç, ő, й…), Arabic harakat and
  tatweel, Hebrew points. Marks that are letters' vowels in Indic and other scripts are kept, so no
  two different words of those scripts fold together;
- letters with a stroke or that are ligatures, which Unicode does not decompose: ø → o, ł → l,
  đ/ð → d, ħ → h, ı → i, ŧ → t, æ → ae, œ → oe, þ → th (ß → ss by case folding);
- case (Unicode case folding, so σ/ς and ß fold too);
- every space, punctuation mark, symbol and invisible character ("St. Kitts & Nevis" is "stkittsnevis").

``fold_words`` keeps the word breaks, for the rare names that only spacing tells apart.

Names written in an ASCII transcription ("Oesterreich" for "Österreich") are not a folding matter:
the generator adds those spellings to the lookup.
"""

from __future__ import annotations

import re
import unicodedata

FOLD_VERSION = 1  # recorded in the generated data; bump when the folding changes

_STROKES = str.maketrans(
    {
        "ø": "o",
        "Ø": "o",
        "ł": "l",
        "Ł": "l",
        "đ": "d",
        "Đ": "d",
        "ð": "d",
        "Ð": "d",
        "ħ": "h",
        "Ħ": "h",
        "ı": "i",
        "ŧ": "t",
        "Ŧ": "t",
        "æ": "ae",
        "Æ": "ae",
        "œ": "oe",
        "Œ": "oe",
        "þ": "th",
        "Þ": "th",
    }
)
# Combining diacritics (Latin, Greek, Cyrillic), Arabic harakat and tatweel, Hebrew points.
_DIACRITICS = re.compile(
    "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f\u0591-\u05c7\u0640\u064b-\u065f\u0670]"
)
_ASCII_NOISE = re.compile(r"[^0-9a-z]")
# Punctuation, symbols, separators, controls and format characters. Unassigned code points (Cn) are
# kept: they are letters of scripts newer than this Python's Unicode data (Sunuwar in Python 3.11).
_REMOVED = frozenset(
    {"Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"}
)


def _fold_once(value: str) -> str:
    if value.isascii():
        return _ASCII_NOISE.sub("", value.lower())
    text = _DIACRITICS.sub("", unicodedata.normalize("NFKD", value.translate(_STROKES)))
    kept = "".join(c for c in text if unicodedata.category(c) not in _REMOVED)
    return unicodedata.normalize("NFKC", kept.casefold())


def fold(value: str) -> str:
    """``value`` folded for comparison; "" when nothing but spaces and punctuation is left.

    Idempotent: case folding and recomposition can rarely bring back a removed character, so the
    folding is repeated until nothing changes (at most a few rounds)."""
    folded = _fold_once(value)
    for _ in range(3):
        again = _fold_once(folded)
        if again == folded:
            break
        folded = again
    return folded


def fold_words(value: str) -> str:
    """``value`` folded word by word, the words kept apart by one space: "ma Lawi" is "ma lawi",
    not "malawi". Used only to tell apart names that ``fold`` makes equal."""
    return " ".join(word for word in (fold(w) for w in value.split()) if word)
