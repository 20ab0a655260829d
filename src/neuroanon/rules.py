"""The rules core: what each level does to each element, decided once per option set.

A decision is an operation of a small vocabulary (`Op`) for a tag, the VR its value has, and where it sits
(`Context`): the file meta, a dataset (the top level and every sequence item follow the same rules), or a private
element with its creator. `compile_rules(options)` builds the decisions once per option set from PS3.15 Table
E.1-1 (ps315), the NiDB lists, the technical allow-list for attributes the table does not list (technical), the
private allow-list (allowlist) and the file meta rules; the marks a level sets are here too. Both anonymizers,
`verify` and `explain` take their decisions from here and nowhere else.

Action codes are PS3.15's (K keep, X remove, Z empty, D dummy, C clean, U remap UID) plus two of ours: P (keyed
pseudonym or lookup value) and S (date shifted by the subject's keyed offset, PS3.15 option 113107).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import Final, NamedTuple

from pydicom.datadict import (
    dictionary_has_tag,
    dictionary_is_retired,
    dictionary_VM,
    dictionary_VR,
    keyword_for_tag,
    tag_for_keyword,
)
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from . import __version__
from .allowlist import SafePrivate, find_safe
from .identifiers import DATED_KEYWORDS, IDENTIFYING, Needle, scrub
from .keys import Keyring
from .options import Level, Options
from .ps315 import BASIC_PROFILE_CODE, OPTION_CODES, Entry, load_table
from .tags import (
    DEIDENTIFICATION_METHOD,
    DEIDENTIFICATION_METHOD_CODES,
    DERIVATION_DESCRIPTION,
    IMAGE_COMMENTS,
    IMPLEMENTATION_VERSION_NAME,
    LONGITUDINAL_TEMPORAL_MODIFIED,
    MEDIA_STORAGE_SOP_INSTANCE_UID,
    PATIENT_ID,
    PATIENT_IDENTITY_REMOVED,
    PATIENT_NAME,
    tag_text,
)
from .technical import is_standard_uid, technical

# --- the levels as data ----------------------------------------------------------------------------------------

# The NiDB "Anonymize" attributes and the values NiDB writes into them.
NIDB_ANONYMIZE: Final[Mapping[int, str]] = MappingProxyType(
    {
        0x00080090: "Anon",  # ReferringPhysicianName
        0x00081050: "Anon",  # PerformingPhysicianName
        0x00081070: "Anon",  # OperatorsName
        PATIENT_NAME: "Anon",
        0x00100030: "10000101",  # PatientBirthDate
    }
)

# The NiDB "Anonymize Full" attributes: the five above and fourteen more.
NIDB_FULL: Final[frozenset[int]] = frozenset(NIDB_ANONYMIZE) | {
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
    PATIENT_ID,
    0x00101030,  # PatientWeight
}

# The attributes that take the subject's pseudonym, and the VR it is written with.
PSEUDONYM_TAGS: Final[Mapping[int, str]] = MappingProxyType({PATIENT_ID: "LO", PATIENT_NAME: "PN"})

# Dummy values by VR for action D (PS3.15: a non-zero-length value consistent with the VR).
DUMMY_TEXT: Final[Mapping[str, str]] = MappingProxyType(
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
NUMERIC_VRS: Final = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "SV", "UV"})
DATE_VRS: Final = frozenset({"DA", "DT", "TM"})
# Text VRs: free text, names, addresses, AE titles, URIs. Outside Table E.1-1 they are removed at full (cleaned
# under Clean Descriptors) unless the technical allow-list (technical.py) keeps them.
TEXT_VRS: Final = frozenset({"PN", "LO", "LT", "ST", "UT", "UC", "SH", "AE", "UR"})

# Elements removed at full beyond the table: digital signatures no longer verify once values change; PS3.15's
# encrypted attributes are the original values, for whoever holds the recipient's key, beside the recipients'
# certificates in clear (found from outside: kept, a binary value not in the table); trailing padding can hold
# anything.
REMOVED_AT_FULL: Final[Mapping[int, str]] = MappingProxyType(
    {
        0xFFFAFFFA: "Digital Signatures Sequence (no longer verifies)",
        0x4FFE0001: "MAC Parameters Sequence (digital signatures)",
        0x04000120: "Signature (no longer verifies)",
        0x04000401: "Digital Signature Purpose Code Sequence (of a signature removed; its text may name the signer)",
        0x04000500: "Encrypted Attributes Sequence (the original values, encrypted)",
        0x04000520: "Encrypted Content (the original values, encrypted)",
        0xFFFCFFFC: "Data Set Trailing Padding",
    }
)

# File meta elements kept at full; every other one (source/sending/receiving AE titles, private information)
# is removed. MediaStorageSOPInstanceUID is remapped like SOPInstanceUID; ImplementationVersionName (a toolkit's
# name, as a site may have set it) is removed when it holds one of the file's identifying values.
META_KEPT_AT_FULL: Final = frozenset({0x00020000, 0x00020001, 0x00020002, MEDIA_STORAGE_SOP_INSTANCE_UID, 0x00020010,
                                      0x00020012, IMPLEMENTATION_VERSION_NAME})

# Option switches in the order they override the Basic Profile action.
_OPTION_FIELDS: Final = (
    ("rtnLongModifDatesOpt", "shift_dates"),
    ("cleanDescOpt", "clean_descriptors"),
    ("rtnPatCharsOpt", "retain_patient_characteristics"),
    ("rtnDevIdOpt", "retain_device_identity"),
)

# Combined codes depend on the attribute's Type in the IOD, which a file does not carry. We choose the
# variant that keeps every Type valid: a value that stays present when the attribute might be required.
_COMBINED: Final = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}


# Sequences that identify a person or an institution by codes, which the table marks D (X/D, X/Z/D): a D would
# need a dummy code item, and the items kept (code values are vocabulary elsewhere) named the person. Removed.
CODED_IDENTITIES: Final = frozenset(int(tag_for_keyword(k) or 0) for k in (
    "InstitutionCodeSequence", "OperatorIdentificationSequence", "PersonIdentificationCodeSequence"))


# What the Clean Graphics option cleans beside overlays and curves (the table's other cleanGraphOpt row), and the
# Text Object, Graphic Object and Compound Graphic Sequences it holds, wherever they stand (shapes and text drawn
# over images): removed whole at full.
GRAPHIC_ANNOTATION_SEQUENCE: Final = 0x00700001
GRAPHICS: Final = frozenset({GRAPHIC_ANNOTATION_SEQUENCE, 0x00700008, 0x00700009, 0x00700209})


def is_overlay_or_curve(tag: int) -> bool:
    """Overlay (60xx) and curve (50xx) groups: removed whole at full."""
    group = tag >> 16
    return (0x5000 <= group <= 0x601E) and group % 2 == 0 and (group >> 8) in (0x50, 0x60)


def full_action(tag: int, entry: Entry | None, options: Options) -> tuple[str, str]:
    """The action code for a standard attribute at full, and which rule chose it."""
    if tag in PSEUDONYM_TAGS:
        return "P", "pseudonym"
    if tag >> 16 in (0x0000, 0x0002):  # the table lists three (U or X), for where they belong: not a dataset
        return "X", "command or file meta group element in a dataset"
    if entry is None:
        return unlisted_action(tag, options)
    action, source = entry.basic, "basic profile"
    for column, name in _OPTION_FIELDS:
        if getattr(options, name) and column in entry.options:
            action, source = entry.options[column], OPTION_CODES[column][1]
    if tag in CODED_IDENTITIES:
        return "X", source + ", a coded identity: no dummy code"
    action = _COMBINED.get(action, action)
    if action == "C" and source == OPTION_CODES["rtnLongModifDatesOpt"][1]:
        if _binary(tag):  # a timestamp in bytes (Frame Origin, Certified): not shifted, so the basic profile's
            action, source = _COMBINED.get(entry.basic, entry.basic), "basic profile (a time in bytes: not shifted)"
        else:
            action = "S"
    if action == "Z" and tag in NIDB_FULL:
        action, source = "D", source + " + NiDB value"
    return action, source


def _binary(tag: int) -> bool:
    """Whether the dictionary gives `tag` a binary VR (OB, OW, UN...)."""
    try:
        vr = str(dictionary_VR(tag))
    except KeyError:
        return False
    return vr.startswith("O") or vr == "UN"


# Unlisted text attributes that name a person, a subject's dates, an ID, an address, a file or a site, by their
# keywords: removed even under Clean Descriptors, since cleaning takes out only the file's own identifying values
# and these hold others (found from outside: a contact's name and e-mail, a registry number, a file's original name
# and the birth date in another calendar were kept). A person's name (PN) is never kept either.
_NAMES_AN_IDENTITY: Final = re.compile(
    r"Patient|Person|Contact|Owner|Operator|Physician|Breed|Strain(Source|StockNumber)|Calendar|HangingProtocolCreator"
    r"|UserGroup|IDs?$|IDType|Identifier|AssigningAuthority|Number$|Issuer|UR[IL]|Address|Filename|FileID|Station"
    r"|Institution|Printer|HL7|Itinerary|Carrier|BoardingPass|Authorization|Certification|Telephone|Telecom|Mail"
    r"|AssignedLocation"
    # a machine, a clock, a sensor or a display by its site's name; a worklist's, a step's or a session's label; a
    # comment on a step (found from outside: still cleaned and kept)
    r"|MachineName|TimeSource|Sensor|Subsystem|DataSetSource|Worklist|StepLabel|FilmSession|DeletionLock|CommentsOn")


def unlisted_action(tag: int, options: Options) -> tuple[str, str]:
    """The action at full for a standard attribute Table E.1-1 does not list: safe by default.

    Kept only when technical: a non-text VR, or an entry of the reviewed allow-list. Other text is removed (or
    cleaned, unless it names an identity), dates are dummied (or shifted), UIDs remapped; retired and command-group
    (0000) elements removed.
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
        if options.clean_descriptors and vr != "PN" and not _NAMES_AN_IDENTITY.search(keyword_for_tag(tag)):
            return "C", "text not in Table E.1-1, " + OPTION_CODES["cleanDescOpt"][1]
        return "X", "text not in Table E.1-1"
    return "K", "technical VR, not in Table E.1-1"


