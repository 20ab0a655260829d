"""Applying a level to a dataset: a pure function, dataset in, new dataset and list of changes out.

No file access, no logging, the input is not mutated. Changes name tags and actions, never values.
"""

from __future__ import annotations

import copy
import datetime as dt
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from pydicom.datadict import dictionary_has_tag, dictionary_VM, dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from . import __version__
from .allowlist import SafePrivate, creator_name, find_safe
from .burnedin import burned_in_risk
from .csa import clean_kept
from .errors import UsageError
from .identifiers import Needle, needles, scrub
from .keys import Keyring
from .options import Level, Options
from .profile import (
    DATE_VRS,
    DUMMY_TEXT,
    META_KEPT_AT_FULL,
    META_REMAPPED,
    NIDB_ANONYMIZE,
    PATIENT_ID,
    REMOVED_AT_FULL,
    full_action,
    is_overlay_or_curve,
    option_codes,
)
from .ps315 import load_table
from .read import parses_as_sequence
from .technical import is_standard_uid

UNDEFINED_LENGTH = 0xFFFFFFFF
DEID_METHOD = 0x00120063
PATIENT_AGE = 0x00101010
METHOD_NAMES = {Level.ANONYMIZE: "NiDB Anonymize", Level.FULL: "NiDB Anonymize Full"}


class Change(NamedTuple):
    """One change to one element: where (tag path through sequence items), which attribute, what was done.

    A named tuple: a file's changes cross from worker processes by the hundred, and tuples travel light.
    """

    tag: str
    keyword: str
    action: str

    def as_dict(self) -> dict[str, str]:
        return {"tag": self.tag, "keyword": self.keyword, "action": self.action}


def apply_level(
    ds: Dataset, options: Options, patterns: tuple[Needle, ...] | None = None
) -> tuple[Dataset, list[Change]]:
    """Apply `options.level` to a copy of `ds`; return the copy and what was changed.

    `ds` may be a whole dataset or a header read without pixel data; pixel data is never touched. A
    FileDataset's file meta and preamble are handled too. `patterns` are `needles(ds)`, if the caller has them.
    """
    new = _copy(ds)
    if options.level is Level.ORIGINAL:
        return new, []
    changes: list[Change] = []
    if options.level is Level.ANONYMIZE:
        _anonymize(new, "", changes)
        mark_method(new, METHOD_NAMES[Level.ANONYMIZE], changes, keep_earlier=True)
        return new, changes
    if options.key is None:
        raise UsageError("the full level needs a key")
    walker = _Full(options, Keyring(options.key), changes, needles(ds) if patterns is None else patterns)
    walker.subject = subject_of(ds)
    walker.walk(new, "")
    if options.cap_ages and options.retain_patient_characteristics:
        cap_age(new, changes)
    meta = getattr(new, "file_meta", None)
    if meta is not None:
        walker.clean_meta(meta)
    if isinstance(new, FileDataset) and new.preamble:
        new.preamble = b"\x00" * 128
    mark_full(new, options, changes, identity_removed=burned_in_risk(ds) is None)
    return new, changes


# --- anonymize -------------------------------------------------------------------------------------------------

# The five tags as they appear in encoded bytes, to skip sequences that cannot contain them without parsing.
_FIVE_PATTERNS = tuple(struct.pack(f"{e}HH", t >> 16, t & 0xFFFF) for t in NIDB_ANONYMIZE for e in "<>")


def _anonymize(ds: Dataset, path: str, changes: list[Change]) -> None:
    for tag in list(ds.keys()):
        t = int(tag)
        raw = ds.get_item(tag)
        if t in NIDB_ANONYMIZE:
            if _is_empty(raw):
                continue  # only present values are changed
            ds[tag] = DataElement(tag, dictionary_VR(tag), NIDB_ANONYMIZE[t])
            changes.append(Change(path + _tag_text(t), keyword_for_tag(t), "replaced"))
            continue
        if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes):
            if not any(p in raw.value for p in _FIVE_PATTERNS):
                continue  # cannot hold any of the five: leave its bytes alone
            if not _may_be_sequence(raw) and not _parse_as_sequence(ds, raw):
                continue
        elif not _may_be_sequence(raw):
            continue
        elem = ds[tag]
        if elem.VR == "SQ":
            before = len(changes)
            for i, item in enumerate(elem.value):
                _anonymize(item, f"{path}{_tag_text(t)}[{i}].", changes)
            if len(changes) == before and isinstance(raw, RawDataElement):
                ds[tag] = raw  # nothing inside changed: the element keeps its bytes (and its VR)


