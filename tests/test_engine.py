"""The engine takes every well-formed file, and a malformed one after salvage, and its outputs keep their promise.

tests/test_golden.py holds the engine's bytes to the release's on the whole test corpus; here each file is run
through the pipeline and its outputs are checked on their own: the report says the engine wrote it, the output
reads back with its pixel data as it was, `verify` finds nothing identifying, and the engine gives the same
bytes from a file and from memory. The tests also count what the engine takes: every file but a DICOMDIR, what
is not DICOM or cannot be read, and a form it names as the reason the file failed.
"""

from __future__ import annotations

import ast
import io
import struct
import subprocess
import tempfile
from dataclasses import replace
from functools import cache
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.encaps import encapsulate
from pydicom.uid import UID, JPEGBaseline8Bit

from neuroanon import engine
from neuroanon.apply import apply_level
from neuroanon.errors import InputError
from neuroanon.options import Level, Options
from neuroanon.pipeline import anonymize_file
from neuroanon.read import quiet
from neuroanon.report import Record, Status
from neuroanon.sample import make_dataset, make_study
from neuroanon.verify import load_originals, verify

from . import test_fuzz as fuzz
from .adversarial import CASES, add_un, make_case
from .corpus import corpus_files, pydicom_file
from .helpers import files_under
from .tools import require_tool

KEY = b"lean-test-key-0123456789abcdef!!"
FILES = corpus_files()
OPTION_SETS = {
    "anonymize": Options(level=Level.ANONYMIZE, key=KEY),
    "full": Options(level=Level.FULL, key=KEY),
    "full-retain": Options(level=Level.FULL, key=KEY, retain_patient_characteristics=True,
                           retain_device_identity=True),
    "full-no-private-lookup": Options(level=Level.FULL, key=KEY, retain_safe_private=False,
                                      lookup={"PID-FAKE-0001": "SUBJ-01"}),
    "full-bids": Options(level=Level.FULL, key=KEY, shift_dates=True, clean_descriptors=True,
                         retain_patient_characteristics=True, cap_ages=True),
    "full-allow-burned-in": Options(level=Level.FULL, key=KEY, allow_burned_in=True),
}


def _engine(source: Path, tmp: Path, options: Options) -> bool:
    """Run the pipeline on `source` and check what it wrote; return whether the engine took the file."""
    with quiet():
        record = anonymize_file(source, tmp / "out", options)
    took = record.engine == "stream" or record.engine.startswith("stream after salvage (")
    if not took:
        assert record.engine == "" and (record.status is not Status.WRITTEN or not record.dicom), record.engine
        return False
    if record.status is Status.WRITTEN:
        _check_output(source, tmp / "out", record, options)
    return True


def _pixel_data(source: Path) -> bytes | None:
    """A file's pixel data as pydicom reads it; for a big endian file pydicom misreads (an undefined-length
    UN: it reads the UN's little endian items in big endian; a command group: it reads it as implicit VR little
    endian), the value the engine located, after its explicit VR header."""
    with quiet():
        try:
            found: bytes | None = pydicom.dcmread(source, force=True).get("PixelData")
        except OSError:
            found = None
        plan = engine.plan(source, OPTION_SETS["anonymize"]) if found is None else None
    if isinstance(plan, engine.Plan) and plan.pixel_bytes is not None:
        return bytes(plan.pixel_bytes[12:])
    return found


def _stored_bits_only(value: bytes | None, source: Path) -> bytes:
    """`source`'s 16-bit unsigned pixel data `value` with every bit outside the stored ones cleared."""
    with quiet():
        ds = pydicom.dcmread(source, force=True, stop_before_pixels=True)
    assert value is not None and int(ds.PixelRepresentation) == 0 and int(ds.BitsAllocated) == 16
    kept = ((1 << int(ds.BitsStored)) - 1) << (int(ds.HighBit) - int(ds.BitsStored) + 1)
    order = ">" if ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRBigEndian else "<"
    words = struct.unpack(f"{order}{len(value) // 2}H", value)
    return struct.pack(f"{order}{len(words)}H", *(w & kept for w in words))


def _check_output(source: Path, out: Path, record: Record, options: Options) -> None:
    """The output reads back with the source's pixel data, `verify` finds nothing, and the engine's two entry
    points give its bytes."""
    (written,) = files_under(out)
    expected = _pixel_data(source)
    if any(c.tag == "(7FE0,0010)" and c.action.startswith("unused bits cleared") for c in record.changes):
        expected = _stored_bits_only(expected, source)
    assert _pixel_data(written) == expected
    with quiet():
        # the original's values are searched for at full (at anonymize the dummy values may occur in a name)
        originals = load_originals([source], options.level, options.key) if options.level is Level.FULL else None
        (result,) = verify([written], options, originals)
    assert result.findings == [], f"{record.input}: {result.findings}"
    if record.engine == "stream":
        with quiet():
            from_file, from_memory = engine.plan(source, options), engine.plan_bytes(source.read_bytes(), options)
        assert isinstance(from_file, engine.Plan) and isinstance(from_memory, engine.Plan)
        one, two = io.BytesIO(), io.BytesIO()
        from_file.write(source, one)
        from_memory.write(Path(), two)
        assert one.getvalue() == two.getvalue() == written.read_bytes()