def option_codes(options: Options) -> list[tuple[str, str]]:
    """The CID 7050 codes describing what was done at full, Basic Profile first."""
    codes = [BASIC_PROFILE_CODE]
    for column, name in (*_OPTION_FIELDS, ("rtnSafePrivOpt", "retain_safe_private")):
        if getattr(options, name):
            codes.append(OPTION_CODES[column])
    return sorted(codes)


# --- the vocabulary --------------------------------------------------------------------------------------------


class Op(enum.Enum):
    """What happens to an element. The value is the word its change is recorded with."""

    KEEP = "kept"
    REMOVE = "removed"
    EMPTY = "emptied"
    DUMMY = "replaced"  # a dummy valid for the VR (or NiDB's value at anonymize)
    REMAP_UID = "remapped"  # each UID keyed (well-known standard UIDs kept)
    PSEUDONYM = "pseudonymized"  # the subject's keyed pseudonym or lookup value
    SHIFT_DATE = "shifted"  # by the subject's keyed day offset
    CLEAN_TEXT = "cleaned"  # this file's identifying values cut out (private values: as their allow-list kind says)
    WALK_ITEMS = "walked"  # a sequence kept, each item decided by the same rules


class Context(enum.Enum):
    """Where an element sits: the rules differ between these, not between the top level and sequence items."""

    META = "file meta"
    DATASET = "dataset"
    PRIVATE = "private"


