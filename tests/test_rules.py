"""The rules core: each rule stated once, and everything that acts or reports on elements follows it.

- every row of PS3.15 Table E.1-1 decides, for every VR its attribute can have, what its action code means (the
  meanings are written out here from PS3.15 E.1 and DESIGN.md, not taken from the code);
- `explain` shows the compiled decisions;
- an element for every table row, at the top level and inside a sequence item, comes out of the anonymizer as
  its decision says, byte for byte the same on the engine;
- verify flags a value the core says must not survive, and nothing in what the anonymizer wrote.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import dictionary_has_tag, dictionary_is_retired, dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from neuroanon.allowlist import SAFE_PRIVATE
from neuroanon.apply import apply_level
from neuroanon.keys import Keyring
from neuroanon.options import Level, Options
from neuroanon.profile import explain
from neuroanon.ps315 import Entry, load_table
from neuroanon.rules import (
    GRAPHIC_ANNOTATION_SEQUENCE,
    NIDB_ANONYMIZE,
    NIDB_FULL,
    REMOVED_AT_FULL,
    Context,
    Op,
    compile_rules,
    dummy_value,
    is_overlay_or_curve,
)
from neuroanon.sample import make_dataset
from neuroanon.tags import PATIENT_ID, PATIENT_NAME
from neuroanon.verify import _full

from .test_engine import _engine

KEY = b"rules-test-key-0123456789abcdef!"
FULL = Options(level=Level.FULL, key=KEY)
TABLE = load_table()
DATES = frozenset({"DA", "DT", "TM"})
TEXT = frozenset({"PN", "LO", "SH", "LT", "ST", "UT", "UC", "CS", "AE", "AS", "DA", "DT", "TM", "IS", "DS"})
# One option set per option column the table has, each alone: (field of Options, column of the table).
OPTION_COLUMNS = (("shift_dates", "rtnLongModifDatesOpt"), ("clean_descriptors", "cleanDescOpt"),
                  ("retain_patient_characteristics", "rtnPatCharsOpt"), ("retain_device_identity", "rtnDevIdOpt"))
# A combined code depends on the attribute's Type in its IOD: the variant valid for every Type is taken.
TYPE_SAFE = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}


def _with(field: str | None) -> Options:
    """Full with at most one option on."""
    return Options(level=Level.FULL, key=KEY, shift_dates=field == "shift_dates",
                   clean_descriptors=field == "clean_descriptors",
                   retain_patient_characteristics=field == "retain_patient_characteristics",
                   retain_device_identity=field == "retain_device_identity")


def _code(entry: Entry, column: str | None) -> str:
    """The action code a table row gives with at most one option on."""
    tag = entry.match
    if tag in (PATIENT_ID, PATIENT_NAME):
        return "P"  # NiDB: the keyed pseudonym
    if tag >> 16 == 0:
        return "X"  # a command group element has no place in a dataset
    if entry.name in ("Institution Code Sequence", "Operator Identification Sequence",
                      "Person Identification Code Sequence"):
        return "X"  # D would need a dummy code item: a person or institution coded is removed whole
    code = entry.options.get(column, entry.basic) if column else entry.basic
    code = TYPE_SAFE.get(code, code)
    if column == "rtnLongModifDatesOpt" and column in entry.options and code == "C":
        if entry.name in ("Frame Origin Timestamp", "Certified Timestamp"):  # (OB: a time in bytes is not shifted)
            return TYPE_SAFE.get(entry.basic, entry.basic)
        return "S"  # "modified dates": shifted by the subject's offset
    return "D" if code == "Z" and tag in NIDB_FULL else code  # NiDB writes a value where the profile empties


def _meaning(code: str, vr: str) -> Op:
    """What an action code means for a value of VR `vr` (SQ: a sequence)."""
    if code == "X":
        return Op.REMOVE
    if vr == "SQ":
        return Op.EMPTY if code == "Z" else Op.WALK_ITEMS  # a sequence is kept and its items cleaned
    if code in ("U", "D") and vr == "UI":
        return Op.REMAP_UID  # a dummy UID would break references: remapped
    if code == "Z":
        return Op.DUMMY if vr in DATES else Op.EMPTY  # an empty date becomes NiDB's 10000101
    if code == "C":
        return Op.CLEAN_TEXT if vr in TEXT - DATES - {"AS", "IS", "DS"} else Op.DUMMY
    if code == "S":
        return Op.SHIFT_DATE if vr in ("DA", "DT") else Op.KEEP  # whole days: a time stays
    return {"K": Op.KEEP, "D": Op.DUMMY, "U": Op.REMAP_UID, "P": Op.PSEUDONYM}[code]


def _vrs(tag: int) -> list[str]:
    """Every VR the attribute can have ("" when the dictionary does not know it)."""
    try:
        return str(dictionary_VR(tag)).split(" or ")
    except KeyError:
        return [""]


@pytest.mark.parametrize("column", [None, *(c for _, c in OPTION_COLUMNS)])
def test_every_table_row_decides_what_its_code_means(column: str | None) -> None:
    field = next((f for f, c in OPTION_COLUMNS if c == column), None)
    rules = compile_rules(_with(field))
    for entry in TABLE:
        if entry.mask != 0xFFFFFFFF:
            continue
        tag, code = entry.match, _code(entry, column)
        if tag == GRAPHIC_ANNOTATION_SEQUENCE:
            code = "X"  # removed whole, as overlays and curves are (Clean Graphics, stricter than its D)
        # A file meta row's code applies in the file meta; in a dataset such an element is removed.
        assert rules.tag(tag).code == ("X" if tag >> 16 == 2 else code), entry.name
        for vr in _vrs(tag):
            context = Context.META if tag >> 16 == 2 else Context.DATASET
            assert rules.decide(tag, vr, context) is _meaning(code, vr), f"{entry.name} as {vr or 'unknown'}"
            if context is Context.DATASET and vr != "SQ":
                assert rules.decide(tag, "SQ", context) is _meaning(code, "SQ"), f"{entry.name} as a sequence"


def test_repeating_groups_and_beyond_the_table_removed() -> None:
    rules = compile_rules(FULL)
    for tag in (0x60003000, 0x60224000, 0x50000010, 0x501E3000, *REMOVED_AT_FULL, 0x00090000, 0x00FF0010):
        for vr in ("OW", "SQ", "LO", ""):
            assert rules.decide(tag, vr, Context.DATASET) is Op.REMOVE, hex(tag)


def test_file_meta_kept_remapped_or_removed() -> None:
    rules = compile_rules(FULL)
    assert rules.decide(0x00020003, "UI", Context.META) is Op.REMAP_UID
    for tag in (0x00020001, 0x00020002, 0x00020010, 0x00020012):
        assert rules.decide(tag, "UI", Context.META) is Op.KEEP
    assert rules.decide(0x00020013, "SH", Context.META) is Op.CLEAN_TEXT  # (removed if it names the site)
    for tag in (0x00020016, 0x00020100, 0x00020102):
        assert rules.decide(tag, "AE", Context.META) is Op.REMOVE
    assert compile_rules(Options(level=Level.ANONYMIZE)).decide(0x00020016, "AE", Context.META) is Op.KEEP
    for rules in (compile_rules(FULL), compile_rules(Options(level=Level.ANONYMIZE))):
        for tag in (0x00020003, 0x00020016, 0x00020102):  # in a dataset, it would read back as the file meta
            assert rules.decide(tag, "OB", Context.DATASET) is Op.REMOVE, hex(tag)


def test_private_elements_by_their_creator() -> None:
    keep, drop = compile_rules(FULL), compile_rules(Options(level=Level.FULL, key=KEY, retain_safe_private=False))
    for safe in SAFE_PRIVATE:
        tag = safe.group << 16 | 0x1000 | safe.element
        expected = Op.WALK_ITEMS if safe.kind == "sequence" else Op.CLEAN_TEXT
        assert keep.decide(tag, "UN", Context.PRIVATE, safe.creator) is expected, safe.name
        assert keep.decide(tag, "UN", Context.PRIVATE, " " + safe.creator) is Op.REMOVE, "a lookalike creator"
        assert drop.decide(tag, "UN", Context.PRIVATE, safe.creator) is Op.REMOVE
    anonymize = compile_rules(Options(level=Level.ANONYMIZE))
    assert anonymize.decide(0x00291010, "OB", Context.PRIVATE, "SIEMENS CSA HEADER") is Op.KEEP
    assert keep.decide(0x00290001, "LO", Context.PRIVATE) is Op.REMOVE  # below the creators: illegal


def test_anonymize_replaces_the_five_whatever_their_vr() -> None:
    rules = compile_rules(Options(level=Level.ANONYMIZE))
    for tag, value in NIDB_ANONYMIZE.items():
        for vr in ("PN", "LO", "DA", "UN", "SQ"):
            assert rules.decide(tag, vr, Context.DATASET) is Op.DUMMY
        assert rules.tag(tag).value == value
    assert rules.decide(0x00100020, "LO", Context.DATASET) is Op.KEEP
    assert rules.decide(0x00081140, "SQ", Context.DATASET) is Op.WALK_ITEMS


@pytest.mark.parametrize("level", [Level.ANONYMIZE, Level.FULL])
def test_rules_of_tags_beyond_the_table_are_kept_for_a_bounded_number_and_alike_after(level: Level) -> None:
    """Files full of unknown tags (65,536 of them and more) do not grow a worker's memory without end: past the
    bound a rule is compiled each time, the same rule."""
    from neuroanon.rules import Rules

    rules = Rules(Options(level=level, key=KEY))
    tags = [group << 16 | element for group in range(0x0F02, 0x1000, 2) for element in range(0x1000, 0xFFFF, 0x60)
            if not dictionary_has_tag(group << 16 | element)]
    assert len(tags) > 1 << 16
    first = [rules.tag(tag) for tag in tags]
    assert len(rules._tags) <= 1 << 16
    assert [rules.tag(tag) for tag in tags] == first
    assert all(rule.op("LO") is (Op.REMOVE if level is Level.FULL else Op.KEEP) for rule in first[::97])


def test_compiled_once_per_option_set() -> None:
    first = compile_rules(Options(level=Level.FULL, key=KEY, lookup={"A": "B"}))
    assert compile_rules(Options(level=Level.FULL, key=b"another key", quarantine=Path("q"))) is first
    assert compile_rules(Options(level=Level.FULL, key=KEY, shift_dates=True)) is not first


@pytest.mark.parametrize("field", [None, *(f for f, _ in OPTION_COLUMNS)])
def test_explain_shows_the_compiled_decisions(field: str | None) -> None:
    options = _with(field)
    rules = compile_rules(options)
    rows = explain(Level.FULL, options)[1:]  # after the table's edition: a row per table row, in its order
    for entry, row in zip(TABLE, rows, strict=False):
        assert row.tag == entry.tag_text
        if entry.mask == 0xFFFFFFFF:
            rule = rules.tag(entry.match)
            assert (row.action, row.source) == (rule.code, rule.source), entry.name
        else:
            assert row.action == "X" and is_overlay_or_curve(entry.match | 1)
    anonymize = {row.tag: row.action for row in explain(Level.ANONYMIZE)}
    rules = compile_rules(Options(level=Level.ANONYMIZE))
    assert all(anonymize[f"({t >> 16:04X},{t & 0xFFFF:04X})"] == rules.tag(t).code for t in NIDB_ANONYMIZE)


# --- the anonymizer follows the decisions ---------------------------------------------------------------------

# VRs written with a value of their own; binary and ambiguous VRs are left to the corpus tests.
_FAKE_VRS = frozenset({"PN", "LO", "SH", "LT", "ST", "UT", "UC", "CS", "AE", "AS", "DA", "DT", "TM", "IS", "DS",
                       "UI", "US", "UL", "SS", "SL", "FL", "FD"})
ITEM_SEQUENCE = 0x00189117  # MRDiffusionSequence: outside the table, a sequence whose items are walked


def _fake(vr: str, n: int) -> object:
    """A fake value of VR `vr`, different for every `n` and sharing no word with any other."""
    day = dt.date(2001, 1, 1) + dt.timedelta(days=n)
    values: dict[str, object] = {
        "PN": f"V{n:04d}Q^W{n:04d}", "CS": f"C{n:04d}", "AE": f"AE{n:04d}", "AS": "045Y",
        "DA": day.strftime("%Y%m%d"), "TM": "101112", "DT": day.strftime("%Y%m%d") + "101112", "IS": str(n),
        "DS": f"{n}.5", "UI": f"1.2.826.0.1.3680043.99.{n}", "FL": n + 0.5, "FD": n + 0.5,
    }
    return values.get(vr, n if vr in ("US", "UL", "SS", "SL") else f"V{n:04d}X{n:04d}")


def _table_tags() -> list[int]:
    """Table rows an element can be written for: a standard attribute of one plain VR, in a dataset."""
    return [e.match for e in TABLE if e.mask == 0xFFFFFFFF and dictionary_has_tag(e.match)
            and e.match >> 16 not in (0, 2) and e.match not in REMOVED_AT_FULL
            and str(dictionary_VR(e.match)) in _FAKE_VRS and not dictionary_is_retired(e.match)]


def _every_row(n: int) -> Dataset:
    ds = Dataset()
    for i, tag in enumerate(_table_tags()):
        ds.add_new(tag, dictionary_VR(tag), _fake(str(dictionary_VR(tag)), n + i))
    return ds


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file with an element for every plain table row, at the top level and inside an item."""
    ds = make_dataset(subject=7)
    for elem in _every_row(0):
        ds[elem.tag] = elem
    ds.add_new(ITEM_SEQUENCE, "SQ", Sequence([_every_row(1000)]))
    path = tmp_path_factory.mktemp("rules") / "every-row.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _outcome_problems(before: Dataset, after: Dataset, where: str) -> list[str]:
    """Elements of `before` whose fate in `after` is not what the rules decide."""
    rules, keyring = compile_rules(FULL), Keyring(KEY)
    pseudonym = keyring.pseudonym(str(before.PatientID))
    problems = []
    for tag in _table_tags():
        vr = str(dictionary_VR(tag))
        op = rules.decide(tag, vr, Context.DATASET)
        value = after[tag].value if tag in after else None
        fine = {
            Op.REMOVE: tag not in after,
            Op.KEEP: tag in after and value == before[tag].value,
            Op.EMPTY: tag in after and after[tag].is_empty,
            Op.DUMMY: str(value) == str(dummy_value(vr)),
            Op.REMAP_UID: str(value) == keyring.uid(str(before[tag].value)),
            Op.PSEUDONYM: str(value) == pseudonym,
        }[op]
        if not fine:
            problems.append(f"{where}({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr}: not {op.name}")
    return problems