@pytest.mark.parametrize("name", ["anonymize", "full", "full-bids"])
def test_corpus_taken_and_clean(name: str, tmp_path: Path) -> None:
    options = OPTION_SETS[name]
    taken = without_pixels = 0
    for i, source in enumerate(FILES):
        if _engine(source, tmp_path / str(i), options):
            taken += 1
            with quiet():
                plan = engine.plan(source, options)
            without_pixels += isinstance(plan, engine.Plan) and plan.pixels is None
    # The real corpus is varied on purpose (big endian, deflated, DICOMDIRs, SRs, RT objects, damaged files);
    # every well-formed little-endian file is taken, with pixel data or without (SR, RT, PR, KO...).
    assert taken >= 230, f"the engine took only {taken} of {len(FILES)} files"
    assert without_pixels >= 55, f"the engine took only {without_pixels} files without pixel data"


@pytest.mark.parametrize("name", sorted(OPTION_SETS))
@pytest.mark.parametrize("encoding", ["explicit_le", "implicit_le", "explicit_be", "deflated"])
def test_synthetic_studies_taken_and_same(name: str, encoding: str, tmp_path: Path) -> None:
    """Files full of fake PHI: nested names, private blocks and sequences, overlays, CSA headers."""
    files = make_study(tmp_path / "in", subject=1, n_series=2, n_instances=2, encoding=encoding)
    for i, source in enumerate(files):
        assert _engine(source, tmp_path / str(i), OPTION_SETS[name]), "the common case was declined"


@pytest.mark.parametrize("name", sorted(OPTION_SETS))
@pytest.mark.parametrize("encoding", ["explicit_le", "implicit_le"])
def test_files_without_pixel_data_taken_and_same(name: str, encoding: str, tmp_path: Path) -> None:
    """An instance without pixel data (a structured report, a presentation state...) is written whole."""
    source = make_study(tmp_path / "in", subject=6, n_series=1, n_instances=1, encoding=encoding)[0]
    ds = pydicom.dcmread(source)
    del ds.PixelData
    ds.add_new(0x00400275, "SQ", [make_dataset(subject=6)[0x00100010:0x00100030]])  # a sequence to walk
    ds.save_as(source)
    with quiet():
        plan = engine.plan(source, OPTION_SETS[name])
    assert isinstance(plan, engine.Plan) and plan.pixels is None
    assert _engine(source, tmp_path / "run", OPTION_SETS[name])


@pytest.mark.parametrize("name", sorted(OPTION_SETS))
@pytest.mark.parametrize("encoding", ["explicit_le", "implicit_le", "explicit_be", "deflated"])
def test_iso_2022_character_sets_taken_and_same(name: str, encoding: str, tmp_path: Path) -> None:
    """Names in a stateful (ISO 2022) character set, at the top level and in a sequence."""
    source = make_study(tmp_path / "in", subject=9, n_series=1, n_instances=1, encoding=encoding)[0]
    ds = pydicom.dcmread(source)
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.PatientName = "Yamada^Tarou=\u5c71\u7530^\u592a\u90ce=\u3084\u307e\u3060^\u305f\u308d\u3046"
    ds.ReferringPhysicianName = "Suzuki^Hanako=\u9234\u6728^\u82b1\u5b50"
    item = pydicom.Dataset()
    item.PatientName = ds.PatientName
    ds.OtherPatientIDsSequence = [item]
    ds.save_as(source)
    with quiet():
        assert isinstance(engine.plan(source, OPTION_SETS[name]), engine.Plan)
    assert _engine(source, tmp_path / "run", OPTION_SETS[name])


@pytest.mark.parametrize("name", ["anonymize", "full"])
@pytest.mark.parametrize("meta", [True, False], ids=["meta", "no-meta"])
@pytest.mark.parametrize("encoding", ["explicit_le", "implicit_le", "explicit_be"])
def test_bare_datasets_taken_and_same(name: str, meta: bool, encoding: str, tmp_path: Path) -> None:
    """A dataset without the preamble (and maybe without file meta): its encoding guessed as pydicom guesses it."""
    source = make_study(tmp_path / "in", subject=10, n_series=1, n_instances=1, encoding=encoding)[0]
    ds = pydicom.dcmread(source)
    ds.preamble = None
    if not meta:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.save_as(source, implicit_vr=encoding == "implicit_le", little_endian=encoding != "explicit_be")
    assert source.read_bytes()[128:132] != b"DICM"
    with quiet():
        assert isinstance(engine.plan(source, OPTION_SETS[name]), engine.Plan)
    assert _engine(source, tmp_path / "run", OPTION_SETS[name])


@pytest.mark.parametrize("age", ["095Y", "045Y", "099M", "9OY", "120Y "])
@pytest.mark.parametrize("charset", ["ISO_IR 100", "ISO_IR 192"])
@pytest.mark.parametrize("encoding", ["explicit_le", "implicit_le", "explicit_be", "deflated"])
def test_dates_shifted_descriptors_cleaned_ages_capped_taken_and_same(age: str, charset: str, encoding: str,
                                                                     tmp_path: Path) -> None:
    """The bids option set: dates (one or several values, a date-time, one that is no date) shifted, descriptors
    holding the file's own values cleaned in its character set, at the top level and in an item, ages capped."""
    source = make_study(tmp_path / "in", subject=12, n_series=1, n_instances=1, encoding=encoding)[0]
    ds = pydicom.dcmread(source)
    ds.SpecificCharacterSet = charset
    ds.PatientAge = age
    ds.StudyDescription = f"caf\u00e9 {ds.PatientID} FAKE"
    ds.add_new(0x00181200, "DA", ["20240101", "2024XX01"])  # DateOfLastCalibration: several values
    item = ds.RequestAttributesSequence[0]  # walked at full
    item.StudyDate = "20240103"
    item.AcquisitionDateTime = "20240102101010.5+0100"
    item.StudyDescription = f"{ds.PatientID} \u00e0 FAKE"
    with quiet():
        ds.save_as(source)
        plan = engine.plan(source, OPTION_SETS["full-bids"])
    assert isinstance(plan, engine.Plan)
    in_item = {c.action for c in plan.changes if c.tag.startswith("(0040,0275)[0].")}
    assert {"shifted", "cleaned"} <= in_item and {"shifted", "cleaned"} <= {c.action for c in plan.changes}
    assert any(c.keyword == "PatientAge" for c in plan.changes) == (age in ("095Y", "9OY", "120Y "))
    assert _engine(source, tmp_path / "run", OPTION_SETS["full-bids"])


