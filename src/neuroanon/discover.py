"""Finding the input files and telling DICOM from everything else, by content, never by name."""

from __future__ import annotations

import enum
import errno
import gzip
import os
import re
import shutil
import stat
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from pydicom.datadict import dictionary_has_tag

from .errors import os_cause

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
    GZIP_MEMBER = "gzip-member"  # the content of a gzip-compressed DICOM file; classified once extracted
    LINK = "link"  # a symlink inside a tree, not followed (no --follow-symlinks, a loop, or a broken link)
    UNREADABLE = "unreadable"  # a file or folder the run may not read


@dataclass(frozen=True)
class InputFile:
    """One file found under an input root; `relative` is its path below the root, used in reports."""

    path: Path
    root: Path
    relative: str
    kind: Kind
    member: str | None = None  # for a zip member: its name in the archive at `path`
    size: int = 0  # a zip member's, or a regular file's when it was found
    found: tuple[int, int, int] | None = None  # a regular file's inode, mtime and ctime (ns) when found
    note: str = ""  # LINK, UNREADABLE: why (never a value from the file)
    through_links: bool = False  # found by following symlinks (the user's own path, or --follow-symlinks)


def discover(inputs: list[Path], follow_symlinks: bool = False, avoid: tuple[Path, ...] = ()) -> Iterator[InputFile]:
    """Every file under the inputs, in a stable order (a folder's files, then its subfolders, by name).

    What the user names is followed even if it is a symlink. Inside a tree a symlink is followed only with
    `follow_symlinks`, and never into a folder that contains it or the input (a loop); what `avoid` names (the
    run's own output, work and quarantine folders, its report, journal and mapping, its key and lookup file) is not
    read, a file of them under another name (a hard link) too, nor with `follow_symlinks` wherever a link leads to
    it; any other is a LINK entry. A folder that cannot be listed
    is an UNREADABLE entry; nothing is left out silently.
    """
    avoided = frozenset(filter(None, (_target_id(path) for path in avoid)))
    for root in inputs:
        # (DICOM first, as in a folder: a preamble may begin as a zip does; found from outside: such a file named
        # on the command line failed as a broken zip)
        if root.is_file() and archive_kind(root) == "zip" and not _holds_dicom(root):
            yield from _members(root, root, "", through_links=True)
        elif root.is_dir():
            yield from _walk(root, follow_symlinks, avoided)
        else:  # a file, or a FIFO or device given by name
            item = _classify(root, root.parent, root.name, follow=True)
            if item.kind is Kind.NOT_DICOM and archive_kind(root, not_dicom=True) == "zip":
                yield from _members(root, root, "", through_links=True)  # (named as any archive given is)
            else:
                yield from _opened(item)


def why_missing(given: Path) -> str:
    """Why an input named on the command line cannot be read: a loop of symlinks (found from outside: said "not
    found"), a symlink to nothing, or nothing there."""
    try:
        os.stat(given)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "input is a loop of symlinks"
    return "input is a symlink to nothing" if given.is_symlink() else "input not found"


def _walk(root: Path, follow_symlinks: bool, avoided: frozenset[tuple[int, int]]) -> Iterator[InputFile]:
    # Folders still to list, with their relative path and the (device, inode) of the folders above them, the
    # input's own included (found from outside: a link to the input's parent was followed, and the output there,
    # with the run's report and journal, read as input)
    enclosing = frozenset(filter(None, (_target_id(folder) for folder in root.resolve().parents)))
    pending: list[tuple[Path, str, frozenset[tuple[int, int]]]] = [(root, "", enclosing)]
    while pending:
        folder, relative, above = pending.pop()
        try:
            info = folder.stat()
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            # (the input itself is named "." below itself: found from outside, a line said ".: folder unreadable")
            what = "folder" if relative else "the input folder itself"
            yield InputFile(folder, root, relative or ".", Kind.UNREADABLE, note=f"{what} unreadable: {os_cause(exc)}")
            continue
        here = above | {(info.st_dev, info.st_ino)}
        folders: list[tuple[Path, str, frozenset[tuple[int, int]]]] = []
        for entry in entries:
            path, name = Path(entry.path), f"{relative}/{entry.name}" if relative else entry.name
            link = entry.is_symlink()
            try:
                is_dir = entry.is_dir(follow_symlinks=follow_symlinks)
            except OSError:
                is_dir = False
            # (a followed link may lead to a folder holding the run's own: every entry is compared then)
            target = _target_id(path) if follow_symlinks and (link or avoided) else None
            if is_dir and link and target in here:
                yield InputFile(path, root, name, Kind.LINK, note="symlink to a folder above it (a loop): not followed")
            elif target is not None and target in avoided:
                yield InputFile(path, root, name, Kind.LINK, note=_OWN)
            elif is_dir:
                folders.append((path, name, here))
            elif link and not follow_symlinks:
                yield InputFile(path, root, name, Kind.LINK,
                                note=f"symlink in an input folder to {_target(path)}: not followed (use "
                                     "--follow-symlinks)")
            else:
                yield from _opened(_classify(path, root, name, follow=follow_symlinks, avoided=avoided))
        pending.extend(reversed(folders))