def _parse_as_sequence(ds: Dataset, raw: RawDataElement) -> bool:
    """Try an element of unknown structure as a sequence: an implicit-VR element of unknown VR, or a UN value.

    In Implicit VR nothing marks a private sequence of defined length as one; in Explicit VR a node without the
    (private or newer) dictionary writes a sequence as UN, its value an implicit VR little endian sequence
    (PS3.5 6.2.2). Either is parsed as a sequence when its bytes hold one. If it does not parse, it is left as it
    was.
    """
    if raw.VR == "UN":
        return _open_un(ds, raw)
    if raw.VR is not None:
        return False
    try:
        ds[raw.tag] = raw._replace(VR="SQ")
        return ds[raw.tag].VR == "SQ"
    except Exception:  # not a sequence after all: keep the element untouched
        ds[raw.tag] = raw
        return False


def _open_un(ds: Dataset, raw: RawDataElement) -> bool:
    """Open a UN value of defined length that parses as an implicit VR little endian sequence; True if it did."""
    if raw.length == UNDEFINED_LENGTH or not isinstance(raw.value, bytes) or not parses_as_sequence(raw.value):
        return False
    try:
        ds[raw.tag] = raw._replace(VR="SQ", is_implicit_VR=True, is_little_endian=True)
        return ds[raw.tag].VR == "SQ"
    except Exception:  # pydicom could not read it after all: keep the element untouched
        ds[raw.tag] = raw
        return False


def _resolve_un(ds: Dataset, t: int) -> bool:
    """A standard attribute stored as UN: opened if its value is a sequence, else given its dictionary VR.

    Returns False when the value cannot be what the dictionary says (a sequence tag whose bytes are not one).
    """
    raw = ds.get_item(t)
    if not isinstance(raw, RawDataElement) or raw.VR != "UN" or raw.length == UNDEFINED_LENGTH:
        return True
    if _open_un(ds, raw):
        return True
    try:
        vr = str(dictionary_VR(t))
    except KeyError:
        return True
    if vr == "SQ":
        return _is_empty(raw)
    if vr in _SINGLE_VRS:
        ds[t] = raw._replace(VR=vr)
        try:
            count = len(_values(ds[t].value))
        except Exception:  # not a value of that VR (a wrong length, say): it cannot be shown to be harmless
            ds[t] = raw
            return False
        vm = str(dictionary_VM(t))
        if vm.isdigit() and count > int(vm):  # more values than the attribute has: not what it claims to be
            return False
    return True


# VRs a UN value of a standard attribute is read as (an ambiguous "US or SS" stays UN, a binary value).
_SINGLE_VRS = frozenset({"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH", "SL",
                         "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UR", "US", "UT", "UV"})


# --- full ------------------------------------------------------------------------------------------------------


