"""DICOM PS3.15 Table E.1-1 (Application Level Confidentiality Profile Attributes), loaded from package data.

The table is never typed by hand: data/ps3.15-table-e1-1.json is the standard's table as extracted by the
innolitics dicom-standard project (April 2024 web edition), with the rows later editions added up to 2026c, each
marked with `"edition"`. Those rows give the Basic Profile action only (no option columns), and a tag that
pydicom's dictionary does not know yet has an empty name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType

from pydicom.datadict import keyword_for_tag

# The table's option columns and the CID 7050 codes of those options.
OPTION_CODES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "rtnSafePrivOpt": ("113111", "Retain Safe Private Option"),
        "rtnUIDsOpt": ("113110", "Retain UIDs Option"),
        "rtnDevIdOpt": ("113109", "Retain Device Identity Option"),
        "rtnInstIdOpt": ("113112", "Retain Institution Identity Option"),
        "rtnPatCharsOpt": ("113108", "Retain Patient Characteristics Option"),
        "rtnLongFullDatesOpt": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
        "rtnLongModifDatesOpt": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
        "cleanDescOpt": ("113105", "Clean Descriptors Option"),
        "cleanStructContOpt": ("113104", "Clean Structured Content Option"),
        "cleanGraphOpt": ("113103", "Clean Graphics Option"),
    }
)
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
BASE_EDITION = "2024b"  # the April 2024 web edition the extraction was made from


@dataclass(frozen=True)
class Entry:
    """One row of Table E.1-1. `mask`/`match` select the tags it covers (a repeating group has a partial mask)."""

    name: str
    mask: int
    match: int
    basic: str
    options: Mapping[str, str]
    edition: str = BASE_EDITION

    @property
    def tag_text(self) -> str:
        text = f"{self.match:08X}"
        digits = [c if (self.mask >> (4 * (7 - i))) & 0xF else "x" for i, c in enumerate(text)]
        s = "".join(digits)
        return f"({s[:4]},{s[4:]})"


@dataclass(frozen=True)
class Table:
    exact: Mapping[int, Entry]
    patterns: tuple[Entry, ...]
    private: Entry
    edition: str  # the newest edition any row comes from: the table's edition

    def lookup(self, tag: int) -> Entry | None:
        """The row covering a standard (even-group) tag, or None if the table does not list it."""
        entry = self.exact.get(tag)
        if entry is not None:
            return entry
        for pattern in self.patterns:
            if tag & pattern.mask == pattern.match:
                return pattern
        return None

    def __iter__(self) -> Iterator[Entry]:
        yield from sorted(self.exact.values(), key=lambda e: e.match)
        yield from self.patterns


def _parse_tag(text: str) -> tuple[int, int]:
    digits = text.strip("()").replace(",", "")
    mask = int("".join("0" if c in "xX" else "F" for c in digits), 16)
    match = int("".join("0" if c in "xX" else c for c in digits), 16)
    return mask, match


@cache
def load_table() -> Table:
    """Load Table E.1-1 from the package data."""
    raw = json.loads(resources.files("neuroanon").joinpath("data/ps3.15-table-e1-1.json").read_text("utf-8"))
    exact: dict[int, Entry] = {}
    patterns: list[Entry] = []
    private: Entry | None = None
    for row in raw:
        options = MappingProxyType({k: v for k, v in row.items() if k in OPTION_CODES})
        edition = str(row.get("edition", BASE_EDITION))
        if "GGGG" in row["tag"]:
            private = Entry(row["name"], 0, 0, row["basicProfile"], options, edition)
            continue
        mask, match = _parse_tag(row["tag"])
        # (a name on one line: the standard's text breaks one before its note, "Icon Image Sequence\n\n(see ...)")
        name = " ".join(str(row.get("name") or "").split()) or keyword_for_tag(match) or \
            f"(not yet in pydicom's dictionary) {row['tag']}"
        entry = Entry(name, mask, match, row["basicProfile"], options, edition)
        if mask == 0xFFFFFFFF:
            exact[match] = entry
        else:
            patterns.append(entry)
    if private is None:
        raise RuntimeError("PS3.15 table has no private-attributes row")
    editions = {e.edition for e in exact.values()} | {e.edition for e in patterns}
    return Table(MappingProxyType(exact), tuple(patterns), private, max(editions))
