"""`explain`: a view of the compiled rules (rules.py), tag by tag, as a Markdown table.

Each row of Table E.1-1 and of the technical allow-list shows the action code, what happens and the rule that
chose it, as `compile_rules` decided them; the other rows describe the rules for what no table lists. The README's
table is tested against it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pydicom.datadict import dictionary_VR

from .allowlist import SAFE_PRIVATE
from .options import Level, Options
from .ps315 import OPTION_CODES, load_table
from .rules import DUMMY_TEXT, NIDB_ANONYMIZE, REMOVED_AT_FULL, TEXT_VRS, Op, Rules, compile_rules
from .tags import tag_text
from .technical import TECHNICAL


@dataclass(frozen=True)
class Row:
    """One line of `explain`: which tags, what happens to them, and the rule's source."""

    tag: str
    name: str
    action: str
    detail: str
    source: str


_ACTION_WORDS = {
    "K": "kept",
    "X": "removed",
    "Z": "emptied",
    "D": "replaced with a dummy",
    "C": "cleaned of identifying values",
    "U": "remapped to a keyed 2.25 UID",
    "P": "replaced with the keyed pseudonym (or --lookup value)",
    "S": "shifted by the subject's keyed day offset",
}
# What D and Z come to, by the operation they take for the attribute's VR.
_OP_WORDS = {Op.EMPTY: "emptied", Op.WALK_ITEMS: "kept, its items cleaned", Op.REMAP_UID: _ACTION_WORDS["U"]}


def explain(level: Level, options: Options | None = None) -> list[Row]:
    """Every rule of a level, tag by tag, as compiled for `options`."""
    options = Options(level=level) if options is None else replace(options, level=level)
    if level is Level.ORIGINAL:
        return [Row("(all)", "every element", "K", "file copied byte for byte", "NiDB Original")]
    rules = compile_rules(options)
    if level is Level.ANONYMIZE:
        rows = [_anonymize_row(rules, tag) for tag in NIDB_ANONYMIZE]
        misplaced = rules.tag(0x00020010)  # (a file meta element found in the dataset, of malformed input)
        rows.append(Row("(0002,xxxx)", "file meta element in the dataset", misplaced.code,
                        "removed: kept, it would read back as the file meta", misplaced.source))
        rows.append(Row("(0012,0063)", "DeidentificationMethod", "added", "names the level", "neuroanon"))
        return rows
    return _table_rows(rules) + _beyond_table_rows(rules) + _unlisted_rows(rules) + [
        Row("(0012,0062/0063/0064)", "De-identification marks", "added",
            "PatientIdentityRemoved YES, method, CID 7050 codes", "PS3.15 E.1"),
        Row("(0028,0303)", "LongitudinalTemporalInformationModified", "added",
            "MODIFIED with --shift-dates, else REMOVED", "PS3.15 E.1"),
    ]


def _anonymize_row(rules: Rules, tag: int) -> Row:
    rule = rules.tag(tag)
    return Row(tag_text(tag), rule.keyword, rule.code, f"`{rule.value}`, at any depth", rule.source)


def _table_rows(rules: Rules) -> list[Row]:
    """One row per row of Table E.1-1; a repeating group is shown by a tag it covers."""
    table = load_table()
    rows = [Row("(table)", f"PS3.15 Table E.1-1, edition {table.edition}", "", "one row per attribute it lists; "
                "attributes it does not list follow the safe-by-default rows at the end", "PS3.15")]
    for entry in table:
        if entry.mask == 0xFFFFFFFF:
            rule = rules.tag(entry.match)
            rows.append(Row(entry.tag_text, entry.name, rule.code, _detail(rules, entry.match), rule.source))
        else:
            rule = rules.tag(entry.match | 1)  # (50xx,xxxx) holds group lengths too, recorded apart
            rows.append(Row(entry.tag_text, entry.name, rule.code, "whole group removed", rule.source))
    return rows