@dataclass
class _Full:
    options: Options
    keyring: Keyring
    changes: list[Change]
    patterns: tuple[Needle, ...]
    subject: str = ""
    _offset: int | None = field(default=None)

    def walk(self, ds: Dataset, path: str) -> None:
        private: list[int] = []
        for tag in list(ds.keys()):
            t = int(tag)
            if t >> 16 & 1:
                private.append(t)
                continue
            where = path + _tag_text(t)
            action, keyword = full_rule(t, self.options)
            if action == "X":
                self._remove(ds, t, where, keyword)
            else:
                self._apply(ds, t, action, where)
        self._private(ds, private, path)

    def _apply(self, ds: Dataset, t: int, action: str, where: str) -> None:
        keyword = keyword_for_tag(t)
        if action == "X" or not _resolve_un(ds, t):  # a UN that should be a sequence and is not: removed
            self._remove(ds, t, where, keyword)
            return
        raw = ds.get_item(t)
        if _may_be_sequence(raw) and ds[t].VR == "SQ":
            if action == "Z":
                ds[t].value = Sequence()
                self.changes.append(Change(where, keyword, "emptied"))
            else:  # K, D, C, U: the sequence stays and its items are cleaned
                for i, item in enumerate(ds[t].value):
                    self.walk(item, f"{where}[{i}].")
            return
        if action == "K" or _is_empty(raw):
            return
        elem = ds[t]
        vr = elem.VR
        if action == "P":
            self._pseudonymize(ds, t, where)
        elif action == "U" or (vr == "UI" and action == "D"):
            values = [str(v) for v in _values(elem.value)]
            remapped = [remap_uid(self.keyring, v) for v in values]
            if remapped != values:
                elem.value = remapped
                self.changes.append(Change(where, keyword, "remapped"))
        elif action == "S" and vr in ("DA", "DT"):
            elem.value = [self._shift(str(v), vr) for v in _values(elem.value)]
            self.changes.append(Change(where, keyword, "shifted"))
        elif action == "S":
            pass  # a time keeps its value when whole days shift
        elif action == "C" and vr in DUMMY_TEXT:
            cleaned = [self._clean(str(v)) for v in _values(elem.value)]
            if cleaned != [str(v) for v in _values(elem.value)]:
                elem.value = cleaned
                self.changes.append(Change(where, keyword, "cleaned"))
        elif action == "Z" and vr not in DATE_VRS:
            elem.value = b"" if vr.startswith("O") or vr == "UN" else None
            self.changes.append(Change(where, keyword, "emptied"))
        else:  # D, Z on dates (dates become 10000101 at full), C on a binary VR
            self._dummy(ds, t, vr, where)

    def _dummy(self, ds: Dataset, t: int, vr: str, where: str) -> None:
        if vr in DUMMY_TEXT:
            value: object = DUMMY_TEXT[vr]
        elif vr in ("US", "SS", "UL", "SL", "FL", "FD", "SV", "UV"):
            value = 0
        else:
            value = b"\x00\x00"
        ds[t] = DataElement(t, vr, value)
        self.changes.append(Change(where, keyword_for_tag(t), "replaced"))

    def _pseudonymize(self, ds: Dataset, t: int, where: str) -> None:
        source = str(ds.get("PatientID", "") or "") or self.subject
        mapped = self.options.lookup.get(source)
        value = mapped if mapped is not None else self.keyring.pseudonym(source)
        ds[t] = DataElement(t, "LO" if t == PATIENT_ID else "PN", value)
        how = "pseudonymized (lookup)" if mapped is not None else "pseudonymized"
        self.changes.append(Change(where, keyword_for_tag(t), how))

    def _shift(self, value: str, vr: str) -> str:
        if self._offset is None:
            self._offset = self.keyring.day_offset(self.subject)
        try:
            day = dt.datetime.strptime(value[:8], "%Y%m%d").date()
        except ValueError:
            return DUMMY_TEXT[vr]
        shifted = (day + dt.timedelta(days=self._offset)).strftime("%Y%m%d")
        return shifted + value[8:] if vr == "DT" else shifted

    def _clean(self, text: str) -> str:
        return scrub(_as_bytes(text), self.patterns).decode("utf-8", "replace")

    def _remove(self, ds: Dataset, t: int, where: str, keyword: str) -> None:
        del ds[t]
        self.changes.append(Change(where, keyword, "removed"))

    def _private(self, ds: Dataset, tags: list[int], path: str) -> None:
        """Keep allow-listed private elements (with their creators); remove every other private element."""
        kept_blocks: set[int] = set()
        for t in tags:
            element = t & 0xFFFF
            if element < 0x1000:
                continue  # creators and illegal low elements: decided below
            creator_tag = (t & 0xFFFF0000) | (element >> 8)
            where = path + _tag_text(t)
            safe = find_safe(self._creator(ds, creator_tag), t >> 16, element & 0xFF) \
                if self.options.retain_safe_private else None
            if safe is not None and self._scrub(ds, t, safe, where):
                kept_blocks.add(creator_tag)
            else:
                self._remove(ds, t, where, "")
        for t in tags:
            if t & 0xFFFF < 0x1000 and t not in kept_blocks:
                self._remove(ds, t, path + _tag_text(t), "PrivateCreator" if t & 0xFFFF >= 0x10 else "")

    def _scrub(self, ds: Dataset, t: int, safe: SafePrivate, where: str) -> bool:
        """Clean a kept private element of identifying values, keeping its length and shape; False: remove it.

        A private sequence on the list is walked (its items keep what the level keeps); anything else that
        turns out to be a sequence, or a CSA header that is not one, is not kept.
        """
        raw = ds.get_item(t)
        if safe.kind == "sequence":
            if not _may_be_sequence(raw) and not (isinstance(raw, RawDataElement) and _parse_as_sequence(ds, raw)):
                return False
            if ds[t].VR != "SQ":
                return False
            for i, item in enumerate(ds[t].value):
                self.walk(item, f"{where}[{i}].")
            return True
        if _may_be_sequence(raw) and ds[t].VR == "SQ":
            return False
        value = raw.value if isinstance(raw, RawDataElement) else ds[t].value
        if not isinstance(value, (bytes, str)):
            return True  # empty, or a number
        cleaned = clean_kept(safe.kind, _as_bytes(value), self.patterns, self.keyring)
        if cleaned is None:
            return False
        if cleaned != _as_bytes(value):
            vr = raw.VR if isinstance(raw, RawDataElement) and raw.VR else ds[t].VR
            ds[t] = DataElement(t, vr, cleaned if isinstance(value, bytes) else cleaned.decode("utf-8", "replace"))
            self.changes.append(Change(where, "", "cleaned"))
        return True

    def _creator(self, ds: Dataset, tag: int) -> str:
        """The private creator at `tag` as written (trailing spaces removed), or "" when there is none."""
        if tag not in ds:
            return ""
        raw = ds.get_item(tag)
        if isinstance(raw, RawDataElement):
            if raw.VR not in (None, "LO", "UN") or not isinstance(raw.value, bytes):
                return ""
            return creator_name(raw.value) or ""
        if raw.VR in ("LO", "UN") and isinstance(raw.value, (str, bytes)):
            return creator_name(raw.value) or ""
        return ""

    def clean_meta(self, meta: Dataset) -> None:
        for tag in list(meta.keys()):
            t = int(tag)
            where = _tag_text(t)
            if t not in META_KEPT_AT_FULL:
                self._remove(meta, t, where, keyword_for_tag(t))
            elif t == META_REMAPPED and not _is_empty(meta.get_item(tag)):
                meta[t].value = self.keyring.uid(str(meta[t].value))
                self.changes.append(Change(where, keyword_for_tag(t), "remapped"))


