"""Where each output goes: the input tree mirrored, or (at full) a path built only from new identifiers."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from pydicom.dataset import Dataset

from .keys import Keyring

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def mirrored(prefix: str, relative: str) -> str:
    """The input's relative path, below a per-input prefix when several inputs were given."""
    return str(PurePosixPath(prefix, relative)) if prefix else relative


def by_identifiers(ds: Dataset, keyring: Keyring, relative: str) -> str:
    """`subject/study/series/instance.dcm` from the anonymized dataset's pseudonym and UIDs.

    A missing identifier is replaced by a keyed token of the input's relative path, so the path still says
    nothing about the input.
    """

    def part(keyword: str, kind: str) -> str:
        value = str(ds.get(keyword, "") or "").strip()
        return _UNSAFE.sub("_", value) if value else f"no-{kind}-{keyring.token(relative)}"

    return "/".join(
        (part("PatientID", "subject"), part("StudyInstanceUID", "study"), part("SeriesInstanceUID", "series"),
         part("SOPInstanceUID", "instance") + ".dcm")
    )


def by_uids(ds: Dataset, fallback: str) -> str:
    """`study/series/instance.dcm` from the dataset's own UIDs: how the DICOM node names a received instance
    below level full (those levels keep UIDs). A missing or unusable UID gives `fallback` in its place."""

    def part(keyword: str) -> str:
        value = _UNSAFE.sub("_", str(ds.get(keyword, "") or "").strip())
        return value if value.strip(".") else fallback

    return "/".join((part("StudyInstanceUID"), part("SeriesInstanceUID"), part("SOPInstanceUID") + ".dcm"))
