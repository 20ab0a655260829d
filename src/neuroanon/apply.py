"""Applying a level to a dataset: a pure function, dataset in, new dataset and list of changes out, through the
engine (`apply_level`).

No file access, no logging, the input is not mutated. Changes name tags and actions, never values.
"""

from __future__ import annotations

import copy
import io
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import dcmread
from pydicom.filewriter import dcmwrite, write_dataset
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from . import engine
from .errors import InputError, UsageError
from .identifiers import Needle
from .options import Level, Options
from .rules import Change
from .write import WRITE_ERRORS


def apply_level(ds: Dataset, options: Options, patterns: tuple[Needle, ...] | None = None,
                ) -> tuple[Dataset, list[Change]]:
    """Apply `options.level` to `ds`; return a new dataset and what was changed. `ds` is not changed.

    `ds` may be a whole dataset or a header read without pixel data; a FileDataset's file meta and preamble are
    handled too. It goes through the engine: written by pydicom to bytes (in its transfer syntax, else the
    encoding it was read in, else explicit VR little endian), anonymized, read back. A dataset pydicom cannot
    write, or that the engine declines, raises InputError naming why (fixed words, no value). `patterns` are
    accepted for compatibility and not needed: the engine derives the file's needles itself.
    """
    if options.level is Level.ORIGINAL:
        return copy.deepcopy(ds), []
    if options.level is Level.FULL and options.key is None:
        raise UsageError("the full level needs a key")
    named = _syntax_named(ds)
    plan = engine.plan_bytes(_encoded(named), options, empty=True)
    if not isinstance(plan, engine.Plan):
        raise InputError(f"the engine does not take the dataset ({plan}): not anonymized")
    out = io.BytesIO()
    plan.write(Path(), out)
    out.seek(0)
    result = dcmread(out, force=True)
    if named is not ds:  # the transfer syntax was only for the engine
        del result.file_meta.TransferSyntaxUID
    return result, plan.changes


def _syntax_named(ds: Dataset) -> Dataset:
    """`ds`, or when its file meta names no transfer syntax a shallow copy whose file meta names the one it is
    written in (the encoding it was read in, else explicit VR little endian): without it the engine would guess
    the encoding from the first element, as pydicom does, and a group of 0400 or more reads as big endian."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return ds
    implicit, little = ds.original_encoding
    named = copy.copy(ds)
    named.file_meta = FileMetaDataset(meta or FileMetaDataset())
    named.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                         ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian)
    return named


def _encoded(ds: Dataset) -> bytes:
    """`ds` as pydicom writes it: in its transfer syntax, else the encoding it was read in, else explicit VR little
    endian. Command-group elements, which dcmwrite refuses, are encoded in the same encoding where the dataset
    begins (not in a deflated dataset)."""
    meta = getattr(ds, "file_meta", None)
    syntax = UID(str(meta.get("TransferSyntaxUID", ""))) if meta is not None else UID("")
    implicit, little = ds.original_encoding
    encoding: tuple[bool | None, bool | None] = (
        (None, None) if syntax.is_transfer_syntax else (bool(implicit), little is not False))
    commands = Dataset({tag: ds.get_item(tag) for tag in ds.keys() if tag >> 16 == 0})
    if commands and syntax.is_transfer_syntax and syntax.is_deflated:
        raise InputError("command-group elements in a deflated dataset: not anonymized")
    try:
        data = _written(_without(ds, commands), *encoding)
        if not commands:
            return data
        start = len(_written(_without(ds, ds), *encoding))  # where the dataset begins: after the file meta
        fp = DicomBytesIO()
        fp.is_implicit_VR = syntax.is_implicit_VR if syntax.is_transfer_syntax else bool(encoding[0])
        fp.is_little_endian = syntax.is_little_endian if syntax.is_transfer_syntax else bool(encoding[1])
        write_dataset(fp, commands)
    except WRITE_ERRORS as exc:
        raise InputError(f"the dataset cannot be encoded ({type(exc).__name__}): not anonymized") from None
    return data[:start] + bytes(fp.getvalue()) + data[start:]


def _without(ds: Dataset, elements: Dataset) -> Dataset:
    """A shallow copy of `ds` (its file meta and preamble too) without the top-level `elements`."""
    copied = copy.copy(ds)
    object.__setattr__(copied, "_dict", {tag: e for tag, e in ds._dict.items() if tag not in elements})
    return copied


def _written(ds: Dataset, implicit: bool | None, little: bool | None) -> bytes:
    out = io.BytesIO()
    dcmwrite(out, ds, implicit_vr=implicit, little_endian=little)
    return out.getvalue()


def changed_top_level(changes: list[Change]) -> frozenset[int]:
    """The top-level tags a level changed, removed or added (the rest keep their source bytes)."""
    return frozenset(int(c.tag[1:5] + c.tag[6:10], 16) for c in changes)