def _non_ascii_pseudonym(ds: pydicom.Dataset) -> Options:
    item = pydicom.Dataset()
    item.PatientName = ds.PatientName
    ds.add_new(0x00210010, "LO", "SIEMENS MR SDS 01")
    ds.add_new(0x002110FE, "SQ", [item])  # walked at full: its PatientName pseudonymized too
    return replace(OPTION_SETS["full"], lookup={str(ds.PatientID): "SUBJ-\u00e9\u00df-01"})


def _binary_dummy(ds: pydicom.Dataset) -> Options:
    ds.add_new(0x00420011, "OB", b"%PDF-FAKE\x00")  # EncapsulatedDocument: D, a binary dummy
    return OPTION_SETS["full"]


def _five_as_sequence(ds: pydicom.Dataset) -> Options:
    item = pydicom.Dataset()
    item.CodeValue = "FAKE"
    ds.add_new(0x00080090, "SQ", [item])  # ReferringPhysicianName written as a sequence
    ds.add_new(0x00081070, "SQ", [])  # OperatorsName: an empty sequence, kept
    return OPTION_SETS["anonymize"]


def _uid_not_plain(ds: pydicom.Dataset) -> Options:
    ds.add_new(0x00200052, "LO", "1.2.840.99.7")  # FrameOfReferenceUID as LO
    ds.add_new(0x00200200, "UI", "1.2.840.99 .8")  # SynchronizationFrameOfReferenceUID with a space inside
    return OPTION_SETS["full"]


def _private_sequences(ds: pydicom.Dataset) -> Options:
    item = pydicom.Dataset()
    item.PatientName = ds.PatientName
    item.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.add_new(0x00210010, "LO", "SIEMENS MR SDS 01")
    ds.add_new(0x00211005, "SQ", [item])  # a value the allow-list keeps, written as a sequence: removed
    ds.add_new(0x002110FE, "SQ", [item])  # the SDS sequence the allow-list keeps: walked
    return OPTION_SETS["full"]


_ELEMENT_KINDS = {"non-ascii-pseudonym": _non_ascii_pseudonym, "binary-dummy": _binary_dummy,
                  "five-as-sequence": _five_as_sequence, "uid-not-plain": _uid_not_plain,
                  "private-sequences": _private_sequences}


@pytest.mark.parametrize("charset", ["ISO_IR 100", "ISO_IR 192"])
@pytest.mark.parametrize("encoding", ["explicit_le", "implicit_le", "explicit_be", "deflated"])
@pytest.mark.parametrize("kind", sorted(_ELEMENT_KINDS))
def test_element_kinds_taken_and_same(kind: str, encoding: str, charset: str, tmp_path: Path) -> None:
    """Elements the engine once left to the fallback walker (gone): a non-ASCII lookup pseudonym, a binary dummy, one of
    anonymize's five written as a sequence, UIDs in another VR or with odd characters, kept private sequences."""
    source = make_study(tmp_path / "in", subject=13, n_series=1, n_instances=1, encoding=encoding)[0]
    ds = pydicom.dcmread(source)
    ds.SpecificCharacterSet = charset
    options = _ELEMENT_KINDS[kind](ds)
    with quiet():
        ds.save_as(source)
        plan = engine.plan(source, options)
    assert isinstance(plan, engine.Plan)  # (in implicit VR, the five written as sequences are read as text)
    assert _engine(source, tmp_path / "run", options)


@pytest.mark.parametrize("name", ["anonymize", "full", "full-retain", "full-bids"])
@pytest.mark.parametrize("pixels", [True, False], ids=["pixels", "no-pixels"])
@pytest.mark.parametrize("encoding", ["explicit_le", "explicit_be", "deflated"])
def test_standard_attributes_stored_as_un_taken_and_same(name: str, pixels: bool, encoding: str, tmp_path: Path,
                                                         ) -> None:
    """Standard attributes stored as UN, read by their dictionary VR as pydicom reads them: kept (and
    written with that VR where pydicom writes the dataset), changed, or removed when the value cannot be one of
    that VR; at the top level and in an item of a sequence the level walks."""
    source = make_study(tmp_path / "in", subject=14, n_series=1, n_instances=1, encoding=encoding)[0]
    ds = pydicom.dcmread(source)
    if not pixels:
        del ds.PixelData
    add_un(ds, 0x00180080, b"2000")  # RepetitionTime (DS), kept
    add_un(ds, 0x00180050, b"1.0\\2.0 ")  # SliceThickness (DS, VM 1) with two values: removed
    add_un(ds, 0x00080081, b"FAKE STREET 1 ")  # InstitutionAddress (ST): removed, or dummied
    add_un(ds, 0x00081032, b"")  # ProcedureCodeSequence stored as an empty UN
    reference = pydicom.Dataset()
    add_un(reference, 0x00081150, b"1.2.840.10008.5.1.4.1.1.4\x00")  # ReferencedSOPClassUID
    add_un(reference, 0x00081155, b"1.2.826.0.1.3680043.8.498.99\x00")  # ReferencedSOPInstanceUID
    ds.ReferencedImageSequence = [reference]
    with quiet():
        ds.save_as(source)
        assert isinstance(engine.plan(source, OPTION_SETS[name]), engine.Plan)
    assert _engine(source, tmp_path / "run", OPTION_SETS[name])


