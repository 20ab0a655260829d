"""Differential validation with dicom3tools' dciodvfy: anonymizing must not add IOD/VR errors, except by design.

Every real corpus file that neuroanon writes (at anonymize and at full) is checked by dciodvfy before and after.
The "Error - ..." lines are normalized (element values, quoted strings, UIDs and numbers taken out; message text,
attribute names and tags kept) and every error line the output has and the input did not must be explained by
`BY_DESIGN`: an error that a documented PS3.15 Basic Profile action causes. Any other new error (a broken length,
a bad VR, a wrong value multiplicity from our writer, an invalid UID, dciodvfy crashing on our output) fails.

Files dciodvfy cannot handle (it aborts or times out on the input) are left out.
"""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from neuroanon.options import Level, Options
from neuroanon.pipeline import anonymize_file
from neuroanon.ps315 import load_table
from neuroanon.report import Status

from .corpus import corpus_files
from .tools import require_tool

KEY = b"dciodvfy-test-key-0123456789abcd"
TIMEOUT = 60


@dataclass(frozen=True)
class ByDesign:
    """A new dciodvfy error that a Basic Profile action causes: `pattern` matches the normalized line; `tag` is
    the attribute the action applies to and `actions` the Table E.1-1 codes (any of them) that cause it."""

    pattern: str
    tag: int
    actions: frozenset[str]
    why: str


BY_DESIGN: tuple[ByDesign, ...] = (
    # Referenced Study Sequence (0008,1110), Table E.1-1 action X/Z. neuroanon takes Z for X/Z (an empty value keeps
    # a Type 2 use valid), so the sequence stays with zero items; in the General Study Module it is Type 3, where
    # dciodvfy wants 1-n items.
    ByDesign(r"^Error - Bad Sequence number of Items N \(N-n Required by Module definition\) "
             r"Element=<ReferencedStudySequence> Module=<GeneralStudy>$",
             0x00081110, frozenset({"X/Z"}), "X/Z -> Z: Referenced Study Sequence emptied (zero items)"),
    ByDesign(r"^Error - Bad attribute Value Multiplicity Type N Optional Element=<ReferencedStudySequence> "
             r"Module=<GeneralStudy>$",
             0x00081110, frozenset({"X/Z"}), "X/Z -> Z: Referenced Study Sequence emptied (zero items)"),
    # Responsible Person (0010,2297) and Responsible Organization (0010,2299), action X: removed. In the Patient
    # Module they are Type 2C (required, possibly empty, for a non-human patient), so a veterinary image misses them.
    ByDesign(r"^Error - Missing attribute Type 2C Conditional Element=<ResponsiblePerson> Module=<Patient>$",
             0x00102297, frozenset({"X"}), "X: Responsible Person removed (Type 2C for a non-human patient)"),
    ByDesign(r"^Error - Missing attribute Type 2C Conditional Element=<ResponsibleOrganization> Module=<Patient>$",
             0x00102299, frozenset({"X"}), "X: Responsible Organization removed (Type 2C for a non-human patient)"),
)

# dciodvfy stops checking an input at the first unreadable element ("Tags out of order ..." or "Dicom dataset read
# failed"); the anonymized output, which drops the offending (private or unknown) elements, is read to its end and
# shows defects the input already had. Such an error is accepted only for an input whose check was cut short, and
# only for data neuroanon copies byte for byte (the test checks that the pixel data is unchanged).
INPUT_CUT_SHORT = re.compile(r"^Error - (Tags out of order|Dicom dataset read failed)")
UNMASKED = (re.compile(r"^Error - PixelData has incorrect value length - expected N dec - got N dec$"),)

_NAMED = re.compile(r"(Element=|Module=|Macro=|attribute )<([^<>]*)>")


def normalize(line: str) -> str:
    """The message text, tags and attribute names of one dciodvfy line; values, quotes and numbers taken out."""
    line = re.sub(r"= <.*>", "= <>", line)  # the element value, shown after "="
    line = re.sub(r'"[^"]*"', '""', line)
    names: list[str] = []

    def keep(match: re.Match[str]) -> str:
        names.append(f"{match.group(1)}<{match.group(2)}>")
        return f"\0{len(names) - 1}\0"

    line = _NAMED.sub(keep, line)
    line = re.sub(r"<[^<>]*>", "<>", line)  # any other bracketed text is a value ("value <...>", "UID <...>")
    # Numbers and UIDs become N; hex tags (0x0010) and the placeholders of kept names stay.
    line = re.sub(r"(?<![0-9A-Fa-fx\0])\d+(?:\.\d+)*(?![0-9A-Fa-fx\0])", "N", line)
    line = re.sub(r"\0(\d+)\0", lambda m: names[int(m.group(1))], line)
    return line.strip()