@cache
def operation(code: str, vr: str) -> Op:
    """What an action code does to an element whose value has VR `vr` ("SQ": a sequence, "": unknown)."""
    if code == "X":
        return Op.REMOVE
    if vr == "SQ":
        return Op.EMPTY if code == "Z" else Op.WALK_ITEMS  # D, C, U on a sequence: its items are decided
    if code == "U" or (code == "D" and vr == "UI"):
        return Op.REMAP_UID
    if code == "S":
        return Op.SHIFT_DATE if vr in ("DA", "DT") else Op.KEEP  # a time keeps its value when whole days shift
    if code == "C":
        return Op.CLEAN_TEXT if vr in DUMMY_TEXT else Op.DUMMY
    if code == "Z" and vr not in DATE_VRS:
        return Op.EMPTY
    return {"K": Op.KEEP, "P": Op.PSEUDONYM}.get(code, Op.DUMMY)  # D; Z on a date (dates become 10000101)


def empty_value(vr: str) -> bytes | None:
    """An empty value of VR `vr` (not a sequence): no bytes for a binary VR, no value for the others."""
    return b"" if vr.startswith("O") or vr == "UN" else None


def pseudonym(keyring: Keyring, lookup: Mapping[str, str], source: str) -> tuple[str, str]:
    """The pseudonym of the subject `source` names (the lookup table's value, else the keyed pseudonym), and the
    word its change is recorded with."""
    mapped = lookup.get(source)
    if mapped is None:
        return keyring.pseudonym(source), Op.PSEUDONYM.value
    return mapped, Op.PSEUDONYM.value + " (lookup)"