@pytest.mark.parametrize("encoding", ["explicit_le", "implicit_le"])
def test_unchanged_sequence_with_a_group_length_copied(encoding: str, tmp_path: Path) -> None:
    """A file without pixel data whose untouched sequence has an item holding a (retired) group length: the
    sequence is copied as it is, group length and all."""
    source = make_study(tmp_path / "in", subject=8, n_series=1, n_instances=1, encoding=encoding)[0]
    ds = pydicom.dcmread(source)
    del ds.PixelData
    item = pydicom.Dataset()
    item.add_new(0x00400009, "SH", "STEP-FAKE")
    item.is_undefined_length_sequence_item = True
    ds.add_new(0x00400260, "SQ", [item])  # PerformedProtocolCodeSequence: kept at both levels
    ds[0x00400260].is_undefined_length = True
    ds.save_as(source)
    data = source.read_bytes()
    at = data.index(b"\x40\x00\x09\x00")
    length = b"\x40\x00\x00\x00" + (b"\x04\x00\x00\x00" if encoding == "implicit_le" else b"UL\x04\x00")
    source.write_bytes(data[:at] + length + struct.pack("<L", 18) + data[at:])
    with quiet():
        plan = engine.plan(source, OPTION_SETS["anonymize"])
    assert isinstance(plan, engine.Plan) and plan.pixels is None
    assert _engine(source, tmp_path / "run", OPTION_SETS["anonymize"])
    at = data.index(b"\x40\x00\x60\x02")  # PerformedProtocolCodeSequence, to its sequence delimiter
    sequence = source.read_bytes()[at:]
    sequence = sequence[:sequence.index(b"\xfe\xff\xdd\xe0") + 8]
    assert sequence in files_under(tmp_path / "run")[0].read_bytes()


@pytest.mark.parametrize("encoding", ["explicit_le", "explicit_be"])
def test_mark_placed_among_elements_anonymize_copies_in_runs(encoding: str, tmp_path: Path) -> None:
    """At anonymize the elements no rule reads are copied a run at a time: the method mark it adds still goes
    where its tag belongs among them (here between clinical trial elements), a retired group length among them
    is still not written, and the others are there as they were."""
    source = make_study(tmp_path / "in", subject=9, n_series=1, n_instances=1, encoding=encoding)[0]
    ds = pydicom.dcmread(source)
    for tag in engine.MARK_TAGS:
        ds.pop(tag, None)
    trial = {0x00120010: "SPONSOR-FAKE", 0x00120020: "PROTOCOL-FAKE", 0x00120071: "SERIES-FAKE",
             0x00120072: "SERIES-DESCRIPTION-FAKE"}
    for tag, value in trial.items():
        ds.add_new(tag, "LO", value)
    ds.save_as(source)
    data = source.read_bytes()
    with quiet():
        at = next(e.start for e in engine._layout(io.BytesIO(data), len(data)).head if e.tag >> 16 == 0x0018)
    order = ">" if encoding == "explicit_be" else "<"
    length = struct.pack(order + "HH2sHL", 0x0018, 0, b"UL", 4, 0)  # a retired group length (pydicom drops one)
    source.write_bytes(data[:at] + length + data[at:])
    assert _engine(source, tmp_path / "run", OPTION_SETS["anonymize"])
    data = files_under(tmp_path / "run")[0].read_bytes()
    with quiet():
        layout = engine._layout(io.BytesIO(data), len(data))  # declines elements out of order
    tags = [e.tag for e in layout.head]
    assert 0x00120063 in tags and 0x00180000 not in tags
    assert tags.index(0x00120020) < tags.index(0x00120063) < tags.index(0x00120071)
    out = pydicom.dcmread(io.BytesIO(data))
    assert {tag: out[tag].value for tag in trial} == trial