def full_rule(tag: int, options: Options) -> tuple[str, str]:
    """The action at full for a standard (even-group) tag, and the keyword its change is recorded under."""
    return _full_rule(tag, options.shift_dates, options.clean_descriptors, options.retain_patient_characteristics,
                      options.retain_device_identity)


@lru_cache(maxsize=1 << 16)
def _full_rule(t: int, shift_dates: bool, clean_descriptors: bool, characteristics: bool, device: bool,
               ) -> tuple[str, str]:
    if t & 0xFFFF == 0:
        return "X", "GroupLength"
    if is_overlay_or_curve(t):
        return "X", keyword_for_tag(t) or "OverlayOrCurve"
    if t in REMOVED_AT_FULL:
        return "X", keyword_for_tag(t)
    if not dictionary_has_tag(t):
        return "X", ""
    options = Options(level=Level.FULL, shift_dates=shift_dates, clean_descriptors=clean_descriptors,
                      retain_patient_characteristics=characteristics, retain_device_identity=device)
    return full_action(t, load_table().lookup(t), options)[0], keyword_for_tag(t)


def cap_age(ds: Dataset, changes: list[Change]) -> None:
    """HIPAA Safe Harbor: a kept PatientAge of 90 years or more becomes `090Y`; one that does not parse, empty.

    Only years can reach 90 in the three digits of an AS value (999 months, weeks or days are less).
    """
    if PATIENT_AGE not in ds or _is_empty(ds.get_item(PATIENT_AGE)):
        return
    text = str(ds[PATIENT_AGE].value).strip()
    if len(text) == 4 and text[:3].isdigit() and text[3] in "DWMY":
        if text[3] != "Y" or int(text[:3]) < 90:
            return
        ds[PATIENT_AGE] = DataElement(PATIENT_AGE, "AS", "090Y")
        changes.append(Change(_tag_text(PATIENT_AGE), "PatientAge", "replaced"))
        return
    ds[PATIENT_AGE] = DataElement(PATIENT_AGE, "AS", None)
    changes.append(Change(_tag_text(PATIENT_AGE), "PatientAge", "emptied"))


def remap_uid(keyring: Keyring, uid: str) -> str:
    """A UID's keyed replacement; a well-known standard UID names no instance and is kept."""
    return uid if not uid or is_standard_uid(uid) else keyring.uid(uid)


def changed_top_level(changes: list[Change]) -> frozenset[int]:
    """The top-level tags a level changed, removed or added (the rest keep their source bytes)."""
    return frozenset(int(c.tag[1:5] + c.tag[6:10], 16) for c in changes)


# --- marks -----------------------------------------------------------------------------------------------------