def dummy_value(vr: str) -> str | int | bytes:
    """The dummy for a value of VR `vr`: text for text VRs, 0 for numbers, two zero bytes for anything else."""
    if vr in DUMMY_TEXT:
        return DUMMY_TEXT[vr]
    return 0 if vr in NUMERIC_VRS else b"\x00\x00"


def text_values(value: object) -> list[str]:
    """A decoded element value as the list of its values, each as text (no value: none)."""
    if value is None:
        return []
    if isinstance(value, (list, MultiValue)):
        return [str(v) for v in value]
    return [str(value)]


# VRs a UN value of a standard attribute is read as (an ambiguous "US or SS" stays UN, a binary value too).
UN_READ_AS: Final = frozenset({"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH",
                               "SL", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UR", "US", "UT", "UV"})


def fits_multiplicity(tag: int, count: int) -> bool:
    """Whether `count` values fit the attribute's VM: a UN value with more is not what it claims to be."""
    vm = str(dictionary_VM(tag))
    return not (vm.isdigit() and count > int(vm))


def shifted_date(value: str, vr: str, offset: int, births: frozenset[str] = frozenset()) -> str:
    """A DA or DT value moved by `offset` days (a DT keeps its time of day); one that is no date, or whose date is
    one of the patient's `births` (YYYYMMDD), the dummy: a birth date shifted keeps the exact age, and one real date
    of the study gives it back (a structured report's "Subject Birth Date" item, say)."""
    if value[:8] in births:
        return DUMMY_TEXT[vr]
    try:
        day = dt.datetime.strptime(value[:8], "%Y%m%d").date()
    except ValueError:
        return DUMMY_TEXT[vr]
    shifted = (day + dt.timedelta(days=offset)).strftime("%Y%m%d")
    return shifted + value[8:] if vr == "DT" else shifted


def cleaned_text(value: str, patterns: tuple[Needle, ...]) -> str:
    """A text value with this file's identifying values overwritten (same length)."""
    return scrub(value.encode("utf-8", "surrogateescape"), patterns, utf_8=True).decode("utf-8", "replace")


def capped_age(text: str) -> tuple[str | None, str] | None:
    """HIPAA Safe Harbor on a kept PatientAge (its text, stripped): an age of 90 years or more becomes `090Y`, one
    that does not parse is emptied; the new value and the word its change is recorded with, or None: kept.

    Only years can reach 90 in the three digits of an AS value (999 months, weeks or days are less).
    """
    if len(text) == 4 and text[:3].isdigit() and text[3] in "DWMY":
        if text[3] != "Y" or int(text[:3]) < 90:
            return None
        return "090Y", Op.DUMMY.value
    return None, Op.EMPTY.value


@dataclass(frozen=True, slots=True)
class Rule:
    """The compiled rule of one standard tag: its action code, the keyword its changes are recorded under, and
    the rule that chose it. `value`: a replacement written whatever the element holds (NiDB Anonymize)."""

    code: str
    keyword: str
    source: str
    value: str | None = None
    technical: re.Pattern[bytes] | None = None  # with X: a value wholly of this form is kept (`kept`)
    removes: bool = field(init=False)  # removed whatever it holds
    keeps_value: bool = field(init=False)  # a value that is not a sequence kept whatever its VR

    def __post_init__(self) -> None:
        object.__setattr__(self, "removes", self.code == "X" and self.technical is None)
        object.__setattr__(self, "keeps_value", self.code == "K")

    def op(self, vr: str) -> Op:
        """The operation on an element of this tag whose value has VR `vr` (with `technical`: unless `kept`)."""
        return Op.DUMMY if self.value is not None else operation(self.code, vr)

    def kept(self, value: bytes) -> bool:
        """Whether a value (not a sequence) of a tag this rule removes is kept all the same: a technical encoding
        and nothing else, which names nobody."""
        return self.technical is not None and self.technical.fullmatch(value.rstrip(b" \x00")) is not None


# Values the table removes that an analysis needs, kept where a value is wholly a technical encoding, which
# dcm2niix reads: Canon's classic diffusion images give each volume's b-value and gradient direction in
# ImageComments only ("b=1500(0.445,0.000,0.895)": a b-value of five digits at most, the direction's components
# between -1 and 1 with six decimals at most, no date or ID fits); Siemens marks CT slices it resampled
# "MEDCOM_RESAMPLED" in DerivationDescription, and dcm2niix then leaves their uneven spacing as it is (found from
# outside: without the mark it tried to even it out, and failed). The residual check searches them as any value.
_NUMBER: Final = rb"-?[01](?:\.\d{1,6})?"
TECHNICAL_VALUES: Final[Mapping[int, tuple[re.Pattern[bytes], str]]] = MappingProxyType({
    IMAGE_COMMENTS: (re.compile(rb"b=\d{1,5}(?:\.\d{1,6})?(?:\(%s,%s,%s\))?" % (_NUMBER, _NUMBER, _NUMBER)),
                     "a diffusion encoding as Canon writes it (`b=1500(0.445,0.000,0.895)`)"),
    DERIVATION_DESCRIPTION: (re.compile(rb"(?i:MEDCOM_RESAMPLED)"),
                             "Siemens' mark of resampled slices (`MEDCOM_RESAMPLED`)"),
})


_KEEP: Final = Rule("K", "", "")
_TAGS_KEPT: Final = 1 << 16  # rules a Rules keeps: the table's, and those of the first other tags met
_REMOVED: Final = Op.REMOVE.value


class Rules:
    """A level's decisions for one option set (see `compile_rules`). The rows of the table and the NiDB lists are
    compiled at once; any other tag when it is first met, once."""

    def __init__(self, options: Options) -> None:
        self.level = options.level
        self.options = options
        self._tags: dict[int, Rule] = {}
        self._removals: dict[int, Change] = {}
        if self.level is Level.FULL:
            for tag in (*load_table().exact, *NIDB_FULL):
                self._tags[tag] = self._full(tag)
        # The identifying attributes and the dates an option keeps as they are (Retain Device Identity: StationName,
        # DeviceSerialNumber, a calibration's date): released by choice, so their values are not looked for
        # elsewhere either.
        self.retained = frozenset(keyword for keyword in (*IDENTIFYING, *DATED_KEYWORDS) if self.level is Level.FULL
                                  and self.tag(int(tag_for_keyword(keyword) or 0)).code == "K")
        # The tags whose rule writes a value whatever the element holds: NiDB Anonymize's five, at anonymize.
        self.valued = frozenset(NIDB_ANONYMIZE) if self.level is Level.ANONYMIZE else frozenset()

    def tag(self, tag: int) -> Rule:
        """The rule of a standard (even-group) tag in a dataset, at any depth."""
        rule = self._tags.get(tag)
        if rule is None:
            rule = self._full(tag) if self.level is Level.FULL else self._anonymize(tag)
            if len(self._tags) < _TAGS_KEPT:  # (files full of unknown tags: the others are compiled each time)
                self._tags[tag] = rule
        return rule

    def removal(self, tag: int) -> Change:
        """The change that records a top-level element of a standard `tag` removed (each made once; a bounded
        cache)."""
        known = self._removals.get(tag)
        if known is None:
            if len(self._removals) >= 1 << 16:  # (files full of unknown tags: bounded)
                self._removals.clear()
            known = self._removals[tag] = change(tag_text(tag), self.tag(tag).keyword, _REMOVED)
        return known

    def meta(self, tag: int) -> Op:
        """The operation on a file meta element."""
        if self.level is not Level.FULL:
            return Op.KEEP
        if tag not in META_KEPT_AT_FULL:
            return Op.REMOVE
        if tag == IMPLEMENTATION_VERSION_NAME:
            return Op.CLEAN_TEXT  # (removed whole if it holds an identifying value: no toolkit's name is left)
        return Op.REMAP_UID if tag == MEDIA_STORAGE_SOP_INSTANCE_UID else Op.KEEP

    def private(self, creator: str, tag: int) -> SafePrivate | None:
        """At full, the allow-list entry that keeps a private data element of `creator`; None: it is removed."""
        if self.level is not Level.FULL or not self.options.retain_safe_private:
            return None
        return find_safe(creator, tag >> 16, tag & 0xFF)

    def decide(self, tag: int, vr: str, context: Context, creator: str = "") -> Op:
        """The one decision for an element: its tag, the VR of its value ("SQ" for a sequence), where it sits and,
        for a private element, its block's creator. A private creator is kept while its block keeps an element."""
        if context is Context.META:
            return self.meta(tag)
        if context is Context.DATASET:
            return self.tag(tag).op(vr)
        if self.level is not Level.FULL:
            return operation("K", vr)
        if tag & 0xFFFF < 0x1000:
            return Op.KEEP if tag & 0xFFFF >= 0x10 else Op.REMOVE
        safe = self.private(creator, tag)
        if safe is None:
            return Op.REMOVE
        return Op.WALK_ITEMS if safe.kind == "sequence" else Op.CLEAN_TEXT

    def _anonymize(self, tag: int) -> Rule:
        if tag in self.valued:
            return Rule("D", keyword_for_tag(tag), "NiDB Anonymize", NIDB_ANONYMIZE[tag])
        if tag >> 16 == 0x0002:  # kept in a dataset, it would read back as the file meta
            return Rule("X", keyword_for_tag(tag), "file meta element in a dataset")
        return _KEEP

    def _full(self, tag: int) -> Rule:
        if tag & 0xFFFF == 0:
            return Rule("X", "GroupLength", "neuroanon")
        if is_overlay_or_curve(tag) or tag in GRAPHICS:
            return Rule("X", keyword_for_tag(tag) or "OverlayOrCurve", "Clean Graphics (stricter)")
        entry = load_table().lookup(tag)
        if entry is None and tag in REMOVED_AT_FULL:
            return Rule("X", keyword_for_tag(tag), "neuroanon")
        if entry is None and not dictionary_has_tag(tag):
            return Rule("X", "", "neuroanon")
        code, source = full_action(tag, entry, self.options)
        source = "NiDB Full + " + source if tag in NIDB_FULL else source
        if code == "X" and tag in TECHNICAL_VALUES:
            form, what = TECHNICAL_VALUES[tag]
            return Rule(code, keyword_for_tag(tag), f"{source}; kept when wholly {what}", technical=form)
        return Rule(code, keyword_for_tag(tag), source)


def compile_rules(options: Options) -> Rules:
    """The decisions for `options`, compiled once per option set."""
    return _compiled(options.level, options.shift_dates, options.clean_descriptors,
                     options.retain_patient_characteristics, options.retain_device_identity,
                     options.retain_safe_private)


@cache
def _compiled(level: Level, shift_dates: bool, clean_descriptors: bool, characteristics: bool, device: bool,
              safe_private: bool) -> Rules:
    return Rules(Options(level=level, shift_dates=shift_dates, clean_descriptors=clean_descriptors,
                         retain_patient_characteristics=characteristics, retain_device_identity=device,
                         retain_safe_private=safe_private))


def creator_keyword(tag: int) -> str:
    """The keyword a removed private creator (or an illegal low private element) is recorded under."""
    return "PrivateCreator" if tag & 0xFFFF >= 0x10 else ""


def remap_uid(keyring: Keyring, uid: str) -> str:
    """A UID's keyed replacement; a well-known standard UID names no instance and is kept."""
    return uid if not uid or is_standard_uid(uid) else keyring.uid(uid)


# --- changes and marks -----------------------------------------------------------------------------------------


class Change(NamedTuple):
    """One change to one element: where (tag path through sequence items), which attribute, what was done.

    A named tuple: a file's changes cross from worker processes by the hundred, and tuples travel light.
    """

    tag: str
    keyword: str
    action: str

    def as_dict(self) -> dict[str, str]:
        return {"tag": self.tag, "keyword": self.keyword, "action": self.action}


def change(tag: str, keyword: str, action: str) -> Change:
    """A Change, made without the named tuple's constructor: a Python function, slow to call from compiled code."""
    return _new_tuple(Change, (tag, keyword, action))


_new_tuple: Final = tuple.__new__


METHOD_NAMES: Final = {Level.ANONYMIZE: "NiDB Anonymize", Level.FULL: "NiDB Anonymize Full"}


def mark_method(ds: Dataset, method: str, changes: list[Change], keep_earlier: bool) -> None:
    """Set our DeidentificationMethod value. At anonymize an earlier one is kept before ours (the record of
    earlier de-identification); at full it is replaced (free text that may name operators and sites)."""
    text = f"{method} (neuroanon {__version__})"
    _drop_foreign(ds, DEIDENTIFICATION_METHOD)
    earlier = _texts(ds.get("DeidentificationMethod", None)) if keep_earlier and DEIDENTIFICATION_METHOD in ds else []
    ds.DeidentificationMethod = [*earlier, text] if earlier and text not in earlier else text
    changes.append(Change(tag_text(DEIDENTIFICATION_METHOD), "DeidentificationMethod", "added"))


def mark_full(ds: Dataset, options: Options, changes: list[Change], identity_removed: bool) -> None:
    _drop_foreign(ds, PATIENT_IDENTITY_REMOVED, DEIDENTIFICATION_METHOD_CODES, LONGITUDINAL_TEMPORAL_MODIFIED)
    # Pixels that may show burned-in text are not proven clean: the identity is never claimed removed for them.
    ds.PatientIdentityRemoved = "YES" if identity_removed else "NO"
    changes.append(Change(tag_text(PATIENT_IDENTITY_REMOVED), "PatientIdentityRemoved", "added"))
    mark_method(ds, METHOD_NAMES[Level.FULL], changes, keep_earlier=False)
    items = []
    for value, meaning in option_codes(options):
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    changes.append(Change(tag_text(DEIDENTIFICATION_METHOD_CODES), "DeidentificationMethodCodeSequence", "added"))
    ds.LongitudinalTemporalInformationModified = "MODIFIED" if options.shift_dates else "REMOVED"
    changes.append(Change(tag_text(LONGITUDINAL_TEMPORAL_MODIFIED), "LongitudinalTemporalInformationModified",
                          "added"))


def _drop_foreign(ds: Dataset, *tags: int) -> None:
    """Remove a mark whose element is not of its dictionary VR (a UN that held a sequence, opened as one): the
    level's own value replaces it."""
    for tag in tags:
        if tag in ds and dictionary_VR(tag) != ds[tag].VR:
            del ds[tag]


def _texts(value: object) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, MultiValue)) else [str(value)]
