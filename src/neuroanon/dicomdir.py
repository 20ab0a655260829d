"""A fresh DICOMDIR for an output tree, built only from the (already anonymized) output files.

PS3.10 File IDs allow at most 8 components of at most 8 characters from A-Z, 0-9 and _, which our output paths
(UIDs at full, mirrored input names at anonymize) never satisfy, so every indexed file is hard-linked (copied where
linking fails) to ``NADICOM/PTnnnnnn/STnnnnnn/SEnnnnnn/IMnnnnnn`` under the root, numbered by its own place in the
tree, and the DICOMDIR references those byte-identical twins; the outputs themselves are never moved, renamed or
written.
The records are encoded here with pydicom's writer instead of through ``pydicom.fileset.FileSet``, whose ``add()``
re-saves every dataset and is quadratic (minutes for a few thousand files) and whose ``write()`` moves or re-encodes
the files; the result loads in ``FileSet`` and dcmtk, and the same tree always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.fileset import DIRECTORY_RECORDERS, _four_level_record_type
from pydicom.filewriter import dcmwrite, write_dataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from .discover import HEAD, looks_like_dicom
from .errors import UsageError
from .read import DICOMDIR_CLASS, is_dicomdir, quiet
from .rules import DUMMY_TEXT

log = logging.getLogger(__name__)

STAGE = "NADICOM"
"""Folder under the root holding the File-ID-conformant twins; rebuilt on every write, never indexed itself."""
FILE_SET_ID = "NEUROANON"
_SQ_HEADER = 12  # explicit VR SQ: tag, VR, 2 reserved bytes, 4-byte length
_ITEM_HEADER = 8  # item tag and 4-byte length


@dataclass
class _Node:
    """One directory record and its lower-level records, in insertion order."""

    record: Dataset
    children: dict[str, _Node] = field(default_factory=dict)
    source: Path | None = None  # leaf only: the output file
    offset: int = 0


@dataclass(frozen=True)
class Index:
    """A DICOMDIR written: where, how many files it references, and each file under the root it does not
    reference with the reason (relative path, reason)."""

    path: Path
    indexed: int
    left_out: tuple[tuple[str, str], ...]


def write_dicomdir(root: Path, files: Iterable[Path] | None = None) -> Path:
    """Write root/DICOMDIR indexing the DICOM files under root (or the given ones, which must be under root); return its path."""  # noqa: E501
    return index_files(root, files).path


def index_files(root: Path, files: Iterable[Path] | None = None) -> Index:
    """Write root/DICOMDIR as `write_dicomdir` does; say which files it references and which not, and why."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"not a folder: {root}")
    target = root / "DICOMDIR"
    stage = root / STAGE
    explicit = files is not None
    paths = _given(root, files) if files is not None else _walk(root)
    left_out: list[tuple[str, str]] = []
    with quiet():  # pydicom's messages may quote element values
        datasets = _read_all(root, paths, explicit, left_out)
        tree = _tree(datasets, left_out)
        _clear_stage(stage, target)
        data = _encode(tree, _file_set_uid(datasets))
    for node in _walk_nodes(tree):
        if node.source is not None:
            _link(node.source, root.joinpath(*node.record.ReferencedFileID))
    partial = root / ".DICOMDIR.partial"
    partial.write_bytes(data)
    os.replace(partial, target)
    indexed = sum(1 for node in _walk_nodes(tree) if node.source is not None)
    return Index(target, indexed, tuple(sorted(left_out)))


def _given(root: Path, files: Iterable[Path]) -> list[Path]:
    base = root.resolve()
    paths: list[Path] = []
    for given in files:
        path = Path(given) if Path(given).is_absolute() else root / given
        resolved = path.resolve()
        if not resolved.is_relative_to(base):
            raise UsageError(f"{given} is not under the output folder {root}")
        relative = resolved.relative_to(base)
        if relative == Path("DICOMDIR") or relative.parts[:1] == (STAGE,):
            raise UsageError(f"{given} is the DICOMDIR or one of its staged files, not an output")
        paths.append(base / relative)
    return paths


