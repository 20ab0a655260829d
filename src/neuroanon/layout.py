"""Where each output goes: the input tree mirrored, or (at full) a path built only from new identifiers."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import PurePosixPath

from pydicom.dataset import Dataset

from .context import FileContext

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_UID_LENGTH = 64  # PS3.5 9.1


def mirrored(prefix: str, relative: str) -> str:
    """The input's relative path, below a per-input prefix when several inputs were given: as found, not in normal
    form, so that a zip's members './a.dcm' and 'a.dcm' keep names of their own (found from outside: with several
    inputs both were named 'x/d.zip/a.dcm', taken for one input, and written in turn to its one output path)."""
    return f"{prefix}/{relative}" if prefix else relative


def mirrored_output(name: str) -> str:
    """Where the file of mirrored name `name` goes: that path in its normal form, so that a zip's members
    './a.dcm' and 'a.dcm' (or 'b//c.dcm' and 'b/c.dcm') are seen to claim one place."""
    # (a folder's file is in normal form already: a path object a file cost 2 us, 1.5% of `anonymize` in a worker)
    return PurePosixPath(name).as_posix() if not name or _NOT_NORMAL.search(name) else name


_NOT_NORMAL = re.compile(r"//|(?:^|/)\.(?:/|$)|/$")  # what a normal form leaves out: "//", a "." part, a last "/"


def by_identifiers(identifiers: Mapping[str, str], context: FileContext, relative: str) -> str:
    """`subject/study/series/instance.dcm` from the anonymized file's pseudonym and UIDs (by keyword).

    Without a PatientID the subject is the pseudonym of the file's best identity (`context.subject`);
    a missing study or series is named by a keyed token of what is above it, so that the files of one subject
    stay together and one instance has one path whatever file it came in; a missing instance UID by a keyed
    token of the input's relative path. No part says anything about the input.
    """

    def value(keyword: str) -> str:
        return _UNSAFE.sub("_", identifiers.get(keyword, "").strip())

    keyring = context.keyring
    subject = identifiers.get("PatientID", "") or (keyring.pseudonym(context.subject) if context.subject else "")
    patient = value("PatientID") or _UNSAFE.sub("_", subject) or f"no-subject-{keyring.token(relative)}"
    study = value("StudyInstanceUID") or f"no-study-{keyring.token(patient)}"
    series = value("SeriesInstanceUID") or f"no-series-{keyring.token(patient + '/' + study)}"
    instance = value("SOPInstanceUID") or f"no-instance-{keyring.token(relative)}"
    return f"{patient}/{study}/{series}/{instance}.dcm"


def by_uids(ds: Dataset, fallback: str) -> str:
    """`study/series/instance.dcm` from the dataset's own UIDs: how the DICOM node names a received instance
    below level full (those levels keep UIDs). A UID is its own path part when it can be one as it is: letters,
    digits, '.', '_' and '-', not dots alone, at most the 64 characters a UID may have. Any other is named
    `uid~` and a hash of it: the same for the same UID, so a resent instance is a duplicate and a study stays
    together, and never another UID's name ('~' is in none). Found from outside: one too long for a file name was
    refused with 0xA700, retried for ever; '4+5' and '4_5' were one path, and the second instance was said stored
    and was not. A missing UID gives `fallback`."""

    def part(keyword: str) -> str:
        value = str(ds.get(keyword, "") or "").strip()
        if not value:
            return fallback
        if not _UNSAFE.search(value) and value.strip(".") and len(value) <= _UID_LENGTH:
            return value
        return "uid~" + hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:40]

    return "/".join((part("StudyInstanceUID"), part("SeriesInstanceUID"), part("SOPInstanceUID") + ".dcm"))
