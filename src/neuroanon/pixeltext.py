"""Which text read in an image identifies someone: the file's own identifying values, and PHI-shaped text.

A box is PHI when its text holds one of the file's needles (any form; a one-letter OCR slip is tolerated in
words of five letters or more and IDs of six characters or more, and a name of eight letters or more is found by
all its letters but two in a row)
or looks like a name, a date, a long number or an ID. Labels and measurements ("4.2 cm", "L", "GAIN 55",
"TIS 0.4") are not PHI.
"""

from __future__ import annotations

import re
import unicodedata

from .identifiers import Needle

MONTHS = (
    "jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|january|february|march|april|june|july|august|september"
    "|october|november|december|januar|februar|maerz|marz|mai|juni|juli|oktober|dezember|janvier|fevrier|mars|avril"
    "|juin|juillet|aout|septembre|octobre|novembre|decembre|enero|febrero|marzo|abril|mayo|junio|julio|agosto"
    "|septiembre|octubre|noviembre|diciembre|gennaio|febbraio|aprile|maggio|giugno|luglio|settembre|ottobre"
    "|dicembre"
)
_DATES = (
    re.compile(r"(?<!\d)\d{1,4}\s*[-/.]\s*\d{1,2}\s*[-/.]\s*\d{2,4}(?!\d)"),  # dates with separators
    re.compile(r"(?<!\d)(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)"),  # YYYYMMDD
)
_PATTERNS = (
    re.compile(r"(?<![a-z])[a-z]{2,}\s*\^\s*[a-z]{2,}"),  # PN: family^given (from a word's start: tried inside
    # a long run of letters at each of them, it took time by the run's square)
    re.compile(r"\b[a-z]{2,}\s*,\s*[a-z]{2,}\b"),  # "Family, Given"
    *_DATES,
    re.compile(rf"(?<![a-z])(?:{MONTHS})\.?(?![a-z])"),  # a month name: part of a date
    re.compile(r"(?<!\d)\d(?:[\s-]?\d){5,}(?!\d)"),  # a long number, separators allowed: IDs, phone numbers
    re.compile(r"\b(?=[a-z]*\d)(?=\d*[a-z])[a-z\d]{6,}\b"),  # letters and digits mixed, 6+: an ID
    re.compile(r"\b\d+[a-z]?\s+(?:[a-z]+\s+){0,3}(?:street|st|lane|ln|road|rd|avenue|ave|drive|boulevard|blvd|way"
               r"|court|ct|place|pl|square|strasse|str|weg|gasse|platz|rue|via|calle)\b"),  # a street address
    re.compile(r"\b\d{4,5}\s+[a-z]{3,}"),  # a postcode and a town
    re.compile(r"(?<!\d)\d{3}\.\d{3}\.\d{4}(?!\d)"),  # a telephone number written with points
    re.compile(r"(?<![a-z0-9._%+-])[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}"),  # an e-mail address
    # Labels of identifying fields: the box holds the value, or the value sits right after it.
    re.compile(r"(?<![a-z])(?:name|patient|pat|dob|birth|born|mrn|id|acc|accession|physician|ssn|address"
               r"|phone|tel|hospital|clinic|institution)(?![a-z])"),
)


def is_phi(text: str, needles: tuple[Needle, ...]) -> bool:
    """True when `text`, read in an image, identifies a person, a visit or a place."""
    folded = fold(text)
    return any(pattern.search(folded) for pattern in _PATTERNS) or holds_value(text, needles)


def holds_value(text: str, needles: tuple[Needle, ...]) -> bool:
    """True when `text` holds one of the file's identifying values, or a date: what text joined from several
    boxes is searched for (labels joined may look like an ID or a number, and are none)."""
    folded = fold(text)
    if any(pattern.search(folded) for pattern in _DATES):
        return True
    compact = re.sub(r"[\s\-./]", "", folded)  # (also letters read spaced apart: "Q U A X W O R T H")
    # (and as written between spaces: a character misread as a sign, "FA<EID123" for an ID, splits no word)
    words = [*re.findall(r"[a-z0-9]+", folded), *folded.split(), compact]
    for needle in needles:
        value = fold(needle.data.decode("utf-8", "ignore"))
        if value in folded or ((needle.numeric or len(value) >= 5) and value in compact):
            return True
        slip = len(value) >= 5 and value.isalpha() or len(value) >= _ID and value.isalnum()
        if slip and any(_near(value, word) for word in words):
            return True
        if len(value) >= _LONG and value.isalpha() and any(value[i:i + len(value) - 2] in compact for i in range(3)):
            return True  # a long name read with its last or first letters garbled ("QUAXWORIZEHULON")
    return False


_LONG = 8  # a name this long is found by all its letters but two, in a row
_ID = 6  # an ID (letters and digits) this long is found with one character misread


def fold(text: str) -> str:
    """Lower-case ASCII letters for comparison (accents removed: OCR reads them unreliably)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _near(value: str, word: str) -> bool:
    """One substitution, insertion or deletion apart (a typical OCR slip)."""
    if abs(len(value) - len(word)) > 1 or value == word:
        return value == word
    if len(value) == len(word):
        return sum(a != b for a, b in zip(value, word, strict=True)) == 1
    short, long = sorted((value, word), key=len)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))