def _walk(root: Path) -> list[Path]:
    """Every regular file under root except the DICOMDIR and the stage; symlinks are not followed."""
    found: list[Path] = []
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        if here == root:
            dirs[:] = [d for d in dirs if d != STAGE]
            names = [n for n in names if n not in ("DICOMDIR", ".DICOMDIR.partial")]
        found.extend(p for p in (here / n for n in names) if p.is_file() and not p.is_symlink())
    return found


def _read_all(
    root: Path, paths: list[Path], explicit: bool, left_out: list[tuple[str, str]]
) -> list[tuple[str, Path, Dataset]]:
    """(relative path, path, header) of each referenceable Part-10 instance, sorted by relative path; each other
    file goes to `left_out` with the reason."""
    base = root.resolve() if explicit else root
    found: list[tuple[str, Path, Dataset]] = []
    for path in paths:
        ds = _read(path)
        relative = path.relative_to(base).as_posix()
        if isinstance(ds, str):
            if explicit:
                raise UsageError(f"{relative} is not a Part-10 DICOM instance a DICOMDIR can reference ({ds})")
            left_out.append((relative, ds))
            continue
        found.append((relative, path, ds))
    if left_out:
        log.debug("DICOMDIR: %d files not indexed", len(left_out))
    return sorted(found, key=lambda item: item[0])


