"""Applying a level to a dataset: a pure function, dataset in, new dataset and list of changes out, through the
engine (`apply_level`), and the fallback walker over pydicom's objects for the few forms the engine declines.

No file access, no logging, the input is not mutated. Changes name tags and actions, never values.
"""

from __future__ import annotations

import copy
import io
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.filereader import dcmread
from pydicom.filewriter import dcmwrite
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import UID

from . import engine
from .allowlist import SafePrivate, creator_name
from .context import FileContext, RunContext
from .csa import clean_kept
from .errors import UsageError
from .identifiers import Needle
from .keys import Keyring
from .options import Level, Options
from .read import parses_as_sequence
from .rules import (
    METHOD_NAMES,
    NIDB_ANONYMIZE,
    PSEUDONYM_TAGS,
    UN_READ_AS,
    Change,
    Op,
    Rule,
    Rules,
    capped_age,
    cleaned_text,
    compile_rules,
    creator_keyword,
    dummy_value,
    empty_value,
    fits_multiplicity,
    mark_full,
    mark_method,
    pseudonym,
    remap_uid,
    shifted_date,
    text_values,
)
from .tags import PATIENT_AGE, private_creator_tag, tag_text
from .write import WRITE_ERRORS

UNDEFINED_LENGTH = 0xFFFFFFFF


def apply_level(ds: Dataset, options: Options, patterns: tuple[Needle, ...] | None = None,
                ) -> tuple[Dataset, list[Change]]:
    """Apply `options.level` to `ds`; return a new dataset and what was changed. `ds` is not changed.

    `ds` may be a whole dataset or a header read without pixel data; a FileDataset's file meta and preamble are
    handled too. It goes through the engine: written by pydicom to bytes (in its transfer syntax, else the
    encoding it was read in, else explicit VR little endian), anonymized, read back. A dataset pydicom cannot
    write, or that the engine declines, is anonymized by the fallback walker (`apply_fallback`). `patterns` are
    `needles(ds)`, if the caller has them (the engine derives them itself).
    """
    if options.level is not Level.ORIGINAL:
        if options.level is Level.FULL and options.key is None:
            raise UsageError("the full level needs a key")
        through = _through_engine(ds, options)
        if through is not None:
            return through
    return apply_fallback(ds, options, patterns)


def _through_engine(ds: Dataset, options: Options) -> tuple[Dataset, list[Change]] | None:
    """`ds` anonymized by the engine, or None when pydicom cannot write it or the engine declines it."""
    source = io.BytesIO()
    meta = getattr(ds, "file_meta", None)
    syntax = UID(str(meta.get("TransferSyntaxUID", ""))) if meta is not None else UID("")
    implicit, little = (None, None) if syntax.is_transfer_syntax else ds.original_encoding
    try:
        dcmwrite(source, ds, implicit_vr=None if syntax.is_transfer_syntax else bool(implicit),
                 little_endian=None if syntax.is_transfer_syntax else little is not False)
    except WRITE_ERRORS:
        return None  # values pydicom cannot encode: only the walker takes them
    plan = engine.plan_bytes(source.getvalue(), options)
    if not isinstance(plan, engine.Plan):
        return None
    out = io.BytesIO()
    plan.write(Path(), out)
    out.seek(0)
    return dcmread(out, force=True), plan.changes


def apply_fallback(
    ds: Dataset, options: Options, patterns: tuple[Needle, ...] | None = None, context: FileContext | None = None
) -> tuple[Dataset, list[Change]]:
    """The general path's walker over pydicom's objects: the fallback for the well-formed files and datasets the
    engine still declines (an undefined-length UN or command-group elements in big endian, and a few rarer
    forms; the engine names each reason), and for datasets pydicom cannot write back.

    Applies `options.level` to a copy of `ds`; pixel data is never touched. `patterns` are `needles(ds)`, if the
    caller has them; `context` is `ds`'s file context, if the caller has one (a pipeline run).
    """
    new = _copy(ds)
    if options.level is Level.ORIGINAL:
        return new, []
    changes: list[Change] = []
    if options.level is Level.ANONYMIZE:
        _anonymize(new, "", changes, compile_rules(options))
        mark_method(new, METHOD_NAMES[Level.ANONYMIZE], changes, keep_earlier=True)
        return new, changes
    if options.key is None:
        raise UsageError("the full level needs a key")
    context = context or RunContext.of(options).file(ds)
    _full(context, new, context.needles if patterns is None else patterns, changes)
    return new, changes


def _full(context: FileContext, new: Dataset, patterns: tuple[Needle, ...], changes: list[Change]) -> None:
    """Apply full to `new`, the copy of the file's original: every element, the age cap, the file meta, the
    preamble, the marks."""
    options = context.options
    walker = _Full(compile_rules(options), context.keyring, options.lookup, changes, patterns, context.subject)
    walker.walk(new, "")
    if options.cap_ages and options.retain_patient_characteristics:
        cap_age(new, changes)
    meta = getattr(new, "file_meta", None)
    if meta is not None:
        walker.clean_meta(meta)
    if isinstance(new, FileDataset) and new.preamble:
        new.preamble = b"\x00" * 128
    mark_full(new, options, changes, identity_removed=context.burned_in_risk is None)