@dataclass(frozen=True)
class Check:
    returncode: int | None  # None: timed out
    errors: frozenset[str]


def dciodvfy(tool: str, path: Path) -> Check:
    try:
        done = subprocess.run([tool, str(path)], capture_output=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return Check(None, frozenset())
    text = (done.stdout + done.stderr).decode("latin-1")
    return Check(done.returncode, frozenset(normalize(x) for x in text.splitlines() if x.startswith("Error")))


@dataclass(frozen=True)
class Pair:
    source: Path
    level: Level
    output: Path
    before: Check
    after: Check

    @property
    def label(self) -> str:
        return f"{self.source.parent.name}/{self.source.name} at {self.level}"


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> list[Pair]:
    tool = require_tool("dciodvfy")
    root = tmp_path_factory.mktemp("dciodvfy")
    written: list[tuple[Path, Level, Path]] = []
    for n, source in enumerate(corpus_files()):
        for level in (Level.ANONYMIZE, Level.FULL):
            out = root / f"{n}-{level}"
            # allow_burned_in: the check is about the header; full would quarantine secondary captures.
            record = anonymize_file(source, out, Options(level=level, key=KEY, allow_burned_in=True))
            if record.status is Status.WRITTEN and record.dicom and record.output is not None:
                written.append((source, level, out / record.output))
    sources = sorted({s for s, _, _ in written})
    with ThreadPoolExecutor(2) as pool:
        before = dict(zip(sources, pool.map(lambda p: dciodvfy(tool, p), sources), strict=True))
        handled = [w for w in written if (before[w[0]].returncode or 0) >= 0 and before[w[0]].returncode is not None]
        after = list(pool.map(lambda w: dciodvfy(tool, w[2]), handled))
    return [Pair(s, lv, o, before[s], a) for (s, lv, o), a in zip(handled, after, strict=True)]


def _same_pixels(pair: Pair) -> bool:
    def pixels(path: Path) -> object:
        return pydicom.dcmread(path, force=True).get("PixelData")

    return pixels(pair.source) == pixels(pair.output)


def unexplained(pair: Pair) -> list[str]:
    if pair.after.returncode is None or pair.after.returncode < 0:
        return [f"dciodvfy {'timed out' if pair.after.returncode is None else 'crashed'} on the output"]
    found = []
    for line in sorted(pair.after.errors - pair.before.errors):
        if pair.level is Level.FULL and any(re.match(entry.pattern, line) for entry in BY_DESIGN):
            continue
        cut_short = any(INPUT_CUT_SHORT.match(x) for x in pair.before.errors)
        if cut_short and any(p.match(line) for p in UNMASKED) and _same_pixels(pair):
            continue
        found.append(line)
    return found


def test_normalize_keeps_names_and_drops_values() -> None:
    line = "Error - Value invalid for this VR - (0x0010,0x0010) PN Patient's Name  PN [1] = <X^Y> - Length invalid"
    assert normalize(line) == line.replace("[1] = <X^Y>", "[N] = <>")
    line = "Error - Unrecognized enumerated value <ABC> for value 1 of attribute <Patient's Sex> UID 1.2.840.10008"
    assert normalize(line) == "Error - Unrecognized enumerated value <> for value N of attribute <Patient's Sex> UID N"
    line = 'Error - Illegal root for UID - "1.2.3" in (0x0002,0x0012) Element=<ImplementationClassUID2> Module=<X>'
    expected = 'Error - Illegal root for UID - "" in (0x0002,0x0012) Element=<ImplementationClassUID2> Module=<X>'
    assert normalize(line) == expected


def test_by_design_entries_follow_the_profile_table() -> None:
    """Each allowed error names an attribute whose Table E.1-1 action is the one said to cause it."""
    table = {entry.match: entry.basic for entry in load_table() if entry.mask == 0xFFFFFFFF}
    for entry in BY_DESIGN:
        assert table.get(entry.tag) in entry.actions, f"({entry.tag >> 16:04X},{entry.tag & 0xFFFF:04X})"


@pytest.mark.parametrize("level", [Level.ANONYMIZE, Level.FULL], ids=str)
def test_no_new_dciodvfy_errors_but_by_design(pairs: list[Pair], level: Level) -> None:
    mine = [p for p in pairs if p.level is level]
    assert len(mine) > 100, "too few files checked"
    problems = {p.label: bad for p in mine if (bad := unexplained(p))}
    report = "\n".join(f"{label}:\n    " + "\n    ".join(lines) for label, lines in sorted(problems.items()))
    assert not problems, f"new dciodvfy errors not explained by the profile:\n{report}"
