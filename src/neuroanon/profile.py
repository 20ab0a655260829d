"""The rules of each level, as data: which attribute gets which action, and why.

Actions use the PS3.15 codes (K keep, X remove, Z empty, D dummy, C clean, U remap UID) plus two of ours:
P (keyed pseudonym or lookup value) and S (date shifted by the subject's keyed offset, PS3.15 option 113107).
Each rule can describe itself; `explain` prints them and the README's table is tested against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pydicom.datadict import dictionary_is_retired, dictionary_VR, keyword_for_tag

from .allowlist import SAFE_PRIVATE
from .options import Level, Options
from .ps315 import OPTION_CODES, Entry, load_table
from .technical import TECHNICAL, technical

# The NiDB "Anonymize" attributes and the values NiDB writes into them.
NIDB_ANONYMIZE: Mapping[int, str] = MappingProxyType(
    {
        0x00080090: "Anon",  # ReferringPhysicianName
        0x00081050: "Anon",  # PerformingPhysicianName
        0x00081070: "Anon",  # OperatorsName
        0x00100010: "Anon",  # PatientName
        0x00100030: "10000101",  # PatientBirthDate
    }
)

# The NiDB "Anonymize Full" attributes: the five above and fourteen more.
NIDB_FULL: frozenset[int] = frozenset(NIDB_ANONYMIZE) | {
    0x00080080,  # InstitutionName
    0x00080081,  # InstitutionAddress
    0x00081010,  # StationName
    0x00081030,  # StudyDescription
    0x00080020,  # StudyDate
    0x00080021,  # SeriesDate
    0x00080022,  # AcquisitionDate
    0x00080023,  # ContentDate
    0x00080030,  # StudyTime
    0x00080031,  # SeriesTime
    0x00080032,  # AcquisitionTime
    0x00080033,  # ContentTime
    0x00100020,  # PatientID
    0x00101030,  # PatientWeight
}

PATIENT_ID = 0x00100020
PATIENT_NAME = 0x00100010
PSEUDONYM_TAGS = frozenset({PATIENT_ID, PATIENT_NAME})

# Dummy values by VR for action D (PS3.15: a non-zero-length value consistent with the VR).
DUMMY_TEXT: Mapping[str, str] = MappingProxyType(
    {
        "PN": "Anon",
        "LO": "Anon",
        "SH": "Anon",
        "LT": "Anon",
        "ST": "Anon",
        "UT": "Anon",
        "UC": "Anon",
        "CS": "ANON",
        "AE": "ANON",
        "DA": "10000101",
        "TM": "000000.000000",
        "DT": "10000101000000.000000",
        "AS": "000D",
        "IS": "0",
        "DS": "0",
        "UR": "",
    }
)
DATE_VRS = frozenset({"DA", "DT", "TM"})
# Text VRs: free text, names, addresses, AE titles, URIs. Outside Table E.1-1 they are removed at full (cleaned
# under Clean Descriptors) unless the technical allow-list (technical.py) keeps them.
TEXT_VRS = frozenset({"PN", "LO", "LT", "ST", "UT", "UC", "SH", "AE", "UR"})

# Elements removed at full beyond the table: digital signatures no longer verify once values change, and
# trailing padding can hold anything.
REMOVED_AT_FULL: Mapping[int, str] = MappingProxyType(
    {
        0xFFFAFFFA: "Digital Signatures Sequence (no longer verifies)",
        0x4FFE0001: "MAC Parameters Sequence (digital signatures)",
        0xFFFCFFFC: "Data Set Trailing Padding",
    }
)

# File meta elements kept at full; every other one (source/sending/receiving AE titles, private information)
# is removed. MediaStorageSOPInstanceUID is remapped like SOPInstanceUID.
META_KEPT_AT_FULL = frozenset({0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013})
META_REMAPPED = 0x00020003

# Option switches in the order they override the Basic Profile action.
_OPTION_FIELDS = (
    ("rtnLongModifDatesOpt", "shift_dates"),
    ("cleanDescOpt", "clean_descriptors"),
    ("rtnPatCharsOpt", "retain_patient_characteristics"),
    ("rtnDevIdOpt", "retain_device_identity"),
)

# Combined codes depend on the attribute's Type in the IOD, which a file does not carry. We choose the
# variant that keeps every Type valid: a value that stays present when the attribute might be required.
_COMBINED = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}


def is_overlay_or_curve(tag: int) -> bool:
    """Overlay (60xx) and curve (50xx) groups: removed whole at full."""
    group = tag >> 16
    return (0x5000 <= group <= 0x601E) and group % 2 == 0 and (group >> 8) in (0x50, 0x60)


def full_action(tag: int, entry: Entry | None, options: Options) -> tuple[str, str]:
    """The action for a standard attribute at full, and which rule chose it (for reports and explain)."""
    if tag in PSEUDONYM_TAGS:
        return "P", "pseudonym"
    if tag >> 16 == 0:  # the table lists two (U, X); in a dataset none belongs
        return "X", "command group element in a dataset"
    if entry is None:
        return unlisted_action(tag, options)
    action, source = entry.basic, "basic profile"
    for column, field in _OPTION_FIELDS:
        if getattr(options, field) and column in entry.options:
            action, source = entry.options[column], OPTION_CODES[column][1]
    action = _COMBINED.get(action, action)
    if action == "C" and source == OPTION_CODES["rtnLongModifDatesOpt"][1]:
        action = "S"
    if action == "Z" and tag in NIDB_FULL:
        action, source = "D", source + " + NiDB value"
    return action, source


def unlisted_action(tag: int, options: Options) -> tuple[str, str]:
    """The action at full for a standard attribute Table E.1-1 does not list: safe by default.

    Kept only when technical: a non-text VR, or an entry of the reviewed allow-list. Other text is removed (or
    cleaned), dates are dummied (or shifted), UIDs remapped; retired and command-group (0000) elements removed.
    """
    try:
        vr = str(dictionary_VR(tag))
    except KeyError:
        return "X", "not in the DICOM dictionary"
    if dictionary_is_retired(tag):
        return "X", "retired, not in Table E.1-1"
    listed = technical(tag)
    if listed is not None:
        if listed.action in ("D", "Z") and options.clean_descriptors:
            return "C", OPTION_CODES["cleanDescOpt"][1]
        return listed.action, "technical allow-list"
    if vr == "UI":
        return "U", "UID not in Table E.1-1 (well-known standard UIDs kept)"
    if vr in DATE_VRS:
        return ("S" if options.shift_dates else "D"), "date or time not in Table E.1-1"
    if vr in TEXT_VRS:
        if options.clean_descriptors and vr != "PN":  # a person's name is no descriptor: never kept
            return "C", "text not in Table E.1-1, " + OPTION_CODES["cleanDescOpt"][1]
        return "X", "text not in Table E.1-1"
    return "K", "technical VR, not in Table E.1-1"


def option_codes(options: Options) -> list[tuple[str, str]]:
    """The CID 7050 codes describing what was done at full, Basic Profile first."""
    from .ps315 import BASIC_PROFILE_CODE

    codes = [BASIC_PROFILE_CODE]
    for column, field in (*_OPTION_FIELDS, ("rtnSafePrivOpt", "retain_safe_private")):
        if getattr(options, field):
            codes.append(OPTION_CODES[column])
    return sorted(codes)


@dataclass(frozen=True)
class Rule:
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


def explain(level: Level, options: Options | None = None) -> list[Rule]:
    """Every rule of a level, tag by tag, as applied with `options`."""
    options = options or Options(level=level)
    if level is Level.ORIGINAL:
        return [Rule("(all)", "every element", "K", "file copied byte for byte", "NiDB Original")]
    if level is Level.ANONYMIZE:
        rules = [
            Rule(_tag_text(tag), keyword_for_tag(tag), "D", f"`{value}`, at any depth", "NiDB Anonymize")
            for tag, value in NIDB_ANONYMIZE.items()
        ]
        rules.append(Rule("(0012,0063)", "DeidentificationMethod", "added", "names the level", "neuroanon"))
        return rules
    table = load_table()
    rules = [Rule("(table)", f"PS3.15 Table E.1-1, edition {table.edition}", "", "one row per attribute it lists; "
                  "attributes it does not list follow the safe-by-default rows at the end", "PS3.15")]
    for entry in table:
        if entry.mask != 0xFFFFFFFF:  # the repeating overlay and curve groups
            rules.append(Rule(entry.tag_text, entry.name, "X", "whole group removed", "Clean Graphics (stricter)"))
            continue
        action, source = full_action(entry.match, entry, options)
        if entry.match in NIDB_FULL:
            source = "NiDB Full + " + source
        rules.append(Rule(entry.tag_text, entry.name, action, _detail(entry.match, action), source))
    for tag, name in REMOVED_AT_FULL.items():
        rules.append(Rule(_tag_text(tag), name, "X", "removed", "neuroanon"))
    rules.append(Rule("(gggg,0000)", "Group Length", "X", "removed (retired; stale after changes)", "neuroanon"))
    rules.append(Rule("(0002,xxxx)", "File Meta", "X", "all but version, SOP class/instance (remapped), "
                      "transfer syntax and implementation; 128-byte preamble zeroed", "neuroanon"))
    rules.append(Rule("(gggg,eeee) odd", "Private Attributes", "X", "removed unless on the allow-list below",
                      "basic profile"))
    if options.retain_safe_private:
        for safe in SAFE_PRIVATE:
            rules.append(Rule(safe.tag_text, f"{safe.creator}: {safe.name}", "K", safe.why,
                              OPTION_CODES["rtnSafePrivOpt"][1]))
    rules.append(Rule("(even group)", "not in the DICOM dictionary", "X", "removed (unknown meaning)", "neuroanon"))
    rules += _unlisted_rules(options)
    rules.append(Rule("(0012,0062/0063/0064)", "De-identification marks", "added",
                      "PatientIdentityRemoved YES, method, CID 7050 codes", "PS3.15 E.1"))
    rules.append(Rule("(0028,0303)", "LongitudinalTemporalInformationModified", "added",
                      "MODIFIED with --shift-dates, else REMOVED", "PS3.15 E.1"))
    return rules


def _unlisted_rules(options: Options) -> list[Rule]:
    """The safe-by-default stance for standard attributes Table E.1-1 does not list, and the allow-list."""
    source = "neuroanon: safe by default"
    text = ("C", "cleaned of identifying values (Clean Descriptors; PN removed)") if options.clean_descriptors \
        else ("X", "removed")
    dates = ("S", "shifted (dates) or kept (times)") if options.shift_dates else ("D", "dummy date or time")
    rules = [
        Rule("(not in table)", "text: " + " ".join(sorted(TEXT_VRS)), text[0],
             text[1] + ", unless on the technical allow-list below", source),
        Rule("(not in table)", "UID (UI)", "U", "remapped to a keyed 2.25 UID; well-known standard UIDs (DICOM root "
             "1.2.840.10008, pydicom's UID dictionary) and the class UIDs below kept", source),
        Rule("(not in table)", "date, date-time, time (DA DT TM)", *dates, source),
        Rule("(not in table)", "retired attributes", "X", "removed", source),
        Rule("(0000,xxxx)", "command group elements in a dataset", "X", "removed", source),
        Rule("(not in table)", "any other VR (numbers, code strings, binary)", "K",
             "kept (technical); sequences kept and their items walked with these rules", source),
        Rule("(any)", "sequence stored as VR UN", "", "opened as the implicit VR little endian sequence it is "
             "(PS3.5 6.2.2) and walked with these rules; a UN attribute otherwise read by its dictionary VR", source),
    ]
    for entry in TECHNICAL.values():
        if entry.action in ("D", "Z") and options.clean_descriptors:
            why = entry.why.split(": free text")[0] + ": free text, cleaned (Clean Descriptors)"
            rules.append(Rule(entry.tag_text, entry.keyword, "C", why, "technical allow-list"))
        else:
            rules.append(Rule(entry.tag_text, entry.keyword, entry.action, entry.why, "technical allow-list"))
    return rules


def _detail(tag: int, action: str) -> str:
    if action not in ("D", "Z"):
        return _ACTION_WORDS[action]
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        vr = ""
    if action == "Z" and vr not in DATE_VRS:
        return _ACTION_WORDS[action]
    if vr == "SQ":
        return "kept, its items cleaned"
    if vr == "UI":
        return _ACTION_WORDS["U"]
    return f"`{DUMMY_TEXT.get(vr, '0')}`"


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def render_rules(rules: list[Rule]) -> str:
    """`explain` output: a Markdown table, one rule a row."""
    lines = ["| tag | attribute | action | what happens | rule |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r.tag} | {r.name} | {r.action} | {r.detail} | {r.source} |" for r in rules]
    return "\n".join(lines)
