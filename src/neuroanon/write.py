"""Writing an instance: header encoded by pydicom, pixel data copied from the source in chunks, atomically.

The output is staged under a temporary name in a private work folder and renamed into place only when complete
and checked, so an interrupted run never leaves a partial file under a final name.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import io
import itertools
import os
import shutil
import stat
import struct
import sys
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO, DicomIO
from pydicom.filewriter import dcmwrite, write_data_element, write_dataset, write_file_meta_info
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from .errors import UsageError
from .read import Header, PixelSpan

CHUNK = 1 << 20
TMP_SUFFIX = ".neuroanon-tmp"
# What pydicom raises for a value it cannot decode or encode (a wrong type, a number out of range, a VR it does not
# know: NotImplementedError...).
WRITE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError, struct.error, NotImplementedError)


class Staged:
    """An output being written under a temporary name in a stage folder.

    Whoever commits it later (maybe another process) releases it under its final name, moves it to a
    quarantine, or discards it. Nothing partial ever carries a final name.
    """

    def __init__(self, folder: Path) -> None:
        try:
            fd, name = _new_file(folder)
        except FileNotFoundError:  # made here only when missing: one system call less per file
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = _new_file(folder)
        self.path = Path(name)
        self.file: BinaryIO = os.fdopen(fd, "wb")

    def __enter__(self) -> Staged:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        try:
            self.file.close()  # flushes: on a full disk this is where the write fails
        except OSError:
            discard(self.path)
            if kind is None:
                raise
        if kind is not None:
            discard(self.path)


_NUMBERS = itertools.count()  # (taken one at a time by each thread: `next` holds the GIL)
_NEW_FILE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TRIES = 10_000  # as tempfile's mkstemp


def _new_file(folder: Path) -> tuple[int, str]:
    """A new private file (0600) in `folder` and its name, which no file there had: numbered in this process (a
    worker stages in a folder of its own; the process's id keeps others' names apart), the next number taken for
    a name already there (left by a killed run). As `mkstemp`, without drawing a random name."""
    for _ in range(_TRIES):
        name = f"{folder}/.{os.getpid()}-{next(_NUMBERS)}{TMP_SUFFIX}"
        try:
            return os.open(name, _NEW_FILE, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# A released file's mode, as `cp` gives a new file: staged files are private (0600) until then. (The umask is read
# once, at import: setting it to read it is not safe while other threads create files.)
OUTPUT_MODE = 0o666 & ~_umask()


def claim(fd: int, refusal: str) -> None:
    """Hold the open file `fd` for this run alone (a lock that ends when it is closed): a file two runs wrote at
    once would mix their lines. When another run holds it, `fd` is closed and UsageError(`refusal`) raised. On a
    file system without locks (an NFS mount with no lock service) the file is written unheld, as before."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UsageError(refusal) from None
    except OSError:
        pass


def held_elsewhere(path: Path) -> bool:
    """Whether another run holds `path` (see `claim`): asked before a run makes anything, so that a refused run
    leaves nothing behind; the run claims the file itself later."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False  # (missing or unreadable: opening it for the run says why)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def append_line(fd: int, line: str) -> None:
    """Append `line` (a whole line) to the file open at `fd` for appending, in one write where the system allows.
    A write that fails part way (a full disk, a file size limit) is cut off again: the file holds whole lines only
    (and a shorter line, the summary, may still fit). Room is kept for the lines to come (`LINES_AHEAD`)."""
    data = memoryview(line.encode("utf-8"))
    found = os.fstat(fd)
    regular = stat.S_ISREG(found.st_mode)  # (not a device or a pipe: /dev/stdout)
    room = found.st_blocks * 512 - found.st_size
    if regular and room < len(data) * LINES_AHEAD // 2 and found.st_dev not in _NO_ROOM:
        _keep_room(fd, found, len(data))
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        if regular:
            with suppress(OSError):
                os.ftruncate(fd, found.st_size)
        raise


def close_lines(fd: int) -> None:
    """Close a file `append_line` wrote, the room it kept past the file's end given back."""
    try:
        with suppress(OSError):
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.ftruncate(fd, os.fstat(fd).st_size)  # (past the end only: the lines stay)
    finally:
        os.close(fd)