_OWN = ("this run's own output, work or quarantine folder, report, journal or mapping, or its key or lookup file: "
        "not read")


def _opened(item: InputFile) -> Iterator[InputFile]:
    """A file found in a folder; a zip archive or a gzip-compressed DICOM file is opened as an input archive
    is, its members named below the archive's path (`a/b.zip/member`, `a/c.dcm.gz/c.dcm`)."""
    kind = archive_kind(item.path, not_dicom=True) if item.kind is Kind.NOT_DICOM else None
    if kind == "zip":
        yield from _members(item.path, item.root, item.relative + "/", item.through_links)
    elif kind == "gzip":
        head, damage = _gzip_head(item.path)
        if looks_like_dicom(head[:140]) or looks_like_dicom(head):
            name = PurePosixPath(item.relative).name
            inner = name[: -len(".gz")] if name.lower().endswith(".gz") and len(name) > 3 else name
            yield replace(item, relative=f"{item.relative}/{inner}", kind=Kind.GZIP_MEMBER, member=inner,
                          size=os.stat(item.path).st_size)
        elif damage:  # (found from outside: a damaged .dcm.gz was "not DICOM", copied out as it was below full)
            yield replace(item, kind=Kind.UNREADABLE, note=f"gzip data unreadable ({damage}) before what it holds "
                          "could be told: not read")
        elif (packed := _compressed_kind(head)) is not None:  # (a .tar.gz, a .dcm.gz.gz: found from outside)
            yield replace(item, kind=Kind.UNREADABLE, note=unopened(f"{_DESCRIBED[packed]}, compressed with gzip"))
        else:
            yield item
    elif kind is not None:
        yield replace(item, kind=Kind.UNREADABLE, note=unopened(_DESCRIBED[kind]))
    else:
        yield item


def unopened(what: str) -> str:
    """The reason an archive this tool does not open (`what` it is, in words) is not read."""
    return f"{what}, which this tool does not open: not read (it may hold DICOM files); extract it and run again"


# Archives and compressed files this tool does not open, by their first bytes: the DICOM files in one would be
# copied out as they are below full, and be left out at full without a word (found from outside: a tar archive of
# DICOM files was copied unchanged at anonymize, and verify found it clean).
_UNOPENED_MAGIC = ((b"\xfd7zXZ\x00", "xz"), (b"7z\xbc\xaf\x27\x1c", "7z"), (b"Rar!\x1a\x07", "rar"),
                   (b"\x28\xb5\x2f\xfd", "zstd"), (b"\x04\x22\x4d\x18", "lz4"), (b"\x02\x21\x4c\x18", "lz4"),
                   (b"!<arch>\n", "ar"))
# cpio's portable headers: magic, then the header's fields in hex (newc, crc) or octal (odc)
_CPIO = re.compile(rb"070701[0-9a-fA-F]{104}|070702[0-9a-fA-F]{104}|070707[0-7]{70}")
# a disc image's volume descriptors (ISO 9660, UDF), in its 16th and later sectors of 2 KiB (a patient's CD)
_DISC_DESCRIPTORS = (0x8001, 0x8801, 0x9001)

_DESCRIBED = {"tar": "a tar archive", "cpio": "a cpio archive", "ar": "an ar archive", "7z": "a 7z archive",
              "rar": "a RAR archive", "zip": "a zip archive", "disc": "a disc image (ISO 9660 or UDF)",
              "bzip2": "a file compressed with bzip2", "xz": "a file compressed with xz",
              "lzma": "a file compressed with LZMA", "zstd": "a file compressed with zstd",
              "lz4": "a file compressed with lz4", "gzip": "a file compressed with gzip",
              "compress": "a file compressed with compress (.Z)"}


