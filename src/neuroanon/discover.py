"""Finding the input files and telling DICOM from everything else, by content, never by name."""

from __future__ import annotations

import enum
import os
import shutil
import stat
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

# Explicit VR codes: a file whose first element carries one of these is a DICOM dataset without a preamble.
_VRS = frozenset(
    b"AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)


class Kind(enum.StrEnum):
    DICOM = "dicom"
    NOT_DICOM = "not-dicom"
    EMPTY = "empty"
    SPECIAL = "special"  # FIFO, device, socket: never opened
    ZIP_MEMBER = "zip-member"  # classified once extracted


@dataclass(frozen=True)
class InputFile:
    """One file found under an input root; `relative` is its path below the root, used in reports."""

    path: Path
    root: Path
    relative: str
    kind: Kind
    member: str | None = None  # for a zip member: its name in the archive at `path`
    size: int = 0


def discover(inputs: list[Path]) -> Iterator[InputFile]:
    """Every file under the inputs, in a stable order. Symlinks are not followed out of the tree."""
    for root in inputs:
        if root.is_file() and not root.is_symlink() and zipfile.is_zipfile(root):
            yield from _members(root)
            continue
        if not root.is_dir() or root.is_symlink():  # a file, or a FIFO, device or link given by name
            yield _classify(root, root.parent, root.name)
            continue
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = Path(folder) / name
                yield _classify(path, root, path.relative_to(root).as_posix())


def _members(archive: Path) -> Iterator[InputFile]:
    """Every file in a zip archive given as an input, named by its path in the archive."""
    with zipfile.ZipFile(archive) as zf:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            if not info.is_dir():
                yield InputFile(archive, archive, info.filename, Kind.ZIP_MEMBER, info.filename, info.file_size)


def safe_member_name(name: str) -> bool:
    """A member name that stays inside an output folder when mirrored (no absolute path, no '..')."""
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts and "\\" not in name


def extracted(item: InputFile, folder: Path) -> InputFile:
    """Stream a zip member into `folder` and classify it by content, like any other file."""
    assert item.member is not None
    target = folder / "member"
    with zipfile.ZipFile(item.path) as zf, zf.open(item.member) as src, open(target, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return _classify(target, folder, item.relative)


def _classify(path: Path, root: Path, relative: str) -> InputFile:
    try:
        info = path.lstat()
    except OSError:
        return InputFile(path, root, relative, Kind.SPECIAL)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        return InputFile(path, root, relative, Kind.SPECIAL)
    if info.st_size == 0:
        return InputFile(path, root, relative, Kind.EMPTY)
    with open(path, "rb") as f:
        head = f.read(140)
    return InputFile(path, root, relative, Kind.DICOM if looks_like_dicom(head) else Kind.NOT_DICOM)


def looks_like_dicom(head: bytes) -> bool:
    """A Part-10 file ('DICM' after the preamble), or a bare dataset starting with a plausible element."""
    if head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    for endian in "<>":
        group, element = struct.unpack(f"{endian}HH", head[:4])
        if group not in (0x0002, 0x0008) or element > 0x0FFF:
            continue
        if head[4:6] in _VRS:
            return True
        (length,) = struct.unpack(f"{endian}L", head[4:8])
        if endian == "<" and length < 0x10000 and length % 2 == 0:
            return True  # implicit VR is always little endian
    return False
