"""Property tests of `apply_level` on random datasets full of fake PHI, and on the synthetic study generator.

The random datasets nest sequences up to four deep and hold standard attributes whose PS3.15 Basic Profile
action (as `full_action` resolves it) removes or replaces their value, walked sequences, and private blocks.
Every planted value is a distinctive fake marker: text "PHI" + 6-10 letters/digits, dates 1900-1999, times
and date-times with a fraction, UIDs under "1.2.3.", negative integer and decimal strings. None of them can
equal or contain what the product writes ("Anon", "ANON", "10000101", "2.25." UIDs, "NA" pseudonyms).
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom._dicom_dict import DicomDictionary  # the standard dictionary (datadict does not re-export it)
from pydicom.datadict import (
    dictionary_VM,
    dictionary_VR,
    keyword_for_tag,
    private_dictionary_VR,
)
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import ImplicitVRLittleEndian

from neuroanon.allowlist import SAFE_PRIVATE, find_safe
from neuroanon.apply import apply_level
from neuroanon.layout import mirrored_output
from neuroanon.options import Level, Options
from neuroanon.ps315 import load_table
from neuroanon.read import parses_as_sequence, read_header
from neuroanon.rules import NIDB_ANONYMIZE, REMOVED_AT_FULL, Change, full_action, is_overlay_or_curve
from neuroanon.sample import make_dataset, planted_values

from .helpers import valid_uid

KEY = b"property-test-key-0123456789abcd"
OTHER_KEY = b"property-test-key-OTHER-456789ab"
FULL = Options(level=Level.FULL, key=KEY)
ANONYMIZE = Options(level=Level.ANONYMIZE)
MAX_DEPTH = 4

# VRs that can be filled with a distinctive text value.
VALUE_VRS = frozenset({"PN", "LO", "SH", "LT", "ST", "UT", "UC", "DA", "TM", "DT", "UI", "CS", "AE", "IS", "DS"})
CHANGING_ACTIONS = frozenset("XZDPU")
WALKED_ACTIONS = frozenset("KUD")
FIVE_TAGS: tuple[int, ...] = tuple(sorted(NIDB_ANONYMIZE))

# A remapped UID is "2.25." and ~39 digits: an all-digit planted value (a DA date) could occur in those digits
# by chance. Searches of full output therefore drop the digits of "2.25." UIDs (which are checked separately to
# be valid keyed UIDs); letters, dots and signs of the other markers cannot occur inside them.
_KEYED_UID_DIGITS = re.compile(rb"2\.25\.[0-9]+")


def _tables() -> tuple[list[int], list[int], list[int], list[int]]:
    """Value tags (action X/Z/D/P/U, fillable VR), walked sequences (K/U/D), dropped sequences (X/Z), kept
    sequences that the table does not list (action K), all chosen from the table and dictionary."""
    table = load_table()
    value_tags: list[int] = []
    walked: list[int] = []
    dropped: list[int] = []
    for entry in table:
        tag = entry.match
        if entry.mask != 0xFFFFFFFF or tag in REMOVED_AT_FULL or is_overlay_or_curve(tag) or tag >> 16 == 2:
            continue
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            continue
        action, _ = full_action(tag, entry, FULL)
        if vr == "SQ":
            (walked if action in WALKED_ACTIONS else dropped).append(tag)
        elif vr in VALUE_VRS and action in CHANGING_ACTIONS:
            value_tags.append(tag)
    unlisted = sorted(
        tag
        for tag, (vr, _vm, _name, retired, _keyword) in DicomDictionary.items()
        if vr == "SQ"
        and not retired
        and tag >> 16 not in (0x0002, 0xFFFA, 0xFFFC, 0xFFFE)
        and table.lookup(tag) is None
        and tag not in REMOVED_AT_FULL
    )
    return value_tags, walked, dropped, unlisted


VALUE_TAGS, WALKED_SEQUENCES, DROPPED_SEQUENCES, UNLISTED_SEQUENCES = _tables()
PRIVATE_GROUPS = (0x0009, 0x0011, 0x0019, 0x0021, 0x0029, 0x0043, 0x2001, 0x2005)
KNOWN_CREATORS = tuple(sorted({s.creator for s in SAFE_PRIVATE}))

# --- values ----------------------------------------------------------------------------------------------------

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
markers = st.text(_ALPHABET, min_size=6, max_size=10).map(lambda s: "PHI" + s)  # <= 13 chars: fits SH, CS, AE
dates = st.dates(dt.date(1900, 1, 1), dt.date(1999, 12, 31)).map(lambda d: d.strftime("%Y%m%d"))
# A non-zero fraction keeps a time distinct from the TM dummy "000000.000000".
_moments = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(1999, 12, 31, 23, 59, 59)).filter(
    lambda m: m.microsecond != 0
)
times = _moments.map(lambda m: m.strftime("%H%M%S.") + f"{m.microsecond:06d}")
datetimes = _moments.map(lambda m: m.strftime("%Y%m%d%H%M%S.") + f"{m.microsecond:06d}")
_component = st.integers(1, 10**12).map(str)
uids = st.lists(_component, min_size=1, max_size=3).map(lambda parts: "1.2.3." + ".".join(parts))
integers = st.integers(-(2**31), -(10**8)).map(str)
decimals = st.tuples(st.integers(10**5, 10**8), st.integers(1, 9999)).map(lambda p: f"-{p[0]}.{p[1]}")

VALUES_BY_VR: dict[str, st.SearchStrategy[str]] = {
    "DA": dates,
    "TM": times,
    "DT": datetimes,
    "UI": uids,
    "IS": integers,
    "DS": decimals,
}


def _value(vr: str) -> st.SearchStrategy[str]:
    return VALUES_BY_VR.get(vr, markers)


# --- datasets --------------------------------------------------------------------------------------------------


def _add_value(draw: st.DrawFn, ds: Dataset, tag: int) -> None:
    vr = dictionary_VR(tag)
    many = dictionary_VM(tag) != "1"
    values = draw(st.lists(_value(vr), min_size=1, max_size=2 if many else 1))
    ds[tag] = DataElement(tag, vr, values if len(values) > 1 else values[0])


@st.composite
def _item(draw: st.DrawFn, depth: int, private_sequences: bool) -> Dataset:
    """One dataset (depth 0) or sequence item (depth 1..MAX_DEPTH)."""
    ds = Dataset()
    for tag in draw(st.lists(st.sampled_from(VALUE_TAGS), max_size=6 if depth == 0 else 3, unique=True)):
        _add_value(draw, ds, tag)
    for tag in draw(st.lists(st.sampled_from(FIVE_TAGS), max_size=3, unique=True)):
        _add_value(draw, ds, tag)
    for _ in range(draw(st.integers(0, 2 if depth == 0 else 1))):
        _add_private_block(draw, ds, depth, private_sequences)
    if depth < MAX_DEPTH:
        sequences = st.one_of(
            st.sampled_from(WALKED_SEQUENCES),
            st.sampled_from(UNLISTED_SEQUENCES),
            st.sampled_from(DROPPED_SEQUENCES),
        )
        for tag in draw(st.lists(sequences, max_size=2, unique=True)):
            items = draw(st.lists(_item(depth + 1, private_sequences), min_size=1, max_size=2))
            ds[tag] = DataElement(tag, "SQ", Sequence(items))
    return ds


def _private_vr(creator: str, group: int, offset: int) -> str | None:
    """pydicom's VR for a known creator's private element: read back from Implicit VR, a value of another VR
    than LO would not decode, so such elements are not generated."""
    try:
        return private_dictionary_VR((group << 16) | 0x1000 | offset, creator)
    except KeyError:
        return None


def _add_private_block(draw: st.DrawFn, ds: Dataset, depth: int, private_sequences: bool) -> None:
    """A private block with a random (or allow-listed) creator: LO markers, maybe a private sequence, none of
    them on the allow-list (allow-listed elements are kept by design)."""
    group = draw(st.sampled_from(PRIVATE_GROUPS))
    creator = draw(st.one_of(markers, st.sampled_from(KNOWN_CREATORS)))
    block = ds.private_block(group, creator, create=True)
    offsets = st.integers(0, 0xFF).filter(
        lambda b: find_safe(creator, group, b) is None and _private_vr(creator, group, b) in (None, "LO")
    )
    for offset in draw(st.lists(offsets, min_size=1, max_size=3, unique=True)):
        if private_sequences and depth < MAX_DEPTH and draw(st.integers(0, 4)) == 0:
            block.add_new(offset, "SQ", Sequence([draw(_item(depth + 1, private_sequences))]))
        else:
            block.add_new(offset, "LO", draw(markers))


def encode(ds: Dataset) -> bytes:
    """The dataset encoded as Explicit VR Little Endian (no preamble, no file meta)."""
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds)
    return fp.getvalue()


def _reread(ds: Dataset, implicit: bool) -> Dataset:
    """`ds` as it comes from a file: encoded, then read back lazily (elements stay raw until accessed)."""
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = implicit
    write_dataset(fp, ds)
    return read_dataset(io.BytesIO(fp.getvalue()), is_implicit_VR=implicit, is_little_endian=True)


FORMS = ("memory", "explicit", "implicit")


@dataclass(frozen=True)
class Case:
    """A generated dataset (`source`, in memory) and the input given to apply_level (`ds`): the same dataset,
    or that dataset encoded and read back lazily as the product's reader does (elements stay raw)."""

    source: Dataset
    ds: Dataset
    form: str

    def __repr__(self) -> str:
        return f"Case(form={self.form!r}, source=\n{self.source})"