def unopened_archive(head: bytes) -> str | None:
    """The kind of archive or compressed file `head` (a file's first 512 bytes or more) begins, if it is one this
    tool does not open; else None."""
    if _tar_header(head):
        return "tar"
    if head[:3] == b"BZh" and head[3:4] in b"123456789" and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
        return "bzip2"  # (a block's magic, or the end of an empty stream's)
    if _lzma_alone(head):
        return "lzma"
    if _CPIO.match(head):
        return "cpio"
    if head[:2] == b"\x1f\x9d" and len(head) > 2 and 9 <= head[2] & 0x1F <= 16 and not head[2] & 0x60:
        return "compress"  # (LZW: its flags, the most bits a code takes)
    return next((kind for magic, kind in _UNOPENED_MAGIC if head.startswith(magic)), None)


def _disc_image(f: BinaryIO) -> bool:
    """Whether the file `f` is a disc image: a volume descriptor where ISO 9660 and UDF write theirs."""
    for at in _DISC_DESCRIPTORS:
        f.seek(at)
        if f.read(5) in (b"CD001", b"BEA01", b"NSR02", b"NSR03"):
            return True
    return False


def _lzma_alone(head: bytes) -> bool:
    """Whether `head` begins a .lzma file (LZMA-alone, as xz writes it): the usual properties, a dictionary size of
    4 KiB or more, 2**n or 3 * 2**n bytes, and a length unknown or below 256 GiB."""
    if len(head) < 13 or head[0] != 0x5D:
        return False
    dictionary, length = int.from_bytes(head[1:5], "little"), int.from_bytes(head[5:13], "little")
    return dictionary >= 4096 and dictionary // (dictionary & -dictionary) in (1, 3) and (
        length == (1 << 64) - 1 or length < 1 << 38)


def _compressed_kind(head: bytes) -> str | None:
    """What the data a gzip file inflates to (`head`) is, if it is a file this tool would not open there: an
    archive, or compressed again."""
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    return "zip" if head[:4] == b"PK\x03\x04" else unopened_archive(head)


def _tar_header(head: bytes) -> bool:
    """Whether `head` begins with a tar header (any format, v7 too, which has no magic: found from outside): a
    name, and a checksum that is the sum of the header's bytes, its own eight counted as spaces."""
    if len(head) < 512 or not head[0] or not (written := head[148:156].strip(b" \0")).isdigit():
        return False
    try:
        checksum = int(written, 8)
    except ValueError:
        return False
    unsigned = sum(head[:148]) + 8 * 0x20 + sum(head[156:512])
    signed = unsigned - 2 * sum(b for b in head[:512] if b > 127) + 2 * sum(b for b in head[148:156] if b > 127)
    return checksum in (unsigned, signed)


def archive_kind(path: Path, not_dicom: bool = False) -> str | None:
    """"zip" or "gzip" for a file that is one (by its content), the kind of another archive (`unopened_archive`),
    else None. A file known `not_dicom` is also a zip archive when its end says so: one with bytes before its first
    member (self-extracting, prefixed; found from outside: at anonymize its DICOM member was copied out as it was).
    Read there only: a DICOM file's end is not."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
            if head[:2] == b"\x1f\x8b":
                return "gzip"
            if head[:4] == b"PK\x03\x04" or not_dicom and zipfile.is_zipfile(f) and _holds_members(f):
                return "zip"  # opened as one; if it cannot be, the record says so
            return unopened_archive(head) or ("disc" if not_dicom and _disc_image(f) else None)
    except OSError:
        return None


def container_fields(path: Path, kind: str) -> tuple[list[bytes], list[bytes]]:
    """An archive's own fields, around what its members hold (their data is read as the members), and the bytes no
    record of it accounts for: for a zip archive its members' names, extra fields and comments (local and central)
    and its comment, and the bytes before its first member, between members and after its end; for a gzip file its
    header's extra field, file name and comment. ([], []) if it cannot be read."""
    try:
        with open(path, "rb") as f:
            if kind == "gzip":
                return _gzip_fields(f.read(1 << 20)), []
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - (1 << 16) - 22))
            tail = f.read()
            end_record = tail.rfind(b"PK\x05\x06")  # (its comment's length at 20: where the archive ends)
            ends = size - len(tail) + end_record + 22 + int.from_bytes(tail[end_record + 20:end_record + 22], "little")
            with zipfile.ZipFile(f) as zf:
                fields = [zf.comment]
                covered = [(zf.start_dir, ends)]  # (the central directory, the end records)
                for info in zf.infolist():
                    fields += [info.filename.encode("utf-8", "surrogateescape"), info.extra, info.comment]
                    f.seek(info.header_offset)
                    local = f.read(30)
                    if len(local) < 30 or local[:4] != b"PK\x03\x04":
                        continue
                    named, extra = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
                    fields += [f.read(named), f.read(extra)]
                    end = info.header_offset + 30 + named + extra + info.compress_size
                    covered.append((info.header_offset, end + (16 if info.flag_bits & 8 else 0)))
            gaps, at = [], 0
            for start, end in [*sorted(covered), (size, size)]:
                if start > at:
                    f.seek(at)
                    gaps.append(f.read(min(start - at, 1 << 24)))
                at = max(at, end)
            return [field for field in fields if field], gaps
    except (OSError, zipfile.BadZipFile, ValueError):
        return [], []