def test_the_anonymizer_does_what_the_rules_decide(source: Path) -> None:
    before = pydicom.dcmread(source)
    after, _ = apply_level(before, FULL)
    assert ITEM_SEQUENCE in after, "the item sequence was not kept"
    problems = _outcome_problems(before, after, "")
    problems += _outcome_problems(before[ITEM_SEQUENCE].value[0], after[ITEM_SEQUENCE].value[0], "item ")
    assert not problems, problems


def test_explain_says_which_dates_and_times_shift(source: Path) -> None:
    """With Modified Dates, explain's words for each date, date-time and time row say what the anonymizer does:
    dates and date-times shift, a time of day stays (found from outside: every time read "shifted")."""
    options = Options(level=Level.FULL, key=KEY, shift_dates=True)
    before = pydicom.dcmread(source)
    after, _ = apply_level(before, options)
    detail = {row.tag: row.detail for row in explain(Level.FULL, options)}
    checked = 0
    for tag in _table_tags():
        text = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        if str(dictionary_VR(tag)) not in ("DA", "DT", "TM") or compile_rules(options).tag(tag).code != "S":
            continue
        checked += 1
        shifted = tag in after and after[tag].value != before[tag].value
        assert detail[text].startswith("shifted") == shifted, (text, detail[text])
    assert checked > 20