def mark_method(ds: Dataset, method: str, changes: list[Change], keep_earlier: bool) -> None:
    """Set our DeidentificationMethod value. At anonymize an earlier one is kept before ours (the record of
    earlier de-identification); at full it is replaced (free text that may name operators and sites)."""
    text = f"{method} (neuroanon {__version__})"
    earlier = [str(v) for v in _values(ds.get("DeidentificationMethod", None))] if DEID_METHOD in ds else []
    earlier = earlier if keep_earlier else []
    ds.DeidentificationMethod = [*earlier, text] if earlier and text not in earlier else text
    changes.append(Change(_tag_text(DEID_METHOD), "DeidentificationMethod", "added"))


def mark_full(ds: Dataset, options: Options, changes: list[Change], identity_removed: bool) -> None:
    # Pixels that may show burned-in text are not proven clean: the identity is never claimed removed for them.
    ds.PatientIdentityRemoved = "YES" if identity_removed else "NO"
    changes.append(Change("(0012,0062)", "PatientIdentityRemoved", "added"))
    mark_method(ds, METHOD_NAMES[Level.FULL], changes, keep_earlier=False)
    items = []
    for value, meaning in option_codes(options):
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    changes.append(Change("(0012,0064)", "DeidentificationMethodCodeSequence", "added"))
    ds.LongitudinalTemporalInformationModified = "MODIFIED" if options.shift_dates else "REMOVED"
    changes.append(Change("(0028,0303)", "LongitudinalTemporalInformationModified", "added"))


# --- helpers ---------------------------------------------------------------------------------------------------


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


_IDENTITY_TAGS = (0x00080005, 0x00080018, 0x00100010, 0x00100020, 0x00100030, 0x0020000D)
_DUMMY_IDENTITY = frozenset({"anon", "10000101"})  # NiDB's and our dummies: already de-identified, nobody


def subject_of(ds: Dataset) -> str:
    """Whom a file is about, taken the same way in every file (and on both paths): its PatientID; else its
    patient's name with birth date; else its study; else the instance alone. Each fallback is in its own
    namespace and needs all its parts, so that two people are never taken for one. `ds` is not changed."""
    view = Dataset({BaseTag(t): ds.get_item(t) for t in _IDENTITY_TAGS if t in ds})  # decoded here, not in ds

    def text(keyword: str) -> str:
        value = str(view.get(keyword, "") or "").strip()
        return "" if value.lower() in _DUMMY_IDENTITY else value

    patient_id = str(view.get("PatientID", "") or "")
    if patient_id.strip():
        return patient_id
    name, birth = text("PatientName"), text("PatientBirthDate")
    if name and birth:
        return f"\0name\0{name}\0{birth}"
    for keyword in ("StudyInstanceUID", "SOPInstanceUID"):
        if text(keyword):
            return f"\0{keyword}\0{text(keyword)}"
    return ""


def _copy(ds: Dataset) -> Dataset:
    """A copy that the walkers may change freely, sharing only what they never change in place.

    Raw elements are immutable tuples of bytes and are shared; decoded elements are copied (their values are
    replaced, never mutated); sequences are copied item by item. Much cheaper than a deep copy of raw bytes.
    """
    new = copy.copy(ds)
    elements: dict[object, object] = {}
    for tag, elem in ds._dict.items():
        if isinstance(elem, DataElement):
            elem = copy.copy(elem)
            if elem.VR == "SQ":
                elem.value = Sequence([_copy(item) for item in elem.value])
        elements[tag] = elem
    object.__setattr__(new, "_dict", elements)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        object.__setattr__(new, "file_meta", _copy(meta))
    return new


def _tag_text(t: int) -> str:
    return f"({t >> 16:04X},{t & 0xFFFF:04X})"


def _values(value: object) -> list[object]:
    if value is None:
        return []
    if isinstance(value, DataElement):
        value = value.value
    if isinstance(value, (list, MultiValue)):
        return list(value)
    return [value]


def _is_empty(elem: DataElement | RawDataElement) -> bool:
    if isinstance(elem, RawDataElement):
        return elem.length == 0 or (elem.value is not None and elem.value.strip(b" \x00") == b"")
    return elem.is_empty


def _may_be_sequence(elem: DataElement | RawDataElement) -> bool:
    if isinstance(elem, DataElement):
        return elem.VR == "SQ"
    if elem.VR is not None:
        return elem.VR in ("SQ", "UN") and (elem.VR == "SQ" or elem.length == UNDEFINED_LENGTH)
    if elem.length == UNDEFINED_LENGTH:
        return True
    try:
        return dictionary_VR(elem.tag) == "SQ"
    except KeyError:
        return False