@st.composite
def cases(draw: st.DrawFn, implicit_private_sequences: bool = True) -> Case:
    """A random dataset with fake PHI; in memory, or read back from Explicit or Implicit VR bytes."""
    form = draw(st.sampled_from(FORMS))
    source = draw(_item(0, implicit_private_sequences or form != "implicit"))
    ds = source if form == "memory" else _reread(source, implicit=form == "implicit")
    return Case(source, ds, form)


# --- planted values --------------------------------------------------------------------------------------------


def _values(elem: DataElement) -> list[str]:
    value = elem.value
    if value is None or elem.VR == "SQ":
        return []
    if isinstance(value, bytes):  # a private element read from implicit VR has VR UN
        return [v for v in value.decode("latin-1").strip(" \x00").split("\\") if v]
    items = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
    return [str(v) for v in items if str(v)]


@dataclass(frozen=True)
class Planted:
    five: frozenset[str]  # values of the five NiDB Anonymize attributes
    other: frozenset[str]  # every other planted value (private creators included)
    uids: frozenset[str]


def planted(ds: Dataset) -> Planted:
    five: set[str] = set()
    other: set[str] = set()
    found_uids: set[str] = set()
    for elem in copy.deepcopy(ds).iterall():
        values = _values(elem)
        if int(elem.tag) in NIDB_ANONYMIZE:
            five.update(values)
            continue
        other.update(v for v in values if v not in KNOWN_CREATORS)
        if elem.VR == "UI":
            found_uids.update(values)
    return Planted(frozenset(five), frozenset(other), frozenset(found_uids))