# Room kept allocated past the end of the files a run appends a line to for each input (journal, report, mapping),
# for this many more lines like the last one, topped up when less than half is left: the lines of the files the
# workers staged before the disk filled up then still fit, and those files are released, not discarded with a run
# stopped by its journal (found in CI: a run on a full disk stopped with half of it free). A run of a few workers
# has at most some 500 files staged and not yet released. At most a sixteenth of the disk's free space is kept (a
# nearly full disk: found from outside, the room took what was left); given back at close (`close_lines`).
LINES_AHEAD = 512


def _fallocate() -> Callable[[int, int, int, int], int] | None:
    """Linux's fallocate(2), which can allocate space past a file's end without changing its size; else None."""
    try:
        call = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    call.argtypes, call.restype = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64), ctypes.c_int
    return call


_FALLOCATE = _fallocate() if sys.platform.startswith("linux") else None
_KEEP_SIZE = 1  # FALLOC_FL_KEEP_SIZE


def _keep_room(fd: int, found: os.stat_result, line: int) -> None:
    """Room for `LINES_AHEAD` lines of `line` bytes allocated past the file's end, where the system and the file
    system can (a full disk: not now). A file system without it (NFS 3, ZFS) is not asked again: each line would
    cost two more calls, on NFS two round trips."""
    if _FALLOCATE is None:
        return
    try:
        disk = os.fstatvfs(fd)
    except OSError:
        return
    room = min(line * LINES_AHEAD, disk.f_bavail * disk.f_frsize // 16)
    if room > 0:
        with suppress(OSError):  # (the lines are written without the room, as before)
            _allocate(fd, found, room)


_NO_ROOM: set[int] = set()  # the devices whose file system keeps no room past a file's end


def make_room(fd: int, size: int) -> None:
    """At least `size` bytes allocated past the end of the file open at `fd` (one `append_line` writes), so that
    lines of that many bytes are then written whatever space the disk has left; OSError when the disk has no such
    room (a full disk). Nothing for a file that is no regular file, or where the system or the file system keeps
    no room past a file's end (its lines are then written as space allows)."""
    found = os.fstat(fd)
    if stat.S_ISREG(found.st_mode) and found.st_blocks * 512 - found.st_size < size and found.st_dev not in _NO_ROOM:
        _allocate(fd, found, size)


def _allocate(fd: int, found: os.stat_result, size: int) -> None:
    """`size` bytes allocated past the end of the file open at `fd` (`found`: its status); OSError where the disk
    has none. A file system that keeps no room past a file's end is not asked again for the run."""
    if _FALLOCATE is None:
        return
    while _FALLOCATE(fd, _KEEP_SIZE, found.st_size, size) != 0:
        code = ctypes.get_errno()
        if code == errno.EOPNOTSUPP:
            _NO_ROOM.add(found.st_dev)
            return
        if code != errno.EINTR:  # (a signal: asked again)
            raise OSError(code, os.strerror(code))


def release(staged: str | Path, dest: str | Path, root: Path | None = None, mode: int | None = None) -> None:
    """Give a staged file its final name `dest` (in the output or the quarantine): a rename, atomic.

    When the stage is on another file system than `dest` (an output folder that is a mount point, a quarantine on
    another disk), the file is first copied to a temporary name in `root` (the output or quarantine folder;
    default: dest's folder), then renamed. `mode`: the file's mode once released (else it stays private).
    """
    _release(staged, dest, root)
    if mode is not None:
        with suppress(OSError):  # a file system without modes (exFAT, a CIFS share) refuses it: its own mode stays
            os.chmod(dest, mode)


def _release(staged: str | Path, dest: str | Path, root: Path | None) -> None:
    try:
        try:
            os.replace(staged, dest)
        except FileNotFoundError:  # its folder is not there yet
            Path(dest).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        folder = Path(dest).parent
        with Staged(root or folder) as near, open(staged, "rb") as src:
            shutil.copyfileobj(src, near.file, CHUNK)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(near.path, dest)
        except BaseException:  # (its path taken by a file or a folder) no copy is left beside the output
            discard(near.path)
            raise
        os.unlink(staged)


def discard(staged: str | Path) -> None:
    with suppress(FileNotFoundError):
        os.unlink(staged)


def clear_staged(folder: Path | None) -> None:
    """Remove what an interrupted run left staged in `folder` (never a file under a final name)."""
    if folder is not None and folder.is_dir():
        for leftover in folder.glob(f".*{TMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)


class MemberPaths:
    """The paths an archive's members take, as a folder unpacked from it would hold them: a member named as another's
    folder (`x` beside `x/y.dcm`) could not be unpacked beside it (found from outside: both were added, and unzip
    dropped one)."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        """`names`: the members an archive holds already (as they are: an earlier version may have added both)."""
        self.files: set[str] = set(names)
        self.folders = {parent for name in self.files for parent in parent_folders(name)}

    def take(self, name: str) -> None:
        """Take `name`'s path, or fail as a release into a folder would: a folder there (EISDIR), a file where
        one of its folders must be (ENOTDIR)."""
        parents = parent_folders(name)
        if name in self.folders:
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if any(parent in self.files for parent in parents):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        self.files.add(name)
        self.folders.update(parents)


def parent_folders(name: str) -> list[str]:
    """The folders a relative path `name` lies in ("a/b/c": "a/b", "a")."""
    return [parent.as_posix() for parent in PurePosixPath(name).parents][:-1]  # (without ".")


class ZipSink:
    """A zip archive written member by member as files are released, in a stable form: stored (DICOM pixel data
    is often compressed already), fixed dates and modes, so the same inputs give the same bytes.

    It is written as `<name>.partial` and renamed when the run finishes. The partial archive of an interrupted
    run is taken up again: its leading members named in `keep` (those the run's journal says were released) stay
    as they are, anything after them is cut off, and the archive goes on from there to the bytes an
    uninterrupted run gives.
    """

    def __init__(self, dest: Path, keep: set[str] | frozenset[str] = frozenset()) -> None:
        self.dest = dest
        self.partial = partial_zip(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        kept: list[zipfile.ZipInfo] = []
        self._file: BinaryIO | None = None
        self.archive: zipfile.ZipFile | None = None
        if keep and self.partial.exists():
            kept, end = _complete_members(self.partial, keep)
            self._file = open(self.partial, "r+b")
            self._file.truncate(end)
            self._file.seek(end)
        elif not self.partial.exists():
            self._file = open(self.partial, "wb")
        # (else an interrupted run's partial archive, none of whose members is kept: cut off when this run adds its
        # first member, untouched until then; found from outside, a rerun that found no file removed it)
        if self._file is not None:
            self.archive = zipfile.ZipFile(self._file, "w", zipfile.ZIP_STORED, allowZip64=True)
        for info in kept:
            self._opened().filelist.append(info)
            self._opened().NameToInfo[info.filename] = info
        self.members = {info.filename for info in kept}
        self.paths = MemberPaths(self.members)
        self.syntaxes: dict[str, bytes | None] = {}  # each member's transfer syntax, as this run added it
        self.finished = False  # (named, or discarded: nothing is left for a rerun to take up)

    def add(self, staged: Path, name: str) -> None:
        """Copy a released file into the archive in chunks, then remove it."""
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:  # a name from bytes that are not UTF-8, which a member's name must be
            raise OSError(errno.EILSEQ, "its name is not UTF-8, as an archive member's must be: rename the input, "
                          "or write to a folder") from None
        self.paths.take(name)
        size = staged.stat().st_size
        with open(staged, "rb") as src, self._opened().open(_member(name), "w", force_zip64=size >= 1 << 31) as out:
            head = src.read(CHUNK)
            out.write(head)
            shutil.copyfileobj(src, out, CHUNK)
        self.members.add(name)
        self.syntaxes[name] = transfer_syntax(head)
        staged.unlink()

    def member(self, name: str) -> tuple[int, int, bytes | None] | None:
        """A member's CRC-32, size and transfer syntax (None: not known, one an interrupted run added), for a
        duplicate's comparison; None when the archive holds no such member."""
        info = self.archive.NameToInfo.get(name) if self.archive is not None else None
        return None if info is None else (info.CRC, info.file_size, self.syntaxes.get(name))

    def _opened(self) -> zipfile.ZipFile:
        """The archive being written; an interrupted run's partial archive is cut off when it is first needed."""
        if self.archive is None:
            self._file = open(self.partial, "wb")
            self.archive = zipfile.ZipFile(self._file, "w", zipfile.ZIP_STORED, allowZip64=True)
        return self.archive

    def finish(self) -> None:
        self._opened().close()
        assert self._file is not None
        self._file.close()
        os.replace(self.partial, self.dest)
        self.finished = True

    def discard(self) -> None:
        """No archive from a run that released no file into it: the partial one it began is removed; an
        interrupted run's, which it left untouched, stays for a rerun (`finished` stays False: with its journal)."""
        if self.archive is None:
            return
        self.close()
        self.partial.unlink(missing_ok=True)
        self.finished = True

    def close(self) -> None:
        """Without `finish` (an error or an interruption) nothing carries the final name; the partial archive
        stays for a rerun to take up."""
        if not self.finished and self.archive is not None and self._file is not None:
            self.archive.close()
            self._file.close()


def transfer_syntax(head: bytes) -> bytes | None:
    """The transfer syntax UID the file meta at the start of a file declares (its first bytes, after the preamble
    if it has one), or None."""
    at = head.find(b"\x02\x00\x10\x00UI", 132 if head[128:132] == b"DICM" else 0)
    if at < 0:
        return None
    length = int.from_bytes(head[at + 6 : at + 8], "little")
    return head[at + 8 : at + 8 + length].rstrip(b"\x00 ")


def partial_zip(dest: Path) -> Path:
    """Where the archive `dest` is written until it is complete."""
    return dest.with_name(dest.name + ".partial")


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    return info


_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")


def _complete_members(partial: Path, keep: set[str] | frozenset[str]) -> tuple[list[zipfile.ZipInfo], int]:
    """The leading members of a partial archive that are in `keep` and whole, as the archive's directory will
    list them, and where the first other one (or the end of those) begins. Each local header carries its final
    sizes and CRC once the member is complete (the archive is written to a seekable file); the member's bytes
    are read to check them against that CRC."""
    kept: list[zipfile.ZipInfo] = []
    pos = 0
    with open(partial, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        while pos + _LOCAL_HEADER.size <= size:
            f.seek(pos)
            (signature, version, _, flags, method, _, _, crc, compressed, length, name_size,
             extra_size) = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
            if signature != b"PK\x03\x04" or method != zipfile.ZIP_STORED:
                break
            name = f.read(name_size).decode("utf-8" if flags & 0x800 else "ascii")
            extra = f.read(extra_size)
            if length == 0xFFFFFFFF and extra[:2] == b"\x01\x00":  # zip64: the sizes are in the extra field
                length, compressed = struct.unpack("<QQ", extra[4:20])
            end = pos + _LOCAL_HEADER.size + name_size + extra_size + compressed
            if name not in keep or end > size or _crc(f, compressed) != crc:
                break
            info = _member(name)
            info.file_size, info.compress_size, info.CRC, info.header_offset = length, compressed, crc, pos
            info.extract_version = info.create_version = version
            kept.append(info)
            pos = end
    return kept, pos


def _crc(f: BinaryIO, length: int) -> int:
    """The CRC-32 of the next `length` bytes of `f`."""
    crc = 0
    while length > 0:
        chunk = f.read(min(length, CHUNK))
        if not chunk:
            break
        crc = zlib.crc32(chunk, crc)
        length -= len(chunk)
    return crc


def copy_file(source: Path, output: Path) -> Path:
    """Stage a byte-for-byte copy of `source` in `output`; return the staged path."""
    with Staged(output) as staged, open(source, "rb") as src:
        copy_range(src, staged.file, os.fstat(src.fileno()).st_size)
    return staged.path


def salvage(header: Header, source: Path) -> bytes:
    """The file pydicom read tolerantly (`header`), written back unchanged in canonical form, in memory: every
    element encoded by pydicom in the encoding its transfer syntax names (else the one it was read in), the pixel
    data element copied from `source` (encoded anew when the encoding changes)."""
    meta = getattr(header.dataset, "file_meta", None)
    syntax = UID(str(meta.get("TransferSyntaxUID", ""))) if meta is not None else UID("")
    deque(header.dataset.iterall(), maxlen=0)  # every element decoded (its VR known), to be encoded anew
    if syntax.is_transfer_syntax and (syntax.is_implicit_VR, syntax.is_little_endian) != (header.implicit_vr,
                                                                                           header.little_endian):
        if header.pixels is not None:
            header.dataset[header.pixels.tag] = _pixel_element(header, source)
        header = replace(header, pixels=None, implicit_vr=syntax.is_implicit_VR, little_endian=syntax.is_little_endian)
    buffer = io.BytesIO()
    write_instance(header.dataset, header, source, buffer, changed=frozenset(int(t) for t in header.dataset.keys()))
    return buffer.getvalue()


def _pixel_element(header: Header, source: Path) -> DataElement:
    """The pixel data element read from `source` as `header` located it (its fragments, if encapsulated)."""
    assert header.pixels is not None
    with open(source, "rb") as f:
        f.seek(header.pixels.start)
        data = f.read(header.pixels.size)
    start = 8 if header.implicit_vr else 12
    length = struct.unpack_from("<L" if header.little_endian else ">L", data, start - 4)[0]
    undefined = length == 0xFFFFFFFF
    wide = int(header.dataset.get("BitsAllocated", 8) or 8) > 8
    element = DataElement(header.pixels.tag, "OW" if wide and not undefined else "OB",
                          data[start:-8] if undefined else data[start:start + length])
    element.is_undefined_length = undefined
    return element


def write_instance(
    dataset: Dataset, header: Header, source: Path, out: BinaryIO, changed: frozenset[int]
) -> PixelSpan | None:
    """Write `dataset` (a header from `read_header`, with the level applied) and the source's pixel data to `out`.

    Top-level elements not in `changed` are copied from the source bytes. Returns where the pixel data element
    lies in the output (None if it was not streamed).
    """
    _refresh_group_length(getattr(dataset, "file_meta", None))
    if header.pixels is None:
        # No pixel data, or a deflated file read whole: pydicom writes it all (and deflates again).
        if any(tag >> 16 == 0 for tag in dataset._dict):
            _write_with_command_group(out, dataset, header)
        else:
            dcmwrite(out, dataset, implicit_vr=header.implicit_vr, little_endian=header.little_endian,
                     force_encoding=_is_plain(dataset))
        out.flush()
        return None
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
    with open(source, "rb") as src:
        head = src.read(header.pixels.start)
        _write_elements(fp, dataset, header, head, 0, changed, lambda t: t < pixel_tag)
        start = out.tell()
        src.seek(header.pixels.start)
        copy_range(src, out, header.pixels.size)
        span = PixelSpan(pixel_tag, start, out.tell())
        # (to the end of the last element read, not of the file: the zero bytes that pad it after its pixel data are
        # not read; found from outside, gigabytes of them were read into memory)
        tail = src.read(max(end for _, end in header.spans.values()) - header.pixels.end)
    _write_elements(fp, dataset, header, tail, header.pixels.end, changed, lambda t: t > pixel_tag)
    out.flush()
    return span


def _write_elements(
    fp: DicomIO, dataset: Dataset, header: Header, source: bytes, offset: int, changed: frozenset[int],
    keep: Callable[[int], bool],
) -> None:
    """Write the top-level elements `keep` selects, in tag order: an element the level did not change is copied
    from the source bytes (`source` starts at `offset` in the file); any other is encoded by pydicom."""
    encoding = dataset.get("SpecificCharacterSet", default_encoding)
    for tag in sorted(t for t in dataset._dict if keep(int(t))):
        if tag.element == 0 and tag.group > 6:
            continue  # retired group lengths are not written (PS3.5 7.2), as pydicom does
        span = header.spans.get(int(tag))
        if span is not None and int(tag) not in changed:
            fp.write(source[span[0] - offset : span[1] - offset])
        else:
            write_data_element(fp, dataset.get_item(tag), encoding)


def _write_with_command_group(out: BinaryIO, dataset: Dataset, header: Header) -> None:
    """Write the whole file as dcmwrite does, for a dataset holding command-group (0000) elements, which dcmwrite
    refuses (anonymize keeps them: it changes only the five)."""
    fp = DicomIO(out)
    preamble = getattr(dataset, "preamble", None)
    meta = getattr(dataset, "file_meta", None)
    if preamble or meta:
        fp.write(preamble or b"\x00" * 128)
        fp.write(b"DICM")
    if meta:
        write_file_meta_info(fp, meta, enforce_standard=False)
    body = DicomBytesIO()
    body.is_implicit_VR, body.is_little_endian = header.implicit_vr, header.little_endian
    write_dataset(body, dataset)
    data = bytes(body.getvalue())
    if meta is not None and meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        data = compressor.compress(data) + compressor.flush()
        data += b"\x00" * (len(data) % 2)
    out.write(data)


def _is_plain(dataset: Dataset) -> bool:
    """True when the dataset's encoding should be kept as read rather than taken from the transfer syntax."""
    meta = getattr(dataset, "file_meta", None)
    return meta is None or "TransferSyntaxUID" not in meta or not meta.TransferSyntaxUID.is_deflated


def copy_range(src: BinaryIO, out: BinaryIO, size: int) -> None:
    """Append `size` bytes from `src`'s position to `out`; both are left at the end of what was copied.

    Between two files on one file system the kernel copies (copy_file_range: no pass through this process);
    anywhere else, 1 MiB at a time.
    """
    offset = src.tell()
    copy = getattr(os, "copy_file_range", None)
    if copy is not None:
        out.flush()
        try:
            while size:
                done = copy(src.fileno(), out.fileno(), min(size, 1 << 30), offset)
                if not done:
                    raise EOFError("source ended while copying pixel data")
                offset += done
                size -= done
        except (OSError, ValueError, io.UnsupportedOperation):
            pass  # another file system, or not a file: the rest goes through this process
        finally:
            src.seek(offset)
            out.seek(0, os.SEEK_END)  # the writer learns where the kernel left the file
    while size:
        chunk = src.read(min(CHUNK, size))
        if not chunk:
            raise EOFError("source ended while copying pixel data")
        out.write(chunk)
        size -= len(chunk)


def copy_translated(src: BinaryIO, out: BinaryIO, size: int, tables: tuple[bytes, bytes]) -> None:
    """`copy_range` through this process, each even byte translated by `tables[0]` and each odd one by `tables[1]`
    (counted from `src`'s position)."""
    while size:
        chunk = bytearray(src.read(min(CHUNK, size)))  # (CHUNK is even: the bytes keep their parity)
        if not chunk:
            raise EOFError("source ended while copying pixel data")
        out.write(translated(chunk, tables))
        size -= len(chunk)


def translated(data: bytearray, tables: tuple[bytes, bytes]) -> bytearray:
    """`data` with its even bytes translated by `tables[0]`, its odd ones by `tables[1]`, in place."""
    data[0::2], data[1::2] = data[0::2].translate(tables[0]), data[1::2].translate(tables[1])
    return data


def _refresh_group_length(meta: FileMetaDataset | None) -> None:
    """Set (0002,0000) to the length of the meta elements that follow it, if the meta has one."""
    if meta is None or "FileMetaInformationGroupLength" not in meta:
        return
    rest = FileMetaDataset({tag: meta.get_item(tag) for tag in meta.keys() if tag != 0x00020000})
    buffer = DicomBytesIO()
    buffer.is_implicit_VR, buffer.is_little_endian = False, True
    write_dataset(buffer, rest)
    meta.FileMetaInformationGroupLength = len(buffer.getvalue())