def _read(path: Path) -> Dataset | str:
    """The header of a Part-10 instance (not a DICOMDIR) with the UIDs a record needs, else why not."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD)
        if head[128:132] != b"DICM":
            return ("not DICOM" if not looks_like_dicom(head) else
                    "no Part-10 file meta (a DICOMDIR references only Part-10 files)")
        ds = dcmread(path, stop_before_pixels=True)
        if is_dicomdir(ds):
            return "a DICOMDIR itself"
        meta = ds.file_meta
        missing = [k for k, v in (("TransferSyntaxUID", meta.get("TransferSyntaxUID")),
                                  ("SOPClassUID", ds.get("SOPClassUID")),
                                  ("SOPInstanceUID", ds.get("SOPInstanceUID"))) if not v]
        if missing:
            return f"no {' or '.join(missing)}, which a DICOMDIR record needs"
        return ds
    except Exception as exc:  # an unreadable file is not indexed, and the index says so
        return f"unreadable ({type(exc).__name__})"


def _present(ds: Dataset, keyword: str) -> bool:
    return keyword in ds and ds[keyword].VM > 0


def _copy(record: Dataset, ds: Dataset, keywords: list[str], type2: list[str] | None = None) -> None:
    """Copy the Type 1 `keywords` (present ones only) and the Type 2 ones (empty when absent) from ds."""
    for keyword in keywords:
        if _present(ds, keyword):
            setattr(record, keyword, ds[keyword].value)
    for keyword in type2 or []:
        setattr(record, keyword, ds[keyword].value if keyword in ds else None)


def _invent(record: Dataset, keyword: str, value: str) -> None:
    """A neutral value for a Type 1 key the file leaves empty (as dcmmkdir --invent does)."""
    if keyword not in record:
        setattr(record, keyword, value)


def _derived_uid(*parts: str) -> str:
    """A UID derived from `parts`; a path's bytes that are not UTF-8 (held as surrogates) as they are (found from
    outside: a traceback)."""
    text = "\0".join(parts).encode("utf-8", "surrogateescape")
    return "2.25." + str(int.from_bytes(hashlib.sha256(text).digest()[:16], "big"))


def _record(kind: str, ds: Dataset, base: Dataset | None = None) -> Dataset:
    record = base if base is not None else Dataset()
    record.OffsetOfTheNextDirectoryRecord = 0
    record.RecordInUseFlag = 0xFFFF
    record.OffsetOfReferencedLowerLevelDirectoryEntity = 0
    record.DirectoryRecordType = kind
    if "SpecificCharacterSet" in ds:
        record.SpecificCharacterSet = ds.SpecificCharacterSet
    return record


def _leaf(ds: Dataset, number: int) -> Dataset:
    """pydicom's record for the object's type when the file has its keys, else an IMAGE record."""
    kind = _four_level_record_type(ds)
    if kind != "IMAGE":
        try:
            return _record(kind, ds, DIRECTORY_RECORDERS[kind](ds))
        except (ValueError, KeyError, AttributeError):
            kind = "IMAGE"
    record = _record(kind, ds)
    _copy(record, ds, ["InstanceNumber"])
    _invent(record, "InstanceNumber", str(number))
    return record


def _tree(datasets: list[tuple[str, Path, Dataset]], left_out: list[tuple[str, str]]) -> dict[str, _Node]:
    """PATIENT > STUDY > SERIES > leaf records, first appearance (sorted path order) first; one leaf per SOP UID
    (a later file with the same instance goes to `left_out`)."""
    patients: dict[str, _Node] = {}
    seen: dict[str, str] = {}
    for relative, path, ds in datasets:
        sop = str(ds.SOPInstanceUID)
        if sop in seen:  # a file-set references each SOP Instance once
            left_out.append((relative, f"the same instance as {seen[sop]}, which is indexed"))
            continue
        seen[sop] = relative
        patient_id = str(ds.PatientID) if _present(ds, "PatientID") else "UNKNOWN"
        patient = patients.get(patient_id)
        if patient is None:
            record = _record("PATIENT", ds)
            record.PatientID = patient_id
            _copy(record, ds, [], ["PatientName"])
            patient = patients[patient_id] = _Node(record)

        study_uid = str(ds.StudyInstanceUID) if _present(ds, "StudyInstanceUID") else _derived_uid("study", patient_id)
        study = patient.children.get(study_uid)
        if study is None:
            record = _record("STUDY", ds)
            _copy(record, ds, ["StudyDate", "StudyTime", "StudyID"], ["StudyDescription", "AccessionNumber"])
            record.StudyInstanceUID = study_uid
            _invent(record, "StudyDate", DUMMY_TEXT["DA"])  # (the levels' dummies: verify knows them)
            _invent(record, "StudyTime", DUMMY_TEXT["TM"])
            _invent(record, "StudyID", DUMMY_TEXT["SH"])  # (full empties it; ordinals could read as a real ID)
            study = patient.children[study_uid] = _Node(record)

        series_uid = (
            str(ds.SeriesInstanceUID) if _present(ds, "SeriesInstanceUID") else _derived_uid("series", study_uid)
        )
        series = study.children.get(series_uid)
        if series is None:
            record = _record("SERIES", ds)
            _copy(record, ds, ["Modality", "SeriesNumber"])
            record.SeriesInstanceUID = series_uid
            _invent(record, "Modality", "OT")
            _invent(record, "SeriesNumber", str(len(study.children) + 1))
            series = study.children[series_uid] = _Node(record)

        leaf = _leaf(ds, len(series.children) + 1)
        leaf.ReferencedSOPClassUIDInFile = ds.SOPClassUID
        leaf.ReferencedSOPInstanceUIDInFile = sop
        leaf.ReferencedTransferSyntaxUIDInFile = ds.file_meta.TransferSyntaxUID
        series.children[sop] = _Node(leaf, source=path)
    if any(len(n.children) > 999_999 for n in _walk_nodes(patients)) or len(patients) > 999_999:
        raise UsageError("too many records at one level for 8-character File IDs")
    _number(patients)
    return patients


def _number(patients: dict[str, _Node]) -> None:
    """Give each leaf the File ID of its own place in the tree, so no two leaves share a twin path."""
    for p, patient in enumerate(patients.values()):
        for s, study in enumerate(patient.children.values()):
            for e, series in enumerate(study.children.values()):
                for i, leaf in enumerate(series.children.values()):
                    leaf.record.ReferencedFileID = [STAGE, f"PT{p:06d}", f"ST{s:06d}", f"SE{e:06d}", f"IM{i:06d}"]


def _walk_nodes(level: dict[str, _Node]) -> list[_Node]:
    """Every node in pre-order (each record, then its lower-level records)."""
    nodes: list[_Node] = []
    for node in level.values():
        nodes.append(node)
        nodes.extend(_walk_nodes(node.children))
    return nodes


def _file_set_uid(datasets: list[tuple[str, Path, Dataset]]) -> str:
    """Derived from the indexed relative paths and SOP Instance UIDs, so the same tree gets the same UID."""
    return _derived_uid("file-set", *(f"{relative}\t{ds.SOPInstanceUID}" for relative, _, ds in datasets))


def _clear_stage(stage: Path, target: Path) -> None:
    """Remove the previous stage, but only when the DICOMDIR beside it says neuroanon wrote it."""
    if not stage.exists():
        return
    try:
        found = dcmread(target, stop_before_pixels=True).get("FileSetID")
    except Exception:
        found = None
    ours = found == FILE_SET_ID  # (never removed unless proven ours)
    # (found from outside: a DICOMDIR cut short read as another program's)
    damaged = " (the DICOMDIR beside it cannot be read: cut short or damaged?)" if found is None and \
        target.exists() else ""
    if not ours or not stage.is_dir() or stage.is_symlink():
        raise UsageError(f"{stage} exists but no neuroanon DICOMDIR owns it{damaged}; move it away to write a "
                         "DICOMDIR")
    shutil.rmtree(stage)


def _link(source: Path, staged: Path) -> None:
    """Make staged a hard link to source, else a copy. A file already at staged may be a hard link to another
    output, so it is replaced by a rename, never written into."""
    staged.parent.mkdir(parents=True, exist_ok=True)
    temporary = staged.with_name(f".{staged.name}.{secrets.token_hex(8)}.tmp")
    try:
        try:
            os.link(source, temporary)
        except OSError:  # no hard links here (EXDEV, EPERM, ...): copy; mode "x" refuses an existing file
            with open(source, "rb") as src, open(temporary, "xb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(temporary, staged)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _encode(tree: dict[str, _Node], uid: str) -> bytes:
    """The DICOMDIR file: records in pre-order, each pointing at its next sibling and first lower-level record."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(DICOMDIR_CLASS)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.FileSetID = FILE_SET_ID
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0

    # Offsets are 4-byte values, so filling them in changes no length: lay the records out, then fill them in.
    offset = len(_file_bytes(ds)) + _SQ_HEADER
    nodes = _walk_nodes(tree)
    for node in nodes:
        node.offset = offset
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, False
        write_dataset(fp, node.record)
        offset += _ITEM_HEADER + len(fp.getvalue())
    _link_offsets(tree)
    if tree:
        first, last = list(tree.values())[0], list(tree.values())[-1]
        ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = first.offset
        ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = last.offset
    ds.DirectoryRecordSequence = [node.record for node in nodes]
    data = _file_bytes(ds)
    if len(data) != offset:
        raise RuntimeError("DICOMDIR layout mismatch")  # a pydicom encoding change; never ship wrong offsets
    return data


def _link_offsets(level: dict[str, _Node]) -> None:
    siblings = list(level.values())
    for i, node in enumerate(siblings):
        node.record.OffsetOfTheNextDirectoryRecord = siblings[i + 1].offset if i + 1 < len(siblings) else 0
        children = list(node.children.values())
        node.record.OffsetOfReferencedLowerLevelDirectoryEntity = children[0].offset if children else 0
        _link_offsets(node.children)


def _file_bytes(ds: Dataset) -> bytes:
    fp = DicomBytesIO()
    dcmwrite(fp, ds, enforce_file_format=True)
    return bytes(fp.getvalue())