def _searchable(data: bytes) -> bytes:
    return _KEYED_UID_DIGITS.sub(b"2.25.", data)


def ui_values(ds: Dataset) -> Iterator[str]:
    for elem in ds.iterall():
        if elem.VR == "UI":
            yield from _values(elem)


# --- properties: random datasets -------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, database=None)
@given(cases())
def test_full_leaves_no_planted_value_and_only_valid_keyed_uids(case: Case) -> None:
    plant = planted(case.source)
    result, changes = apply_level(case.ds, FULL)
    data = _searchable(encode(result))
    for value in plant.five | plant.other | plant.uids:
        assert value.encode() not in data, f"a planted value survived full ({_where(case.source, value)})"
    for uid in ui_values(result):
        assert valid_uid(uid), "an invalid UID in the output"
        assert uid.startswith("2.25."), "a UID that was not remapped"
    assert all(isinstance(c, Change) for c in changes)
    assert result.PatientIdentityRemoved == "YES"


def _five(ds: Dataset) -> list[DataElement]:
    return [e for e in _opened(copy.deepcopy(ds)).iterall() if int(e.tag) in NIDB_ANONYMIZE]


def _opened(ds: Dataset) -> Dataset:
    """`ds` with each value of unknown VR (a private sequence read from implicit VR, or a UN) that parses as a
    sequence read as one, at every depth: what a reader that looks inside sees (apply_level returns the
    dataset as read back from the engine's bytes, where such a sequence is again of unknown VR)."""
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        if isinstance(raw, RawDataElement) and raw.VR in (None, "UN") and isinstance(raw.value, bytes) \
                and parses_as_sequence(raw.value):
            ds[tag] = raw._replace(VR="SQ", is_implicit_VR=True, is_little_endian=True)
        if ds[tag].VR == "SQ":
            for item in ds[tag].value:
                _opened(item)
    return ds


