"""Writing an instance: header encoded by pydicom, pixel data copied from the source in chunks, atomically.

The output goes to a temporary name in the destination folder and is renamed into place only when complete, so
an interrupted run never leaves a partial file under a final name.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO, DicomIO
from pydicom.filewriter import dcmwrite, write_dataset, write_file_meta_info

from .read import Header

CHUNK = 1 << 20
TMP_SUFFIX = ".neuroanon-tmp"


@contextmanager
def atomic_output(dest: Path) -> Iterator[BinaryIO]:
    """A file object whose content appears at `dest` only if the block completes."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as out:
            yield out
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def copy_file(source: Path, dest: Path) -> None:
    """Copy a file byte for byte, atomically."""
    with atomic_output(dest) as out, open(source, "rb") as src:
        shutil.copyfileobj(src, out, CHUNK)


def write_instance(dataset: Dataset, header: Header, source: Path, dest: Path) -> None:
    """Write `dataset` (a header from `read_header`, with the level applied) and the source's pixel data."""
    _refresh_group_length(getattr(dataset, "file_meta", None))
    with atomic_output(dest) as out:
        if header.pixels is None:
            # No pixel data, or a deflated file read whole: pydicom writes it all (and deflates again).
            dcmwrite(out, dataset, implicit_vr=header.implicit_vr, little_endian=header.little_endian,
                     force_encoding=_is_plain(dataset))
            return
        fp = DicomIO(out)
        fp.is_implicit_VR, fp.is_little_endian = header.implicit_vr, header.little_endian
        preamble = getattr(dataset, "preamble", None)
        if preamble:
            fp.write(preamble)
            fp.write(b"DICM")
        meta = getattr(dataset, "file_meta", None)
        if meta:
            write_file_meta_info(fp, meta, enforce_standard=False)
            fp.is_implicit_VR, fp.is_little_endian = header.implicit_vr, header.little_endian
        pixel_tag = header.pixels.tag
        write_dataset(fp, _subset(dataset, header, lambda t: t < pixel_tag))
        with open(source, "rb") as src:
            src.seek(header.pixels.start)
            _copy_range(src, out, header.pixels.size)
        after = _subset(dataset, header, lambda t: t > pixel_tag)
        if len(after):
            write_dataset(fp, after, parent_encoding=dataset._character_set)


def _is_plain(dataset: Dataset) -> bool:
    """True when the dataset's encoding should be kept as read rather than taken from the transfer syntax."""
    meta = getattr(dataset, "file_meta", None)
    return meta is None or "TransferSyntaxUID" not in meta or not meta.TransferSyntaxUID.is_deflated


def _subset(dataset: Dataset, header: Header, keep: Callable[[int], bool]) -> Dataset:
    part = Dataset({tag: dataset.get_item(tag) for tag in dataset.keys() if keep(int(tag))})
    part.set_original_encoding(header.implicit_vr, header.little_endian, dataset.original_character_set)
    return part


def _copy_range(src: BinaryIO, out: BinaryIO, size: int) -> None:
    while size:
        chunk = src.read(min(CHUNK, size))
        if not chunk:
            raise EOFError("source ended while copying pixel data")
        out.write(chunk)
        size -= len(chunk)


def _refresh_group_length(meta: FileMetaDataset | None) -> None:
    """Set (0002,0000) to the length of the meta elements that follow it, if the meta has one."""
    if meta is None or "FileMetaInformationGroupLength" not in meta:
        return
    rest = FileMetaDataset({tag: meta.get_item(tag) for tag in meta.keys() if tag != 0x00020000})
    buffer = DicomBytesIO()
    buffer.is_implicit_VR, buffer.is_little_endian = False, True
    write_dataset(buffer, rest)
    meta.FileMetaInformationGroupLength = len(buffer.getvalue())