# --- anonymize -------------------------------------------------------------------------------------------------

# The five tags as they appear in encoded bytes, to skip sequences that cannot contain them without parsing.
_FIVE_PATTERNS = tuple(struct.pack(f"{e}HH", t >> 16, t & 0xFFFF) for t in NIDB_ANONYMIZE for e in "<>")


def _anonymize(ds: Dataset, path: str, changes: list[Change], rules: Rules) -> None:
    for tag in list(ds.keys()):
        t = int(tag)
        raw = ds.get_item(tag)
        rule = rules.tag(t)
        if rule.value is not None:
            if not _is_empty(raw):  # only present values are changed
                ds[tag] = DataElement(tag, dictionary_VR(tag), rule.value)
                changes.append(Change(path + tag_text(t), rule.keyword, Op.DUMMY.value))
        elif _may_hold_five(ds, raw) and ds[tag].VR == "SQ":
            before = len(changes)
            for i, item in enumerate(ds[tag].value):
                _anonymize(item, f"{path}{tag_text(t)}[{i}].", changes, rules)
            if len(changes) == before and isinstance(raw, RawDataElement):
                ds[tag] = raw  # nothing inside changed: the element keeps its bytes (and its VR)


def _may_hold_five(ds: Dataset, raw: DataElement | RawDataElement) -> bool:
    """Whether an element may be a sequence with one of the five inside; one whose bytes hold none is not parsed."""
    if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes):
        if not any(p in raw.value for p in _FIVE_PATTERNS):
            return False  # cannot hold any of the five: leave its bytes alone
        return _may_be_sequence(raw) or _parse_as_sequence(ds, raw)
    return _may_be_sequence(raw)


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
    if vr in UN_READ_AS:
        ds[t] = raw._replace(VR=vr)
        try:
            count = len(text_values(ds[t].value))
        except Exception:  # not a value of that VR (a wrong length, say): it cannot be shown to be harmless
            ds[t] = raw
            return False
        return fits_multiplicity(t, count)
    return True


# --- full ------------------------------------------------------------------------------------------------------