def _beyond_table_rows(rules: Rules) -> list[Row]:
    """What full removes beyond the table: signatures, padding, group lengths, file meta, private elements."""
    rows = [Row(tag_text(tag), name, rules.tag(tag).code, "removed", "neuroanon")
            for tag, name in REMOVED_AT_FULL.items()]
    rows.append(Row("(gggg,0000)", "Group Length", rules.tag(0x00080000).code,
                    "removed (retired; stale after changes)", "neuroanon"))
    rows.append(Row("(0002,xxxx)", "File Meta", "X", "all but version, SOP class/instance (remapped), "
                    "transfer syntax and implementation (its version name removed if it holds an identifying "
                    "value); 128-byte preamble zeroed", "neuroanon"))
    rows.append(Row("(gggg,eeee) odd", "Private Attributes", "X", "removed unless on the allow-list below",
                    "basic profile"))
    if rules.options.retain_safe_private:
        for safe in SAFE_PRIVATE:
            rows.append(Row(safe.tag_text, f"{safe.creator}: {safe.name}", "K", safe.why,
                            OPTION_CODES["rtnSafePrivOpt"][1]))
    rows.append(Row("(even group)", "not in the DICOM dictionary", "X", "removed (unknown meaning)", "neuroanon"))
    return rows


def _unlisted_rows(rules: Rules) -> list[Row]:
    """The safe-by-default stance for standard attributes Table E.1-1 does not list, and the allow-list."""
    options = rules.options
    source = "neuroanon: safe by default"
    text = ("C", "cleaned of identifying values (Clean Descriptors; PN removed)") if options.clean_descriptors \
        else ("X", "removed")
    dates = ("S", "shifted (dates) or kept (times)") if options.shift_dates else ("D", "dummy date or time")
    rows = [
        Row("(not in table)", "text: " + " ".join(sorted(TEXT_VRS)), text[0],
            text[1] + ", unless on the technical allow-list below", source),
        Row("(not in table)", "UID (UI)", "U", "remapped to a keyed 2.25 UID; well-known standard UIDs (DICOM root "
            "1.2.840.10008, pydicom's UID dictionary) and the class UIDs below kept", source),
        Row("(not in table)", "date, date-time, time (DA DT TM)", *dates, source),
        Row("(not in table)", "retired attributes", "X", "removed", source),
        Row("(0000,xxxx)", "command group elements in a dataset", "X", "removed", source),
        Row("(not in table)", "any other VR (numbers, code strings, binary)", "K",
            "kept (technical); sequences kept and their items walked with these rules", source),
        Row("(any)", "sequence stored as VR UN", "", "opened as the implicit VR little endian sequence it is "
            "(PS3.5 6.2.2) and walked with these rules; a UN attribute otherwise read by its dictionary VR", source),
    ]
    for entry in TECHNICAL.values():
        code = rules.tag(entry.tag).code
        why = entry.why.split(": free text")[0] + ": free text, cleaned (Clean Descriptors)" if code == "C" \
            else entry.why
        rows.append(Row(entry.tag_text, entry.keyword, code, why, "technical allow-list"))
    return rows


def _detail(rules: Rules, tag: int) -> str:
    """What a table row's action does to the attribute, by the VR the dictionary gives it."""
    code = rules.tag(tag).code
    if rules.tag(tag).technical is not None:
        return _ACTION_WORDS[code] + ", unless a technical encoding (see the rule)"
    if code not in ("D", "Z", "S"):
        return _ACTION_WORDS[code]
    try:
        vr = str(dictionary_VR(tag))
    except KeyError:
        vr = ""
    op = rules.tag(tag).op(vr)
    if code == "S":
        if op is Op.SHIFT_DATE:
            return _ACTION_WORDS[code]
        return "kept (a time of day stays when whole days shift)" if vr == "TM" else "kept (it holds no date)"
    return f"`{DUMMY_TEXT.get(vr, '0')}`" if op is Op.DUMMY else _OP_WORDS[op]


def render_rules(rules: list[Row]) -> str:
    """`explain` output: a Markdown table, one rule a row."""
    lines = ["| tag | attribute | action | what happens | rule |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r.tag} | {r.name} | {r.action} | {r.detail} | {r.source} |" for r in rules]
    return "\n".join(lines)