def _gzip_fields(data: bytes) -> list[bytes]:
    """A gzip file's header fields (RFC 1952): its extra field, file name and comment."""
    if len(data) < 10:
        return [data]
    flags, at, fields = data[3], 10, []
    if flags & 4:  # FEXTRA
        length = int.from_bytes(data[at:at + 2], "little")
        fields.append(data[at + 2:at + 2 + length])
        at += 2 + length
    for flag in (8, 16):  # FNAME, FCOMMENT: zero-terminated
        if flags & flag:
            end = data.find(b"\0", at)
            end = len(data) if end < 0 else end
            fields.append(data[at:end])
            at = end + 1
    return fields


def _holds_members(f: BinaryIO) -> bool:
    """Whether a file whose end reads as a zip archive's lists a member, or cannot be opened as one (its record says
    so). One that lists none is no archive to open (found from outside: an empty archive, and a file whose last
    bytes read as one, were then neither copied nor reported)."""
    try:
        with zipfile.ZipFile(f) as zf:
            return bool(zf.infolist())
    except (zipfile.BadZipFile, EOFError, ValueError):
        return True


def _holds_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return looks_like_dicom(f.read(HEAD), os.fstat(f.fileno()).st_size)
    except OSError:
        return False  # (its read says why, as that of any file)


def _gzip_head(path: Path) -> tuple[bytes, str]:
    """The first HEAD bytes a gzip file inflates to, its members in turn as gzip reads them (files joined, zeros
    padding their ends), and why no more could be read ("" if nothing was wrong). Inflated a little at a time:
    damage further on is found when the member is unpacked, and fails it."""
    head, pending = b"", b""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        with open(path, "rb") as f:
            while len(head) < HEAD:
                if not pending:
                    pending = f.read(512)
                    if not pending:
                        return head, "" if inflater.eof else archive_cause(EOFError())
                if inflater.eof:  # a member ended: another may follow, after zeros that may pad it
                    pending = pending.lstrip(b"\0")
                    if not pending:
                        continue
                    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                head += inflater.decompress(pending, HEAD - len(head))
                pending = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
    except zlib.error as exc:
        return head, archive_cause(exc)
    except OSError:
        return b"", ""  # (its read says why, as that of any file)
    return head, ""


def _target(link: Path) -> str:
    """What a symlink points at, in words (a loop or a target that cannot be reached is said so)."""
    try:
        info = link.stat()
    except FileNotFoundError:
        return "nothing (broken)"
    except OSError as exc:
        return f"a target that cannot be reached ({os_cause(exc)})"
    if stat.S_ISDIR(info.st_mode):
        return "a folder"
    # (found from outside: a link to /dev/zero was "a file")
    return "a file" if stat.S_ISREG(info.st_mode) else "a FIFO, device or socket"