# Private sequences read from Implicit VR are covered by the dedicated test below as well.
@settings(max_examples=30, deadline=None, database=None)
@given(cases())
def test_anonymize_replaces_the_five_everywhere_and_keeps_everything_else(case: Case) -> None:
    plant = planted(case.source)
    before = _five(case.source)
    result, changes = apply_level(case.ds, ANONYMIZE)
    after = _five(result)
    assert len(after) == len(before), "one of the five was added or removed"
    for elem in after:
        assert _values(elem) == [NIDB_ANONYMIZE[int(elem.tag)]], f"{elem.tag} {elem.keyword} kept its value"
    assert sum(1 for c in changes if c.action == "replaced") == len(before)
    data = encode(result)
    for value in plant.other:
        assert value.encode() in data, f"a planted value was lost at anonymize ({_where(case.source, value)})"


@settings(max_examples=25, deadline=None, database=None)
@given(cases(), st.sampled_from([FULL, ANONYMIZE]))
def test_the_input_is_not_mutated(case: Case, options: Options) -> None:
    ds = case.ds
    snapshot = copy.deepcopy(ds)
    encoded = encode(copy.deepcopy(ds))
    result, _ = apply_level(ds, options)
    assert result is not ds
    assert encode(ds) == encoded
    assert ds == snapshot
    assert ds.to_json_dict() == snapshot.to_json_dict()


@st.composite
def _cases_with_study_uid(draw: st.DrawFn) -> Case:
    case = draw(cases())
    case.ds.StudyInstanceUID = draw(uids)
    return case


@settings(max_examples=25, deadline=None, database=None)
@given(_cases_with_study_uid())
def test_same_key_same_bytes_other_key_other_uids(case: Case) -> None:
    first, first_changes = apply_level(case.ds, FULL)
    second, second_changes = apply_level(case.ds, FULL)
    assert encode(first) == encode(second) and first_changes == second_changes
    other, _ = apply_level(case.ds, Options(level=Level.FULL, key=OTHER_KEY))
    assert other.StudyInstanceUID != first.StudyInstanceUID
    assert not set(ui_values(first)) & set(ui_values(other)), "a UID mapped the same under two keys"


@pytest.mark.parametrize("keyword", sorted(keyword_for_tag(t) for t in NIDB_ANONYMIZE))
def test_anonymize_reaches_a_private_sequence_read_from_implicit_vr(keyword: str, tmp_path: Path) -> None:
    source = make_dataset(subject=1)
    block = source.private_block(0x0011, "PHIQ7CREATOR", create=True)
    item = Dataset()
    marker = "19230405" if keyword == "PatientBirthDate" else "PHIQ7NAME"
    setattr(item, keyword, marker)
    block.add_new(0x10, "SQ", Sequence([item]))  # pydicom writes a defined length, as many writers do
    source.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    path = tmp_path / "implicit.dcm"
    source.save_as(path, enforce_file_format=True)
    result, _ = apply_level(read_header(path).dataset, ANONYMIZE)
    assert marker.encode() not in encode(result), f"{keyword} in a private sequence kept its value"


# --- properties: the synthetic generator -----------------------------------------------------------------------

PATH_ONLY = frozenset({"FolderName", "FileName"})


@settings(max_examples=25, deadline=None, database=None)
@given(
    st.integers(0, 9999),
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(0, 9999),
)
def test_full_on_generated_instances_leaves_nothing(subject: int, study: int, series: int, instance: int) -> None:
    source = make_dataset(subject=subject, study=study, series=series, instance=instance)
    values = {k: v for k, v in planted_values(subject, study=study).items() if k not in PATH_ONLY}
    result, _ = apply_level(source, FULL)
    assert isinstance(result, FileDataset)
    assert result.preamble == b"\x00" * 128
    data = _searchable(encode(result))
    meta = _searchable(encode(result.file_meta))
    for name, value in values.items():
        assert value.encode() not in data, f"{name} survived full in the dataset"
        assert value.encode() not in meta, f"{name} survived full in the file meta"
    for uid in ui_values(result):
        assert valid_uid(uid)
    assert valid_uid(str(result.file_meta.MediaStorageSOPInstanceUID))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["a", "b.dcm", ".", "..x", ".x", "", "x."]), min_size=1, max_size=6)
       .map("/".join))
def test_a_mirrored_output_path_is_its_normal_form(name: str) -> None:
    """Two zip members './a.dcm' and 'a.dcm' claim one place: the shortcut for a name already normal gives what
    the path object gives."""
    assert mirrored_output(name) == PurePosixPath(name).as_posix()


# --- diagnostics -----------------------------------------------------------------------------------------------


def _where(ds: Dataset, value: str) -> str:
    """Which tag/VR holds `value` (never the value itself), for failure messages."""
    hits = [f"{e.tag} {e.VR}" for e in copy.deepcopy(ds).iterall() if value in _values(e)]
    return ", ".join(hits) or "not in any element"