@pytest.mark.parametrize("name", ["anonymize", "full"])
def test_header_longer_than_first_read_and_pixels_streamed(name: str, tmp_path: Path) -> None:
    """Pixel data beyond the first read is streamed from the source; elements after it are kept or removed."""
    ds = make_dataset(subject=3, rows=512, columns=512)
    ds.NumberOfFrames = 4
    ds.PixelData = bytes(range(256)) * (512 * 512 * 2 * 4 // 256)
    ds.add_new(0xFFFCFFFC, "OB", b"\x00" * 16)  # trailing padding after the pixel data
    source = tmp_path / "big.dcm"
    ds.save_as(source, enforce_file_format=True)
    assert source.stat().st_size > 2 * engine.HEAD_BYTES
    with quiet():
        plan = engine.plan(source, OPTION_SETS[name])
    assert isinstance(plan, engine.Plan) and plan.pixel_bytes is None, "the pixel data should be streamed, not held"
    assert _engine(source, tmp_path / "run", OPTION_SETS[name])


@pytest.mark.parametrize("name", ["anonymize", "full"])
@pytest.mark.parametrize("encoding", ["explicit_le", "implicit_le"])
def test_header_and_trailing_elements_of_any_length(name: str, encoding: str, tmp_path: Path) -> None:
    """A header and trailing elements each several times longer than the first read are read on, and taken."""
    source = make_study(tmp_path / "in", subject=7, n_series=1, n_instances=1, encoding=encoding)[0]
    ds = pydicom.dcmread(source)
    ds.add_new(0x00090010, "LO", "FAKE CREATOR")
    ds.add_new(0x00091000, "OB", b"\x01" * (3 * engine.HEAD_BYTES))
    ds.add_new(0x00200010, "SH", "STUDY-FAKE")
    ds.add_new(0xFFFCFFFC, "OB", b"\x00" * (3 * engine.HEAD_BYTES))  # trailing padding
    ds.save_as(source)
    with quiet():
        plan = engine.plan(source, OPTION_SETS[name])
    assert isinstance(plan, engine.Plan) and plan.pixels is not None
    assert _engine(source, tmp_path / "run", OPTION_SETS[name])


def test_encapsulated_fragments_walked_from_disk(tmp_path: Path) -> None:
    ds = make_dataset(subject=4, rows=64, columns=64)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.NumberOfFrames = 3
    ds.PixelData = encapsulate([bytes([n]) * 700_001 + b"\x00" for n in range(3)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    source = tmp_path / "jpeg.dcm"
    ds.save_as(source, enforce_file_format=True)
    assert source.stat().st_size > 2 * engine.HEAD_BYTES
    assert _engine(source, tmp_path / "run", OPTION_SETS["full"])
    out = files_under(tmp_path / "run" / "out")[0]
    assert pydicom.dcmread(out).PixelData == pydicom.dcmread(source).PixelData


@pytest.mark.parametrize("name", ["anonymize", "full"])
@pytest.mark.parametrize("fragment", [b"\x01" * 64, b"\x01" * 28 + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00" + b"\x01" * 28],
                         ids=["plain", "delimiter-inside"])
def test_encapsulated_icon_in_an_item(name: str, fragment: bytes, tmp_path: Path) -> None:
    """Encapsulated pixel data inside an item (an icon image) is taken, its fragments walked (a delimiter tag
    inside one is data, for pydicom too)."""
    ds = make_dataset(subject=11, rows=8, columns=8)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([b"\x02" * 64])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    icon = pydicom.Dataset()
    icon.Rows = icon.Columns = 8
    icon.PixelData = encapsulate([fragment])
    icon["PixelData"].VR = "OB"
    icon["PixelData"].is_undefined_length = True
    ds.IconImageSequence = [icon]
    source = tmp_path / "icon.dcm"
    ds.save_as(source, enforce_file_format=True)
    with quiet():
        assert isinstance(engine.plan(source, OPTION_SETS[name]), engine.Plan)
    assert _engine(source, tmp_path / "run", OPTION_SETS[name])


@pytest.mark.parametrize("name", ["anonymize", "full"])
def test_out_of_order_elements_salvaged(name: str, tmp_path: Path) -> None:
    """An unsorted source is declined as malformed, read by pydicom, written back in tag order, and taken."""
    source = make_study(tmp_path / "in", subject=5, n_series=1, n_instances=1)[0]
    data = bytearray(source.read_bytes())
    # Swap the tags of two adjacent one-value CS elements of the same length: (0008,0060) Modality stays
    # where it is but now carries a lower tag than the element before it.
    at = data.index(struct.pack("<HH", 0x0008, 0x0060) + b"CS")
    data[at:at + 4] = struct.pack("<HH", 0x0008, 0x0001)
    broken = tmp_path / "unsorted.dcm"
    broken.write_bytes(bytes(data))
    with quiet():
        assert engine.plan(broken, OPTION_SETS[name]) == "elements out of order"
        record = anonymize_file(broken, tmp_path / "run", OPTION_SETS[name])
    assert record.engine == "stream after salvage (elements out of order)"
    assert _engine(broken, tmp_path / "again", OPTION_SETS[name])


@pytest.mark.parametrize("name", ["anonymize", "full"])
def test_dataset_in_another_encoding_than_its_syntax_salvaged(name: str, tmp_path: Path) -> None:
    """A JPEG file whose dataset was written in implicit VR: written back in the explicit VR its transfer syntax
    names (the pixel data element too), then taken; its pixel data stays as it was."""
    ds = make_dataset(subject=12, rows=8, columns=8)
    ds.remove_private_tags()  # read as implicit VR they would be values of unknown VR: not what this test is about
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([b"\x02" * 64])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    source = tmp_path / "implicit-jpeg.dcm"
    pydicom.dcmwrite(source, ds, implicit_vr=True, little_endian=True, force_encoding=True)
    with quiet():
        assert not isinstance(engine.plan(source, OPTION_SETS[name]), engine.Plan)
        record = anonymize_file(source, tmp_path / "run", OPTION_SETS[name])
    assert record.engine.startswith("stream after salvage (")
    assert _engine(source, tmp_path / "again", OPTION_SETS[name])
    with quiet():
        assert pydicom.dcmread(files_under(tmp_path / "run")[0]).original_encoding == (False, True)


@pytest.mark.parametrize("name", ["anonymize", "full", "full-bids"])
@pytest.mark.parametrize("encoding", ["explicit_le", "implicit_le", "explicit_be", "deflated"])
@pytest.mark.parametrize("case", [c.name for c in CASES])
def test_adversarial_cases(case: str, encoding: str, name: str, tmp_path: Path) -> None:
    """UN sequences (of undefined length in big endian too), text outside the table, command-group elements,
    gated files: every case in every encoding is taken, and its output is clean."""
    source, _ = make_case(tmp_path / "in", case, encoding, "latin1")
    assert _engine(source, tmp_path / "run", OPTION_SETS[name])


@pytest.mark.parametrize("name", sorted(OPTION_SETS))
def test_apply_level_goes_through_the_engine(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The public apply_level(Dataset): written to bytes, anonymized by the engine, read back; the same dataset
    and changes as the pipeline's output for the file the dataset was read from."""
    source = make_study(tmp_path / "in", subject=13, n_series=1, n_instances=1)[0]
    taken: list[bool] = []
    plan_bytes = engine.plan_bytes
    monkeypatch.setattr(engine, "plan_bytes",
                        lambda data, options, **more: _noted(plan_bytes(data, options, **more), taken))
    with quiet():
        result, changes = apply_level(pydicom.dcmread(source), OPTION_SETS[name])
        record = anonymize_file(source, tmp_path / "out", OPTION_SETS[name])
        for written in files_under(tmp_path / "out"):  # none when the residual check held the file back
            assert result == pydicom.dcmread(written)
    assert taken == [True] and tuple(changes) == record.changes


def test_apply_level_raises_for_what_the_engine_declines() -> None:
    """A dataset the engine does not take (its transfer syntax UID names none) raises InputError with the
    engine's reason; nothing else anonymizes it."""
    ds = make_dataset(subject=14)
    ds.file_meta.TransferSyntaxUID = UID("1.2.826.0.1.3680043.10.1047.99")
    with quiet(), pytest.raises(InputError, match=r"^the engine does not take the dataset \(unknown transfer "
                                                   r"syntax\): not anonymized$"):
        apply_level(ds, OPTION_SETS["anonymize"])


def _noted(plan: engine.Plan | str, taken: list[bool]) -> engine.Plan | str:
    taken.append(isinstance(plan, engine.Plan))
    return plan


@cache
def _mutable_seeds() -> dict[str, tuple[bytes, bool]]:
    """test_fuzz's seeds (real files with and without pixel data, synthetic ones), the other encodings and
    datasets without a preamble."""
    found = dict(fuzz.seeds())
    for name, implicit in (("rtstruct.dcm", True), ("ExplVR_BigEndNoMeta.dcm", False)):
        found[name] = (pydicom_file(name).read_bytes(), implicit)
    with tempfile.TemporaryDirectory() as tmp:
        for encoding in ("explicit_be", "deflated"):
            made = make_study(Path(tmp) / encoding, n_series=1, n_instances=1, encoding=encoding)[0]
            found[f"synthetic-{encoding}"] = (made.read_bytes(), False)
    return found


@settings(max_examples=fuzz.EXAMPLES * 2, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seed=st.sampled_from(sorted(_mutable_seeds())), mutations=st.lists(fuzz.MUTATION, min_size=1, max_size=3))
def test_mutants_planned_or_declined_never_raising(seed: str, mutations: list[tuple[str, float, float, int]]) -> None:
    """Truncated and corrupted files (test_fuzz's mutations): the engine gives a plan or a reason to decline,
    never an exception, whatever shape the parser meets."""
    data, implicit = _mutable_seeds()[seed]
    for mutation in mutations:
        data = fuzz.mutate(data, implicit, mutation)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "mutant.dcm"
        source.write_bytes(data)
        for options in (OPTION_SETS["anonymize"], OPTION_SETS["full"]):
            with quiet():
                assert isinstance(engine.plan(source, options), engine.Plan | str)


def test_decline_reasons_are_fixed_words() -> None:
    """Every reason to decline is a literal in engine.py (or a constant naming one): never a value of the file."""
    tree = ast.parse((Path(engine.__file__).parent / "engine.py").read_text(encoding="utf-8"))  # also when compiled
    calls = [node for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_Decline"]
    assert len(calls) > 30
    for call in calls:
        (argument,) = call.args
        assert isinstance(argument, ast.Constant | ast.Name), f"line {call.lineno}: a reason built at run time"


# --- forms the pydicom walker once took ---------------------------------------------------------------------------


def _run(source: Path, out: Path, options: Options) -> tuple[Record, Path, pydicom.Dataset]:
    """Anonymize `source` through the pipeline; the record, the written file and the file read back. The engine
    took it as it is (no salvage), and `verify` and dcmdump pass on the output (_check_output)."""
    with quiet():
        record = anonymize_file(source, out, options)
    assert (record.engine, record.status) == ("stream", Status.WRITTEN), record.reason
    _check_output(source, out, record, options)
    (written,) = files_under(out)
    dump = subprocess.run([require_tool("dcmdump"), "-q", "+E", str(written)], capture_output=True, timeout=60)
    assert dump.returncode == 0 and not dump.stderr, "dcmdump does not read the output"
    with quiet():
        return record, written, pydicom.dcmread(written)


@pytest.mark.parametrize("name", ["anonymize", "full"])
def test_undefined_length_un_in_big_endian(name: str, tmp_path: Path) -> None:
    """An undefined-length UN in a big endian dataset holds implicit VR little endian items (PS3.5 6.2.2): read so,
    walked, and written back as a big endian sequence of undefined length with its changed items."""
    source, markers = make_case(tmp_path / "in", "un-undefined", "explicit_be", "latin1")
    record, written, ds = _run(source, tmp_path / "out", OPTION_SETS[name])
    data = written.read_bytes()
    header = struct.pack(">HH2sHL", 0x0040, 0x0340, b"SQ", 0, 0xFFFFFFFF)  # PerformedSeriesSequence
    assert header in data and data.count(b"\xff\xfe\xe0\xdd\x00\x00\x00\x00") >= 1
    item = ds[0x00400340].value[0]
    assert ds[0x00400340].VR == "SQ" and item.PatientName != markers.values["ItemPatientName"]
    changed = {c.tag for c in record.changes}
    assert {"(0040,0340)[0].(0008,0090)", "(0040,0340)[0].(0010,0010)"} <= changed
    if name == "anonymize":  # nested in an item: walked too
        assert item.PatientName == ds.PatientName and item.ProtocolName == markers.values["ProtocolName"]
        assert "(0040,0275)[0].(0040,0340)[0].(0010,0010)" in changed


@pytest.mark.parametrize("name", ["anonymize", "full"])
def test_command_group_in_big_endian(name: str, tmp_path: Path) -> None:
    """Command-group elements in a big endian dataset are read in its encoding (as dcmtk reads them; pydicom reads
    a command set as implicit VR little endian): kept byte for byte at anonymize, removed at full."""
    source, _ = make_case(tmp_path / "in", "retired-command", "explicit_be", "latin1")
    record, written, ds = _run(source, tmp_path / "out", OPTION_SETS[name])
    commands = source.read_bytes()[source.read_bytes().index(struct.pack(">HH2s", 0, 0x0902, b"LO")):]
    commands = commands[:commands.index(struct.pack(">HH", 0x0008, 0x0005))]  # to the next group
    removed = {c.tag for c in record.changes if c.action == "removed"}
    if name == "anonymize":
        assert commands in written.read_bytes() and not removed
    else:
        assert {"(0000,0902)", "(0000,1030)"} <= removed and struct.pack(">HH", 0, 0x0902) not in written.read_bytes()
        assert not [t for t in ds.keys() if t.group == 0] and ds.Modality == "MR"  # the rest reads as written


def test_command_group_kept_in_a_deflated_dataset_at_anonymize(tmp_path: Path) -> None:
    """In little endian (here deflated: written whole) anonymize keeps command-group elements byte for byte."""
    source, _ = make_case(tmp_path / "in", "retired-command", "deflated", "latin1")
    record, written, ds = _run(source, tmp_path / "out", OPTION_SETS["anonymize"])
    with quiet():
        original = pydicom.dcmread(source)
    assert ds[0x00000902] == original[0x00000902] and ds[0x00001030] == original[0x00001030]
    assert not [c for c in record.changes if c.tag.startswith("(0000,")]


@pytest.mark.parametrize("name", ["anonymize", "full"])
@pytest.mark.parametrize("pixels", [True, False], ids=["pixels", "no-pixels"])
def test_empty_private_un_kept(name: str, pixels: bool, tmp_path: Path) -> None:
    """An empty private UN of an allow-listed block, at the top level and in an item, stays an empty UN: no
    value, nothing to clean."""
    source = make_study(tmp_path / "in", subject=15, n_series=1, n_instances=1)[0]
    ds = pydicom.dcmread(source)
    if not pixels:
        del ds.PixelData
    item = pydicom.Dataset()
    item.add_new(0x00210010, "LO", "SIEMENS MR SDS 01")
    add_un(item, 0x00211005, b"")
    ds.add_new(0x00210010, "LO", "SIEMENS MR SDS 01")
    add_un(ds, 0x00211005, b"")
    ds.add_new(0x002110FE, "SQ", [item])  # the SDS sequence the allow-list keeps: walked at full
    with quiet():
        ds.save_as(source)
    _, written, out = _run(source, tmp_path / "out", OPTION_SETS[name])
    empty = struct.pack("<HH2sHL", 0x0021, 0x1005, b"UN", 0, 0)
    assert written.read_bytes().count(empty) == 2
    assert out[0x00211005].VR == "UN" and out[0x00211005].value in (b"", None)


def test_allow_listed_private_sequence_in_implicit_vr(tmp_path: Path) -> None:
    """At full, an allow-listed private sequence of unknown VR (implicit VR) is read as a sequence when its bytes
    are one, walked (its PatientName pseudonymized) and kept; a listed number whose bytes are items holding text
    (a name, "ORIGINAL\\PRIMARY") is no number, and goes."""
    source = make_study(tmp_path / "in", subject=16, n_series=1, n_instances=1, encoding="implicit_le")[0]
    ds = pydicom.dcmread(source)
    options = _private_sequences(ds)
    with quiet():
        ds.save_as(source)
    name = str(ds.PatientName).encode()
    record, written, _ = _run(source, tmp_path / "out", options)
    changes = {c.tag: c.action for c in record.changes}
    assert changes["(0021,10FE)[0].(0010,0010)"] == "pseudonymized"
    assert "(0021,10FE)" not in changes and changes["(0021,1005)"] == "removed"
    data = written.read_bytes()
    assert struct.pack("<HH", 0x0021, 0x10FE) in data and name not in data


def test_allow_listed_private_sequence_that_is_not_one_removed(tmp_path: Path) -> None:
    """An allow-listed private sequence whose bytes are no sequence (implicit VR: its VR unknown) is removed at
    full (fail closed)."""
    source = make_study(tmp_path / "in", subject=17, n_series=1, n_instances=1, encoding="implicit_le")[0]
    ds = pydicom.dcmread(source)
    ds.add_new(0x00210010, "LO", "SIEMENS MR SDS 01")
    ds.add_new(0x002110FE, "OB", b"FAKE NOT ITEMS\x00\x00")
    with quiet():
        ds.save_as(source)
    record, written, _ = _run(source, tmp_path / "out", OPTION_SETS["full"])
    assert {c.tag: c.action for c in record.changes}["(0021,10FE)"] == "removed"
    assert struct.pack("<HH", 0x0021, 0x10FE) not in written.read_bytes()


def test_a_form_the_engine_does_not_take_fails_with_its_reason(tmp_path: Path) -> None:
    """Nothing else anonymizes: a well-formed file the engine declines (its transfer syntax UID names none, so its
    dataset cannot be read as it says) fails, its reason in one line of fixed words, nothing written."""
    source = make_study(tmp_path / "in", subject=18, n_series=1, n_instances=1)[0]
    ds = pydicom.dcmread(source)
    ds.file_meta.TransferSyntaxUID = UID("1.2.826.0.1.3680043.10.1047.99")
    ds.save_as(source, implicit_vr=False, little_endian=True)
    with quiet():
        record = anonymize_file(source, tmp_path / "out", OPTION_SETS["full"])
    assert record.status is Status.FAILED and record.engine == "" and not files_under(tmp_path / "out")
    assert record.reason == "not anonymized: the engine does not take this form (unknown transfer syntax)"


def test_apply_level_on_a_bare_dataset_of_a_high_first_group() -> None:
    """A dataset in memory without file meta whose first group is 0400 or more (which read from bytes alone
    would guess big endian): the engine is told its encoding, and the result has no transfer syntax of its own."""
    ds = pydicom.Dataset()
    ds.ROIGenerationDescription = "FAKE ROI"
    with quiet():
        result, changes = apply_level(ds, OPTION_SETS["anonymize"])
    assert result.ROIGenerationDescription == "FAKE ROI" and result.DeidentificationMethod
    assert "TransferSyntaxUID" not in (result.file_meta or pydicom.dataset.FileMetaDataset())
    assert [(c.tag, c.action) for c in changes] == [("(0012,0063)", "added")]


@pytest.mark.parametrize("name", ["anonymize", "full"])
def test_apply_level_with_command_group_elements(name: str) -> None:
    """Command-group elements in a dataset in memory (which pydicom's dcmwrite refuses) are encoded for the
    engine: kept at anonymize, removed at full."""
    ds = make_dataset(subject=19)
    ds.add_new(0x00001000, "UI", "1.2.826.0.1.3680043.10.1047.5")  # AffectedSOPInstanceUID
    with quiet():
        result, changes = apply_level(ds, OPTION_SETS[name])
    if name == "anonymize":
        assert result[0x00001000].value == "1.2.826.0.1.3680043.10.1047.5" and result.SOPClassUID == ds.SOPClassUID
    else:
        assert 0x00001000 not in result and ("(0000,1000)", "removed") in {(c.tag, c.action) for c in changes}


@pytest.mark.parametrize(("tag", "value"), [
    (0x00080018, "2.25.12345"), (0x00080018, ["2.25.1", "2.25.2"]), (0x00100020, "NEW\\ID"), (0x00100020, "Ünï ")])
def test_a_new_identifier_names_the_output_path_as_pydicom_shows_its_value(tag: int, value: str | list[str]) -> None:
    """The output path is built from the new identifiers' text, which the engine gives without a dataset: it is
    what pydicom shows for the element (a value of several, from a lookup file's backslash or a malformed UID,
    as a list)."""
    from pydicom.config import IGNORE
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds[tag] = DataElement(tag, "LO" if tag == 0x00100020 else "UI", value, validation_mode=IGNORE)
    assert engine._identifier_text(tag, value) == str(ds.get(ds[tag].keyword, "") or "")


def test_a_raw_element_is_shared_between_files_only_when_it_is_the_same(tmp_path: Path) -> None:
    """The engine reuses the last file's raw element of a tag when its value, place and encoding are the same: a file
    whose value differs, lies elsewhere, has another VR or byte order, or is implicit VR, is read as its bytes say."""
    options = Options(level=Level.FULL, key=b"\x5a" * 32)
    a1, explicit = "FAKE COMMENT A1", pydicom.uid.ExplicitVRLittleEndian
    same = (a1, "LT", explicit, "")
    # each case after one whose element is the same but for what the case changes
    big, implicit = pydicom.uid.ExplicitVRBigEndian, pydicom.uid.ImplicitVRLittleEndian
    cases = (same, same, (a1, "LT", explicit, "FAKE STUDY WITH A LONGER DESCRIPTION"), same, (a1, "LO", explicit, ""),
             same, (a1, "LT", big, ""), same, (a1, "LT", implicit, ""), same, ("FAKE COMMENT B2", "LT", explicit, ""),
             same, ("FAKE COMMENT A1 LONGER", "LT", explicit, ""))  # (a longer value the last one begins)
    seen: list[tuple[bytes, str | None, bool, bool]] = []
    for number, (comment, vr, syntax, description) in enumerate(cases):
        ds = make_dataset(instance=number)
        ds.add_new(0x00204000, vr, comment)
        if description:
            ds.StudyDescription = description
        ds.file_meta.TransferSyntaxUID = syntax
        source = tmp_path / f"{number}.dcm"
        pydicom.dcmwrite(source, ds, implicit_vr=syntax.is_implicit_VR, little_endian=syntax.is_little_endian,
                         force_encoding=True)
        plan = engine.plan(source, options)
        assert isinstance(plan, engine.Plan)
        raw = plan.context.original.get_item(0x00204000)
        assert isinstance(raw, pydicom.dataelem.RawDataElement)
        at = raw.value_tell
        assert source.read_bytes()[at:at + raw.length] == raw.value  # where the file holds it
        seen.append((raw.value, raw.VR, raw.is_implicit_VR, raw.is_little_endian))
    same_seen = (b"FAKE COMMENT A1 ", "LT", False, True)
    assert seen == [same_seen, same_seen, same_seen, same_seen, (b"FAKE COMMENT A1 ", "LO", False, True), same_seen,
                    (b"FAKE COMMENT A1 ", "LT", False, False), same_seen, (b"FAKE COMMENT A1 ", None, True, True),
                    same_seen, (b"FAKE COMMENT B2 ", "LT", False, True), same_seen,
                    (b"FAKE COMMENT A1 LONGER", "LT", False, True)]
