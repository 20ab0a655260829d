"""Each level keeps exactly its promise, on synthetic studies with fake PHI planted everywhere it hides."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pydicom
import pytest

from neuroanon.discover import looks_like_dicom
from neuroanon.options import Level, Options
from neuroanon.pipeline import anonymize_tree
from neuroanon.sample import make_dataset, make_study, planted_values

from .helpers import files_under, searchable_bytes

KEY = b"level-test-key-0123456789abcdef!"
ENCODINGS = ["explicit_le", "implicit_le", "explicit_be", "deflated", "rle"]
FIVE = ("ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "PatientName", "PatientBirthDate")
# Planted values that sit inside one of the five attributes (at some depth), so `anonymize` removes them too.
IN_FIVE_TAGS = {"OriginalAttrName"}
IN_PATHS_ONLY = {"FolderName", "FileName"}


# (folder, subject, study, encoding): subject 0 has a study per encoding, subject 1 one study.
STUDIES = [(e, 0, i, e) for i, e in enumerate(ENCODINGS)] + [("other", 1, 0, "explicit_le")]


@pytest.fixture(scope="module")
def study_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("in") / "incoming"
    for folder, subject, study, encoding in STUDIES:
        make_study(root / folder, subject=subject, study=study, n_series=2, n_instances=2, encoding=encoding)
    (root / "notes.txt").write_text("scanned by FAKE technician, not DICOM")
    return root


def _planted() -> dict[str, str]:
    values: dict[str, str] = {}
    for _, subject, study, _ in STUDIES:
        for name, value in planted_values(subject, study=study).items():
            values[f"{name}[{subject}/{study}]"] = value
    return values


def _subject_study(relative: str) -> tuple[int, int]:
    folder = relative.split("/")[0]
    return next((subject, study) for f, subject, study, _ in STUDIES if f == folder)


def _run(tree: Path, out: Path, **options: object) -> list[dict[str, object]]:
    report = out.parent / f"{out.name}.jsonl"
    anonymize_tree([tree], out, Options(key=KEY, **options), report=report)  # type: ignore[arg-type]
    return [json.loads(line) for line in report.read_text().splitlines()][1:]  # after the provenance line


def test_original_copies_every_file_byte_for_byte(study_tree: Path, tmp_path: Path) -> None:
    records = _run(study_tree, tmp_path / "out", level=Level.ORIGINAL)
    inputs = files_under(study_tree)
    assert len(records) == len(inputs) + 1
    for source in inputs:
        out = tmp_path / "out" / source.relative_to(study_tree)
        assert out.read_bytes() == source.read_bytes()


def test_anonymize_removes_the_five_everywhere_and_keeps_the_rest(study_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    records = _run(study_tree, out, level=Level.ANONYMIZE)
    dicom_records = [r for r in records if r.get("dicom")]
    assert dicom_records and all(r["status"] == "written" for r in dicom_records)
    for record in dicom_records:
        path = out / str(record["input"])
        data = searchable_bytes(path)
        subject, study = _subject_study(str(record["input"]))
        planted = planted_values(subject, study=study)
        for name in FIVE:
            assert planted[name].encode() not in data, f"{name} survived in {record['input']}"
        for name in IN_FIVE_TAGS:
            assert planted[name].encode() not in data
        for name, value in planted.items():
            if name in FIVE or name in IN_FIVE_TAGS or name in IN_PATHS_ONLY:
                continue
            assert value.encode() in data, f"{name} was lost at anonymize in {record['input']}"
        ds = pydicom.dcmread(path)
        assert ds.PatientName == "Anon" and ds.PatientBirthDate == "10000101"
        assert ds.ReferringPhysicianName == "Anon" and ds.OperatorsName == "Anon"
        assert "NiDB Anonymize" in ds.DeidentificationMethod and "PatientIdentityRemoved" not in ds
        source = pydicom.dcmread(study_tree / str(record["input"]))
        assert ds.PixelData == source.PixelData
        assert ds.SOPInstanceUID == source.SOPInstanceUID and ds.StudyDate == source.StudyDate
        # the mirrored path keeps the input's names at this level
        assert planted["FolderName"] in str(record["input"])


def test_full_leaves_no_planted_value_in_any_byte_path_or_report(study_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    records = _run(study_tree, out, level=Level.FULL)
    planted = _planted()
    outputs = files_under(out)
    assert len(outputs) == sum(1 for r in records if r.get("status") == "written")
    assert len(outputs) == 2 * 2 * len(STUDIES)
    report_text = (tmp_path / "out.jsonl").read_text()
    for path in outputs:
        data = searchable_bytes(path)
        relative = str(path.relative_to(out))
        for name, value in planted.items():
            assert value.encode() not in data, f"{name} survived in an output file"
            assert value.lower() not in relative.lower(), f"{name} in an output path"
    for record in records:
        if "input" in record:
            for name, value in planted.items():
                if not name.startswith(("FolderName", "FileName", "StudyDate", "AccessionNumber")):
                    assert value not in json.dumps({k: v for k, v in record.items() if k != "input"}), name
    assert "notes.txt" not in report_text or any(
        r.get("input") == "notes.txt" and r["status"] == "skipped" for r in records
    )


def test_full_output_structure(study_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(study_tree, out, level=Level.FULL)
    for path in files_under(out):
        ds = pydicom.dcmread(path)
        subject, study, series, instance = path.relative_to(out).parts
        assert (subject, study, series, instance) == (
            ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID + ".dcm")
        assert str(ds.PatientName) == ds.PatientID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert "SourceApplicationEntityTitle" not in ds.file_meta
        assert path.read_bytes()[:128] == b"\x00" * 128
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
        codes = {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
        assert codes == {"113100", "113111"}
        assert ds.StudyDate == "10000101" and ds.PatientBirthDate == "10000101"
        assert "OriginalAttributesSequence" not in ds and (0xFFFA, 0xFFFA) not in ds and (0x6000, 0x3000) not in ds
        creators = {str(e.value) for e in ds if e.tag.is_private_creator}
        assert "ACME FAKE PHI 1.0" not in creators and "SIEMENS CSA HEADER" in creators
        assert ds.file_meta.TransferSyntaxUID == pydicom.dcmread(path).file_meta.TransferSyntaxUID


def test_full_keeps_allow_listed_private_elements_byte_for_byte(study_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(study_tree, out, level=Level.FULL)
    source = pydicom.dcmread(next((study_tree / "explicit_le").rglob("*.dcm")))
    by_sop = {pydicom.dcmread(p).SOPInstanceUID: p for p in files_under(out)}
    matches = [p for p in by_sop.values()
               if pydicom.dcmread(p).InstanceNumber == source.InstanceNumber
               and pydicom.dcmread(p).SeriesNumber == source.SeriesNumber]
    result = pydicom.dcmread(matches[0])
    for creator, group, element in (("SIEMENS CSA HEADER", 0x0029, 0x10), ("SIEMENS CSA HEADER", 0x0029, 0x20),
                                    ("SIEMENS MR HEADER", 0x0019, 0x0C), ("GEMS_PARM_01", 0x0043, 0x39)):
        assert result.private_block(group, creator)[element].value == \
            source.private_block(group, creator)[element].value
    assert result.PixelData == source.PixelData


def test_full_options_keep_what_they_name_and_are_recorded() -> None:
    from neuroanon.apply import apply_level
    from neuroanon.sample import make_dataset

    source = make_dataset(subject=5)
    planted = planted_values(5)
    source.StudyDescription = f"MRI brain of {source.PatientName.family_name} id {source.PatientID}"
    options = Options(level=Level.FULL, key=KEY, clean_descriptors=True, retain_patient_characteristics=True,
                      retain_device_identity=True)
    result, changes = apply_level(source, options)
    assert result.StudyDescription.startswith("MRI brain of ")
    assert planted["PatientID"] not in result.StudyDescription
    assert source.PatientName.family_name not in result.StudyDescription
    assert ("(0008,1030)", "cleaned") in {(c.tag, c.action) for c in changes}
    assert result.PatientWeight == source.PatientWeight and result.PatientSex == source.PatientSex
    assert result.DeviceSerialNumber == source.DeviceSerialNumber
    codes = {item.CodeValue for item in result.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113105", "113108", "113109", "113111"}
    plain, _ = apply_level(source, Options(level=Level.FULL, key=KEY, retain_safe_private=False))
    assert "PatientWeight" not in plain and "StudyDescription" not in plain
    assert not any(e.tag.is_private for e in plain)
    assert {item.CodeValue for item in plain.DeidentificationMethodCodeSequence} == {"113100"}


def test_full_removes_graphic_annotations(tmp_path: Path) -> None:
    """The Graphic Annotation Sequence (text and shapes drawn over the image) goes whole at full, as overlays and
    curves do (the design's Clean Graphics; found from outside: it was kept, its text dummied), and so do its Text
    Object and Compound Graphic Sequences standing alone (found from outside: kept); verify flags one."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from neuroanon.rules import compile_rules
    from neuroanon.verify import _full

    ds = make_dataset(subject=9)
    text, shape = Dataset(), Dataset()
    text.UnformattedTextValue, text.AnchorPointAnnotationUnits = "seen by Dr Quaxworth", "PIXEL"
    shape.GraphicAnnotationUnits, shape.GraphicDimensions, shape.NumberOfGraphicPoints = "PIXEL", 2, 2
    shape.GraphicData, shape.GraphicType = [1.0, 1.0, 5.0, 5.0], "POLYLINE"
    annotation = Dataset()
    annotation.GraphicLayer = "LAYER1"
    annotation.TextObjectSequence, annotation.GraphicObjectSequence = Sequence([text]), Sequence([shape])
    ds.GraphicAnnotationSequence = Sequence([annotation])
    loose = Dataset()  # (standing alone, outside an annotation's item: removed all the same)
    loose.UnformattedTextValue, loose.AnchorPointAnnotationUnits = "Quaxworth again", "PIXEL"
    ds.TextObjectSequence, ds.CompoundGraphicSequence = Sequence([loose]), Sequence([Dataset()])
    source = tmp_path / "in" / "a.dcm"
    source.parent.mkdir()
    ds.save_as(source, enforce_file_format=True)
    options = Options(level=Level.FULL, key=KEY)
    anonymize_tree([source.parent], tmp_path / "out", options)
    (result,) = files_under(tmp_path / "out")
    written = pydicom.dcmread(result)
    assert not {"GraphicAnnotationSequence", "TextObjectSequence", "CompoundGraphicSequence"} & set(written.dir())
    assert b"Quaxworth" not in result.read_bytes() and b"POLYLINE" not in result.read_bytes()
    assert any(f.startswith("(0070,0001)") for f in _full(ds, "", compile_rules(options)))


def test_retained_device_identity_is_released_not_held(tmp_path: Path) -> None:
    """Retain Device Identity keeps the station's name and serial number: the residual check does not hold the file
    back for them, nor does `verify` against the originals report them (found from outside: every such file was
    held). Without the option they are looked for as before."""
    from neuroanon.verify import load_originals, verify

    source = tmp_path / "in" / "a.dcm"
    source.parent.mkdir()
    ds = make_dataset(subject=8)
    ds.StationName, ds.DeviceSerialNumber = "QXSTATION7", "99887766"
    ds.save_as(source, enforce_file_format=True)
    options = Options(level=Level.FULL, key=KEY, retain_device_identity=True)
    summary = anonymize_tree([source.parent], tmp_path / "out", options)
    assert summary.counts.get("written") == 1, summary.counts
    (result,) = files_under(tmp_path / "out")
    written = pydicom.dcmread(result)
    assert (written.StationName, written.DeviceSerialNumber) == ("QXSTATION7", "99887766")
    originals = load_originals([source.parent], Level.FULL, KEY)
    assert [r.findings for r in verify([tmp_path / "out"], options, originals)] == [[]]
    plain = Options(level=Level.FULL, key=KEY)
    assert [r.findings for r in verify([tmp_path / "out"], plain, originals)] != [[]]
    anonymize_tree([source.parent], tmp_path / "plain", plain)
    assert b"QXSTATION7" not in b"".join(p.read_bytes() for p in files_under(tmp_path / "plain"))


@pytest.mark.parametrize("encoding", ["explicit_le", "implicit_le", "explicit_be"])
def test_anonymize_keeps_every_other_byte(tmp_path: Path, encoding: str) -> None:
    """Without the five, the output is the input plus the DeidentificationMethod element, byte for byte."""
    (source,) = make_study(tmp_path / "in", subject=4, n_series=1, n_instances=1, encoding=encoding)
    ds = pydicom.dcmread(source)
    for keyword in FIVE:
        for item in [ds, *(i for e in ds.iterall() if e.VR == "SQ" for i in e.value)]:
            if keyword in item:
                delattr(item, keyword)
    ds.save_as(source)
    out = tmp_path / "out"
    anonymize_tree([tmp_path / "in"], out, Options(level=Level.ANONYMIZE))
    (result,) = files_under(out)
    mark = pydicom.dcmread(result)["DeidentificationMethod"]
    encoded = pydicom.filebase.DicomBytesIO()
    encoded.is_implicit_VR, encoded.is_little_endian = encoding == "implicit_le", encoding != "explicit_be"
    pydicom.filewriter.write_data_element(encoded, mark)
    data = result.read_bytes()
    assert data.count(encoded.getvalue()) == 1
    assert data.replace(encoded.getvalue(), b"") == source.read_bytes()


def test_earlier_deidentification_method_kept_at_anonymize_replaced_at_full() -> None:
    """At anonymize an earlier method stays before ours (the record); at full it is replaced (it may name a site)."""
    from neuroanon.apply import apply_level
    from neuroanon.sample import make_dataset

    source = make_dataset(subject=6)
    source.DeidentificationMethod = "Removed by operator FAKE-OPERATOR-6 at FAKE SITE"
    anonymized, _ = apply_level(source, Options(level=Level.ANONYMIZE))
    values = list(anonymized.DeidentificationMethod)
    assert values[0] == source.DeidentificationMethod and values[1].startswith("NiDB Anonymize (")
    full, changes = apply_level(source, Options(level=Level.FULL, key=KEY))
    assert str(full.DeidentificationMethod).startswith("NiDB Anonymize Full (")
    assert full["DeidentificationMethod"].VM == 1
    again, _ = apply_level(full, Options(level=Level.FULL, key=KEY))
    assert again.DeidentificationMethod == full.DeidentificationMethod


def _element(group: int, element: int, value: bytes, endian: str = "<") -> bytes:
    """An implicit VR element (a value of odd length padded with a space)."""
    value += b" " * (len(value) % 2)
    return struct.pack(f"{endian}HHL", group, element, len(value)) + value


_BARE_NAME = b"FAKEPERSON^BARE"
_BARE_PATIENT = (_element(0x10, 0x10, _BARE_NAME) + _element(0x10, 0x20, b"FAKE77123")
                 + _element(0x10, 0x30, b"19610203") + _element(0x20, 0x0D, b"1.2.826.0.1.3680043.99.7"))
_BARE_CLASS = _element(8, 0x16, b"1.2.840.10008.5.1.4.1.1.4") + _element(8, 0x18, b"1.2.826.0.1.3680043.99.9")
_COMMAND = _element(0, 2, b"1.2.840.10008.5.1.4.1.1.4") + _element(0, 0x100, struct.pack("<H", 1))
_BARE_BIG = (_element(8, 0x16, b"1.2.840.10008.5.1.4.1.1.4", ">") + _element(8, 0x60, b"MR", ">")
             + _element(0x10, 0x10, _BARE_NAME, ">") + _element(0x10, 0x30, b"19610203", ">"))


@pytest.mark.parametrize(("case", "data", "released"), [
    ("patient-group-first", _BARE_PATIENT, True),
    ("command-set-first", _element(0, 0, struct.pack("<L", len(_COMMAND))) + _COMMAND + _BARE_CLASS + _BARE_PATIENT,
     True),
    ("private-block-first", _element(9, 0x10, b"FAKE CREATOR") + _element(9, 0x1001, b"x") + _BARE_PATIENT, True),
    ("one-element", _element(0x10, 0x10, _BARE_NAME), True),
    ("acr-nema-big-endian", _BARE_BIG, False),
    ("acr-nema-big-endian-group-length", _element(8, 0, struct.pack(">L", 8), ">") + _BARE_BIG, False),
])
@pytest.mark.parametrize("level", ["anonymize", "full"])
def test_a_bare_dataset_of_any_first_group_is_read_as_dicom_never_copied(
        tmp_path: Path, case: str, data: bytes, released: bool, level: str) -> None:
    """Found from outside: a dataset without preamble or file meta that began with another group than 0002 or 0008
    (the patient's, a saved command set, a private block, ACR-NEMA's big endian; a lone PatientName) was taken for
    no DICOM and copied unchanged below full, the patient's name in it. It is now anonymized, or, in implicit VR
    big endian (no DICOM transfer syntax), fails saying so; never copied."""
    source = tmp_path / "in" / "bare.dcm"
    source.parent.mkdir()
    source.write_bytes(data)
    report = tmp_path / "report.jsonl"
    anonymize_tree([source.parent], tmp_path / "out", Options(level=Level(level), key=KEY), report=report)
    (record,) = [r for r in map(json.loads, report.read_text().splitlines()) if "status" in r]
    assert record["dicom"] is True
    if released:
        assert record["status"] == "written", record
        assert _BARE_NAME not in (tmp_path / "out" / record["output"]).read_bytes()
    else:
        assert record["status"] == "failed"
        assert record["reason"].startswith("a dataset in implicit VR big endian (ACR-NEMA)"), record
    assert all(_BARE_NAME not in p.read_bytes() for p in files_under(tmp_path / "out"))
    assert source.read_bytes() == data


@pytest.mark.parametrize("head", [
    bytes.fromhex("a70d0d0a00000000") + struct.pack("<LL", 1_700_000_000, 120) + b"\xe3" * 200,  # a .pyc
    b"\x00" * 512,
    b"\x00" * 8,
    b"RIFF" + struct.pack("<L", 100) + b"WAVE" + b"\x00" * 96,  # (its length is the file's, less 8 bytes)
    b"ABCDEFGH" * 64,
    struct.pack("<HHL", 0x10, 0x10, 4) + b"ABCD" + struct.pack("<HHL", 0x10, 0x08, 2) + b"XY" + b"\x00" * 64,
])
def test_other_files_are_not_taken_for_a_bare_dataset(head: bytes) -> None:
    """The elements of a bare dataset must read as one: a first standard (even) group or a private creator, tags
    ascending, even lengths within the file, three of them or fewer ending the file, one alone a standard attribute
    (a compiled Python file's header, zeros, a RIFF file, text, tags going back are not)."""
    assert not looks_like_dicom(head, len(head))