def test_a_time_in_bytes_is_not_kept_when_dates_shift() -> None:
    """Frame Origin and Certified Timestamp (OB) hold an instant that cannot be shifted: with Modified Dates they
    get the basic profile's action, not kept as a time of day is (found from outside: kept, they undid the shift)."""
    ds = make_dataset(subject=7)
    ds.add_new(0x00340007, "OB", b"20240115083000.000000")  # Frame Origin Timestamp
    ds.add_new(0x04000310, "OB", b"20240115083000")  # Certified Timestamp
    after, _ = apply_level(ds, Options(level=Level.FULL, key=KEY, shift_dates=True))
    assert 0x04000310 not in after
    assert after[0x00340007].value != ds[0x00340007].value


def test_every_row_taken_by_the_engine(source: Path, tmp_path: Path) -> None:
    assert _engine(source, tmp_path, FULL), "the engine declined the file"


# --- verify follows the decisions -----------------------------------------------------------------------------


def test_verify_flags_what_must_not_survive(source: Path) -> None:
    """Every value the rules change or remove is a finding when it survives; nothing the anonymizer wrote is."""
    before = pydicom.dcmread(source)
    rules = compile_rules(FULL)
    after, _ = apply_level(before, FULL)
    assert _full(after, "", rules) == []
    flagged = {f.split(" ")[0] for f in _full(before, "", rules)}
    for tag in _table_tags():
        op = rules.decide(tag, str(dictionary_VR(tag)), Context.DATASET)
        where = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        # (an original's name or ID is no keyed pseudonym: flagged too)
        if op in (Op.REMOVE, Op.EMPTY, Op.DUMMY, Op.REMAP_UID, Op.PSEUDONYM):
            assert where in flagged, f"{where} {op.name}: an original value that survives is not flagged"
        else:
            assert where not in flagged, f"{where} {op.name}: flagged though the rules keep or rewrite it"