def _target_id(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino



def _members(archive: Path, root: Path, prefix: str, through_links: bool) -> Iterator[InputFile]:
    """Every file in a zip archive, named by `prefix` and its path in the archive (checked when prepared)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = sorted(zf.infolist(), key=lambda i: i.filename)
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        name = prefix.rstrip("/") or archive.name
        yield InputFile(archive, root, name, Kind.UNREADABLE,
                        note=f"zip archive could not be opened ({archive_cause(exc)}): its files were not read")
        return
    if all(info.is_dir() for info in infos):  # (an archive of no file, or of folders alone, is said, not left out)
        yield InputFile(archive, root, prefix.rstrip("/") or archive.name, Kind.UNREADABLE,
                        note="zip archive holds no file: nothing was read")
        return
    named = Counter(info.filename for info in infos)
    for info in infos:
        if info.is_dir():
            continue
        why = _unreadable_member(info, named[info.filename])
        if why:
            yield InputFile(archive, root, prefix + info.filename, Kind.UNREADABLE, note=why)
        else:
            yield InputFile(archive, root, prefix + info.filename, Kind.ZIP_MEMBER, info.filename, info.file_size,
                            through_links=through_links)


def archive_cause(exc: BaseException) -> str:
    """Why an archive or one of its members could not be read, in words, without what the library's message may
    quote (a member's name, the bytes found). Found from outside: the causes were class names ("EOFError")."""
    if isinstance(exc, UnicodeDecodeError):  # (zipfile reads every name before any member)
        return "a member's name is flagged UTF-8 but is not"
    if isinstance(exc, EOFError):
        return "cut short"
    if isinstance(exc, KeyError):  # (zipfile's word for a member it does not hold)
        return "no longer in the archive: it changed since it was found"
    if isinstance(exc, zlib.error):
        return "its compressed data are corrupt"
    if isinstance(exc, gzip.BadGzipFile):  # (an OSError without an OS's reason)
        return "corrupt: a checksum does not match" if "CRC" in str(exc) else "not valid gzip data"
    if isinstance(exc, zipfile.BadZipFile):
        return "corrupt: a checksum does not match" if "CRC" in str(exc) else "not a valid zip archive"
    if isinstance(exc, OSError) and exc.strerror:
        return os_cause(exc)
    return "not a valid archive"


_READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


def _unreadable_member(info: zipfile.ZipInfo, named: int) -> str:
    """Why a zip member cannot be read, or "" (each reason says so in the member's record)."""
    if info.flag_bits & 0x1:
        return "encrypted zip member: not read"
    if info.compress_type not in _READABLE_METHODS:
        return f"zip member compressed by a method that cannot be read (method {info.compress_type}): not read"
    if named > 1:
        return f"the archive holds {named} members of this name: not read (which one is meant is ambiguous)"
    return ""


def safe_member_name(name: str) -> bool:
    """A member name that stays inside an output folder when mirrored (no absolute path, no '..')."""
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts and "\\" not in name


@contextmanager
def extracted(item: InputFile, folder: Path) -> Iterator[InputFile]:
    """An archive member streamed into a private file in `folder`, classified by content like any other file.
    Where the system allows it (Linux: O_TMPFILE, /proc/self/fd) the copy has no name and is read through its
    descriptor: it is gone when the context ends or the process does, even killed (found from outside: a killed
    run left original members in its work folder until the next run). Elsewhere it is named, and removed with
    `folder`."""
    fd = _unnamed(folder)
    if fd is None:
        target = folder / "member"
        with open(target, "wb") as out:
            _unpack(item, out)
        yield _classify(target, folder, item.relative)
        return
    try:
        with open(fd, "wb", closefd=False) as out:
            _unpack(item, out)
        yield _classify(Path(f"/proc/self/fd/{fd}"), folder, item.relative, follow=True)
    finally:
        os.close(fd)


def _unnamed(folder: Path) -> int | None:
    """A new private file in `folder` with no name, open for reading and writing; None where there is none
    (another system, or a file system without O_TMPFILE: NFS)."""
    if not _PROC_FDS or not hasattr(os, "O_TMPFILE"):
        return None
    try:
        return os.open(folder, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            return None
        raise


def _unpack(item: InputFile, out: BinaryIO) -> None:
    assert item.member is not None
    if item.kind is Kind.GZIP_MEMBER:
        with gzip.open(item.path, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
    else:
        with zipfile.ZipFile(item.path) as zf, zf.open(item.member) as src:
            shutil.copyfileobj(src, out, 1 << 20)


def _classify(path: Path, root: Path, relative: str, follow: bool = False,
              avoided: frozenset[tuple[int, int]] = frozenset()) -> InputFile:
    """What the file at `path` is, by its content; a symlink is read through only when `follow`. A file `avoided`
    names (by device and inode: another hard link to the key is the key; found from outside) is not read."""
    try:
        info = path.stat() if follow else path.lstat()
    except FileNotFoundError:
        if os.path.islink(path):
            return InputFile(path, root, relative, Kind.LINK, note="broken symlink: its target does not exist")
        # (not a symlink: the file itself is gone, removed or moved while the run went on)
        return InputFile(path, root, relative, Kind.UNREADABLE, note="not found: removed or moved during the run")
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            # a link that leads to no file (a loop of links, a path through a file), as a broken one: skipped
            # (found from outside: with --follow-symlinks a failed input, exit 1)
            return InputFile(path, root, relative, Kind.LINK, note=f"symlink to {_target(path)}: not followed")
        return InputFile(path, root, relative, Kind.UNREADABLE, note=f"unreadable: {os_cause(exc)}")
    if stat.S_ISLNK(info.st_mode):
        return InputFile(path, root, relative, Kind.LINK, note="symlink inside a tree: not followed")
    if not stat.S_ISREG(info.st_mode):
        return InputFile(path, root, relative, Kind.SPECIAL)
    if (info.st_dev, info.st_ino) in avoided:
        return InputFile(path, root, relative, Kind.LINK, note=_OWN)
    if info.st_size == 0:
        return InputFile(path, root, relative, Kind.EMPTY, through_links=follow, found=_found(info))
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            head = os.read(fd, HEAD)  # (no file object: one per file of a large tree adds up)
        finally:
            os.close(fd)
    except OSError as exc:
        return InputFile(path, root, relative, Kind.UNREADABLE, note=f"unreadable: {os_cause(exc)}")
    return InputFile(path, root, relative, _kind(head, info.st_size), size=info.st_size, through_links=follow,
                     found=_found(info))


def open_as_found(item: InputFile) -> tuple[int | None, str]:
    """The regular file `item` found, opened to be read as found (`held_open`): (its descriptor, ""), or (None, why
    it can no longer be read as found): it became a symlink (not followed when it was found as a file) or a FIFO,
    device, socket or folder (opened without waiting for a writer, never read); (None, "") if it is gone or cannot
    be opened (the read that follows says so). Files are found long before they are read: a tree may change
    during a run."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if item.through_links else os.O_NOFOLLOW)
    try:
        fd = os.open(item.path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not item.through_links:
            return None, "became a symlink after it was found: not followed"
        return None, ""
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return fd, ""
    os.close(fd)
    return None, "no longer a regular file (a FIFO, device, socket or folder) after it was found: not read"


def held_open(item: InputFile, fd: int) -> InputFile:
    """`item` named by its open descriptor `fd` (Linux: opening that path opens the file `fd` has open), so that
    every read of it reads the file found, whatever its path has become since."""
    return replace(item, path=Path(f"/proc/self/fd/{fd}")) if _PROC_FDS else item


_PROC_FDS = Path("/proc/self/fd").is_dir()


def stamp(info: os.stat_result) -> tuple[int, int]:
    """Size and modification time: a write changes them; a rename over the file (which leaves the one held open
    whole) does not, though it changes the file's ctime."""
    return info.st_size, info.st_mtime_ns


def unchanged_since_found(item: InputFile, fd: int, info: os.stat_result) -> bool:
    """Whether the regular file `item` found, open as `fd` (`info`: its status now), is what it was found to be: a
    file found empty or not DICOM, then written (a receiver or `cp` filling it), would be copied unchanged as what
    it no longer is (found from outside: a DICOM file was so released at anonymize). A write changes its size or
    modification time. Its change time or inode change with a file of the same size and time put in its place, as
    `cp -p` does (found from outside), but also with a chmod, a hard link, an access or a backup's snapshot (found
    from outside: most files of a run failed as changed). A DICOM file is then read as DICOM if its head still
    tells it so: it is anonymized, whichever it is; so is what a file still gzip holds, told once extracted as when
    found (found from outside: every .dcm.gz failed after a chmod). Another is copied unchanged below full, so it
    is not released: an archive holding DICOM files put in its place is no DICOM file either (found from outside:
    released)."""
    if item.found is None:
        return True
    if (info.st_size, info.st_mtime_ns) != (item.size, item.found[1]):
        return False
    if (info.st_ino, info.st_ctime_ns) == (item.found[0], item.found[2]):
        return True
    if item.kind is Kind.GZIP_MEMBER:
        return archive_kind(held_open(item, fd).path) == "gzip"
    return item.kind is Kind.DICOM and _kind(os.pread(fd, HEAD, 0), info.st_size) is Kind.DICOM


def _kind(head: bytes, size: int) -> Kind:
    """A regular file's kind, told by its first bytes and size."""
    return Kind.EMPTY if not size else Kind.DICOM if looks_like_dicom(head, size) else Kind.NOT_DICOM


def _found(info: os.stat_result) -> tuple[int, int, int]:
    return info.st_ino, info.st_mtime_ns, info.st_ctime_ns


HEAD = 4096  # the bytes read to tell a DICOM file by its content


def looks_like_dicom(head: bytes, size: int | None = None) -> bool:
    """A Part-10 file ('DICM' after the preamble), or a bare dataset (of `size` bytes, when known): one starting
    with a file meta or identifying element (0002 or 0008), or with elements of any group that read as a dataset,
    in any encoding (found from outside: a dataset starting with the patient's group, a saved command set or an
    ACR-NEMA big endian one was copied unchanged below full, the patient's name in it)."""
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
    return any(reads_as_elements(head, size, endian, explicit) for endian in "<>" for explicit in (True, False))


# Explicit VRs whose length takes four bytes, after two reserved ones (PS3.5 7.1.2)
LONG_LENGTH_VRS = frozenset({b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"SQ", b"UT", b"UC", b"UR", b"SV", b"UV"})


def reads_as_elements(head: bytes, size: int | None, endian: str, explicit: bool) -> bool:
    """Whether `head` begins with three elements in this encoding (fewer, when they end the file; one alone, a
    standard attribute), the first of a standard group or a private creator, their tags ascending, their lengths
    even and within the file: a bare dataset. (A random or other binary file hardly does: each length alone falls
    within a file of 100 KB one time in 40,000.)"""
    end = len(head) if size is None else size
    pos, previous, count = 0, -1, 0
    while count < 3 and pos + 8 <= len(head):
        group, element = struct.unpack(f"{endian}HH", head[pos:pos + 4])
        tag = group << 16 | element
        if tag <= previous or group in (0xFFFE, 0xFFFF):
            return False
        header, length = _length(head, pos, endian, explicit)
        if length == 0xFFFFFFFF:  # (an undefined length: a sequence, read no further here)
            return count >= 2
        if length < 0 or length % 2 or pos + header + length > end:
            return False
        if not count and not _a_first_element(group, element, head[pos + header:pos + header + length]):
            return False
        pos, previous, count = pos + header + length, tag, count + 1
    alone = count == 1 and pos == end and pos > 8 and dictionary_has_tag(previous)  # (a value, not 8 zero bytes)
    return count >= 3 or (count == 2 and pos == end) or alone


def _a_first_element(group: int, element: int, value: bytes) -> bool:
    """Whether a bare dataset may start so: with a standard group (even: a compiled Python file's magic is odd), or
    with a private block's creator, a name in text (found from outside: a dataset starting with group 0009)."""
    if group > 0x7FE0:
        return False
    if not group % 2:
        return True
    return group > 0x0008 and 0x10 <= element <= 0xFF and bool(value.rstrip(b" \x00")) and \
        all(0x20 <= b < 0x7F for b in value.rstrip(b" \x00"))


def _length(head: bytes, pos: int, endian: str, explicit: bool) -> tuple[int, int]:
    """The header's size and the value length of the element at `pos`; a length of -1 where it is none."""
    if not explicit:
        return 8, struct.unpack(f"{endian}L", head[pos + 4:pos + 8])[0]
    vr = head[pos + 4:pos + 6]
    if vr not in _VRS:
        return 8, -1
    if vr not in LONG_LENGTH_VRS:
        return 8, struct.unpack(f"{endian}H", head[pos + 6:pos + 8])[0]
    if pos + 12 > len(head):
        return 12, -1
    return 12, struct.unpack(f"{endian}L", head[pos + 8:pos + 12])[0]