@dataclass
class _Full:
    """One file's walk at full: each element's operation from the rules, carried out on the dataset."""

    rules: Rules
    keyring: Keyring
    lookup: Mapping[str, str]
    changes: list[Change]
    patterns: tuple[Needle, ...]
    subject: str
    _offset: int | None = field(default=None)

    def walk(self, ds: Dataset, path: str) -> None:
        private: list[int] = []
        for tag in list(ds.keys()):
            t = int(tag)
            if t >> 16 & 1:
                private.append(t)
            else:
                self._apply(ds, t, path + tag_text(t))
        self._private(ds, private, path)

    def _apply(self, ds: Dataset, t: int, where: str) -> None:
        rule = self.rules.tag(t)
        if rule.removes or not _resolve_un(ds, t):  # a UN that should be a sequence and is not: removed
            self._remove(ds, t, where, rule.keyword)
            return
        op = _operation(ds, t, rule)
        if op is not Op.KEEP:
            _OPERATIONS[op](self, ds, t, where, rule.keyword)

    def _empty(self, ds: Dataset, t: int, where: str, keyword: str) -> None:
        elem = ds[t]
        vr = elem.VR
        elem.value = Sequence() if vr == "SQ" else empty_value(vr)
        self.changes.append(Change(where, keyword, Op.EMPTY.value))

    def _walk_items(self, ds: Dataset, t: int, where: str, keyword: str) -> None:
        for i, item in enumerate(ds[t].value):
            self.walk(item, f"{where}[{i}].")

    def _dummy(self, ds: Dataset, t: int, where: str, keyword: str) -> None:
        vr = ds[t].VR
        ds[t] = DataElement(t, vr, dummy_value(vr))
        self.changes.append(Change(where, keyword, Op.DUMMY.value))

    def _remap(self, ds: Dataset, t: int, where: str, keyword: str) -> None:
        elem = ds[t]
        values = [str(v) for v in _values(elem.value)]
        remapped = [remap_uid(self.keyring, v) for v in values]
        if remapped != values:
            elem.value = remapped
            self.changes.append(Change(where, keyword, Op.REMAP_UID.value))

    def _pseudonymize(self, ds: Dataset, t: int, where: str, keyword: str) -> None:
        value, how = pseudonym(self.keyring, self.lookup, str(ds.get("PatientID", "") or "") or self.subject)
        ds[t] = DataElement(t, PSEUDONYM_TAGS[t], value)
        self.changes.append(Change(where, keyword, how))

    def _shift(self, ds: Dataset, t: int, where: str, keyword: str) -> None:
        elem = ds[t]
        if self._offset is None:
            self._offset = self.keyring.day_offset(self.subject)
        elem.value = [shifted_date(v, elem.VR, self._offset) for v in text_values(elem.value)]
        self.changes.append(Change(where, keyword, Op.SHIFT_DATE.value))

    def _clean(self, ds: Dataset, t: int, where: str, keyword: str) -> None:
        elem = ds[t]
        values = text_values(elem.value)
        cleaned = [cleaned_text(v, self.patterns) for v in values]
        if cleaned != values:
            elem.value = cleaned
            self.changes.append(Change(where, keyword, Op.CLEAN_TEXT.value))

    def _remove(self, ds: Dataset, t: int, where: str, keyword: str) -> None:
        del ds[t]
        self.changes.append(Change(where, keyword, Op.REMOVE.value))

    def _private(self, ds: Dataset, tags: list[int], path: str) -> None:
        """Keep allow-listed private elements (with their creators); remove every other private element."""
        kept_blocks: set[int] = set()
        for t in tags:
            if t & 0xFFFF < 0x1000:
                continue  # creators and illegal low elements: decided below
            creator_tag = private_creator_tag(t)
            where = path + tag_text(t)
            safe = self.rules.private(self._creator(ds, creator_tag), t)
            if safe is not None and self._scrub(ds, t, safe, where):
                kept_blocks.add(creator_tag)
            else:
                self._remove(ds, t, where, "")
        for t in tags:
            if t & 0xFFFF < 0x1000 and t not in kept_blocks:
                self._remove(ds, t, path + tag_text(t), creator_keyword(t))

    def _scrub(self, ds: Dataset, t: int, safe: SafePrivate, where: str) -> bool:
        """Clean a kept private element of identifying values, keeping its length and shape; False: remove it.

        A private sequence on the list is walked (its items keep what the level keeps); anything else that
        turns out to be a sequence, or a CSA header that is not one, is not kept.
        """
        raw = ds.get_item(t)
        if safe.kind == "sequence":
            return self._walk_private_sequence(ds, t, raw, where)
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
            self.changes.append(Change(where, "", Op.CLEAN_TEXT.value))
        return True

    def _walk_private_sequence(self, ds: Dataset, t: int, raw: DataElement | RawDataElement, where: str) -> bool:
        if not _may_be_sequence(raw) and not (isinstance(raw, RawDataElement) and _parse_as_sequence(ds, raw)):
            return False
        if ds[t].VR != "SQ":
            return False
        for i, item in enumerate(ds[t].value):
            self.walk(item, f"{where}[{i}].")
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
            op = self.rules.meta(t)
            if op is Op.REMOVE:
                self._remove(meta, t, tag_text(t), keyword_for_tag(t))
            elif op is Op.REMAP_UID and not _is_empty(meta.get_item(tag)):
                self._remap(meta, t, tag_text(t), keyword_for_tag(t))


# What each operation does to an element of a dataset, recorded under a keyword (KEEP: nothing).
_OPERATIONS: dict[Op, Callable[[_Full, Dataset, int, str, str], None]] = {
    Op.REMOVE: _Full._remove,
    Op.EMPTY: _Full._empty,
    Op.DUMMY: _Full._dummy,
    Op.REMAP_UID: _Full._remap,
    Op.PSEUDONYM: _Full._pseudonymize,
    Op.SHIFT_DATE: _Full._shift,
    Op.CLEAN_TEXT: _Full._clean,
    Op.WALK_ITEMS: _Full._walk_items,
}


def _operation(ds: Dataset, t: int, rule: Rule) -> Op:
    """The operation on a standard element by the VR its value has; a kept or empty value: KEEP."""
    raw = ds.get_item(t)
    if _may_be_sequence(raw) and ds[t].VR == "SQ":
        return rule.op("SQ")
    if rule.keeps_value or _is_empty(raw):
        return Op.KEEP
    return rule.op(ds[t].VR)


def cap_age(ds: Dataset, changes: list[Change]) -> None:
    """HIPAA Safe Harbor on a kept PatientAge (rules.capped_age)."""
    if PATIENT_AGE not in ds or _is_empty(ds.get_item(PATIENT_AGE)):
        return
    capped = capped_age(str(ds[PATIENT_AGE].value).strip())
    if capped is not None:
        ds[PATIENT_AGE] = DataElement(PATIENT_AGE, "AS", capped[0])
        changes.append(Change(tag_text(PATIENT_AGE), "PatientAge", capped[1]))


def changed_top_level(changes: list[Change]) -> frozenset[int]:
    """The top-level tags a level changed, removed or added (the rest keep their source bytes)."""
    return frozenset(int(c.tag[1:5] + c.tag[6:10], 16) for c in changes)


# --- helpers ---------------------------------------------------------------------------------------------------


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


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
