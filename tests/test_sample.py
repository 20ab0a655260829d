"""Tests for the fake-PHI sample generator ``neuroanon.sample``."""

from __future__ import annotations

import re
import warnings
import zlib
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import UID

from neuroanon.sample import PLANTED_FIVE, PLANTED_OTHER, make_dataset, make_study, planted_values

ENCODINGS: dict[str, str] = {
    "explicit_le": "1.2.840.10008.1.2.1",
    "implicit_le": "1.2.840.10008.1.2",
    "explicit_be": "1.2.840.10008.1.2.2",
    "deflated": "1.2.840.10008.1.2.1.99",
    "rle": "1.2.840.10008.1.2.5",
}
FIVE_KEYS = {
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "PatientName",
    "PatientBirthDate",
}
PATH_KEYS = {"FolderName", "FileName"}
UID_ROOT = "1.2.826.0.1.3680043.8.498."
UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
# Attributes whose top-level value is (or, for descriptions/protocols, starts with) the planted value
TOP_LEVEL_KEYS = [
    *sorted(FIVE_KEYS),
    "PatientID",
    "IssuerOfPatientID",
    "OtherPatientIDs",
    "OtherPatientNames",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientMotherBirthName",
    "MilitaryRank",
    "EthnicGroup",
    "Occupation",
    "AdditionalPatientHistory",
    "PatientComments",
    "PatientWeight",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "DeviceSerialNumber",
    "RequestingPhysician",
    "PhysiciansOfRecord",
    "NameOfPhysiciansReadingStudy",
    "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers",
    "StudyDescription",
    "SeriesDescription",
    "ProtocolName",
    "PerformedProcedureStepDescription",
    "RequestedProcedureDescription",
    "ImageComments",
    "StudyDate",
    "AccessionNumber",
    "StudyID",
    "PerformedProcedureStepID",
    "AdmissionID",
]
# Legitimate replacement values an anonymizer may write; no planted value may hide in them
REPLACEMENTS = ["Anon", "ANONYMIZED", "ANONYMOUS^PATIENT", "10000101", "19000101", "000000.00", "2.25.", "0Y"]


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], list[Path]]:
    """Two visits of subject 0 (explicit VR little endian): root, study-0 files, study-1 files."""
    root = tmp_path_factory.mktemp("sample")
    first = make_study(root, subject=0, study=0, n_series=2, n_instances=3)
    second = make_study(root, subject=0, study=1, n_series=2, n_instances=3)
    return root, first, second


def _walk_uids(ds: Dataset) -> list[str]:
    """Every UI value in ``ds``, its file meta and all nested sequence items."""
    found: list[str] = []
    for elem in ds.iterall():
        if elem.VR == "UI" and elem.value:
            found.extend(elem.value if elem.VM > 1 else [elem.value])
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        found.extend(str(elem.value) for elem in meta if elem.VR == "UI")
    return found


def test_public_constants_match_planted_values() -> None:
    assert set(PLANTED_FIVE) == FIVE_KEYS
    assert not set(PLANTED_FIVE) & set(PLANTED_OTHER)
    assert PLANTED_FIVE | PLANTED_OTHER == planted_values(0) == planted_values()
    for key in ("PrivateName", "OverlayComment", "PreambleText", "SourceAE", "OriginalAttrName"):
        assert key in PLANTED_OTHER
    for key in ("DeepName", "UIDDate", "FolderName", "FileName", "AccessionNumber", "InstitutionName"):
        assert key in PLANTED_OTHER


@pytest.mark.parametrize("subject", [0, 1, 12, 9999])
def test_planted_values_are_distinctive(subject: int) -> None:
    values = planted_values(subject)
    assert len(set(values.values())) == len(values)
    for key, value in values.items():
        assert len(value) >= 6, key
        assert value.isascii(), key
        for legit in REPLACEMENTS:
            assert value.upper() not in legit.upper() and legit.upper() not in value.upper(), (key, legit)
        for other_key, other in values.items():
            if other_key != key and {key, other_key} != {"StudyDate", "UIDDate"}:
                assert value not in other, (key, other_key)
    assert values["UIDDate"].startswith(values["StudyDate"])


def test_planted_values_differ_per_subject_and_visit() -> None:
    zero, one = planted_values(0), planted_values(1)
    assert not set(zero.values()) & set(one.values())
    for a in zero.values():
        for b in one.values():
            assert a not in b and b not in a
    visit = planted_values(0, study=1)
    for key in ("PatientID", "PatientName", "PatientBirthDate", "FolderName"):
        assert visit[key] == zero[key]
    for key in ("StudyDate", "UIDDate", "AccessionNumber", "StudyID"):
        assert visit[key] != zero[key]


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        planted_values(-1)
    with pytest.raises(ValueError):
        make_study(tmp_path, encoding="jpeg")
    with pytest.raises(ValueError):
        make_dataset(series=100)


def test_files_readable_and_laid_out(studies: tuple[Path, list[Path], list[Path]]) -> None:
    root, first, second = studies
    values = planted_values(0)
    assert len(first) == len(second) == 6
    assert len(set(first) | set(second)) == 12
    for path in first:
        assert path.is_file()
        assert path.relative_to(root).parts[0] == values["FolderName"]
        assert values["StudyDate"] in path.parent.name
        assert path.name.startswith(values["FileName"]) and path.suffix == ".dcm"
        ds = pydicom.dcmread(path)
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
        assert ds.Modality == "MR" and ds.Manufacturer == "SIEMENS"
        assert (ds.Rows, ds.Columns, ds.BitsAllocated) == (16, 16, 16)
    assert first[0].parents[1] == second[0].parents[1]  # same patient folder
    assert first[0].parent != second[0].parent  # different study folders


@pytest.mark.parametrize("encoding", ["explicit_le", "implicit_le", "explicit_be"])
def test_every_planted_value_in_file_bytes(tmp_path: Path, encoding: str) -> None:
    paths = make_study(tmp_path, subject=3, n_series=1, n_instances=2, encoding=encoding)
    for path in paths:
        raw = path.read_bytes()
        for key, value in planted_values(3).items():
            if key not in PATH_KEYS:
                assert value.encode() in raw, (encoding, key)


def test_top_level(studies: tuple[Path, list[Path], list[Path]]) -> None:
    values = planted_values(0)
    for path in studies[1]:
        ds = pydicom.dcmread(path)
        for key in TOP_LEVEL_KEYS:
            assert str(ds[key].value).startswith(values[key]), key
        for key in ("SeriesDate", "AcquisitionDate", "ContentDate", "InstanceCreationDate"):
            assert ds[key].value == values["StudyDate"]
        assert ds.AcquisitionDateTime.startswith(values["StudyDate"])
        for key in ("StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime", "PatientAge", "PatientSex"):
            assert ds[key].value
        for key in ("MagneticFieldStrength", "RepetitionTime", "EchoTime", "SliceThickness", "PixelSpacing"):
            assert ds[key].value
        assert len(ds.ImagePositionPatient) == 3 and len(ds.ImageOrientationPatient) == 6
        assert ds.SpecificCharacterSet == "ISO_IR 192"


def test_deep_sequences_and_original_attributes(studies: tuple[Path, list[Path], list[Path]]) -> None:
    values = planted_values(0)
    ds = pydicom.dcmread(studies[1][0])
    depth1 = ds.RequestAttributesSequence[0]
    depth3 = depth1.ReferencedStudySequence[0].ReferencedPerformedProcedureStepSequence[0]
    for item in (depth1, depth3):
        for key in ("PatientName", "ReferringPhysicianName", "OperatorsName"):
            assert item[key].value == values[key]
    assert depth1.RequestedProcedureID == values["RequestedProcedureID"]
    assert depth3.PersonName == values["DeepName"]
    assert depth1.ReferencedStudySequence[0].ReferencedSOPInstanceUID == ds.StudyInstanceUID
    original = ds.OriginalAttributesSequence[0]
    assert original.ModifyingSystem == values["ModifyingSystem"]
    modified = original.ModifiedAttributesSequence[0]
    assert modified.PatientName == values["OriginalAttrName"]
    assert modified.PatientID == values["OriginalPatientID"]


def test_private_blocks(studies: tuple[Path, list[Path], list[Path]]) -> None:
    values = planted_values(0)
    ds = pydicom.dcmread(studies[1][0])
    acme = ds.private_block(0x0011, "ACME FAKE PHI 1.0")
    assert acme[0x01].value == values["PrivateName"]
    item = acme[0x02].value[0]
    assert item.private_block(0x0011, "ACME FAKE PHI 1.0")[0x01].value == values["PrivateSeqValue"]

    assert ds[0x0029, 0x0010].value == "SIEMENS CSA HEADER"
    csa = ds.private_block(0x0029, "SIEMENS CSA HEADER")
    assert csa[0x08].value == "IMAGE NUM 4"
    image_header, series_header = csa[0x10].value, csa[0x20].value
    assert image_header.startswith(b"SV10\x04\x03\x02\x01")
    assert series_header.startswith(b"SV10\x04\x03\x02\x01")
    assert b"### ASCCONV BEGIN ###" in series_header and b"### ASCCONV END ###" in series_header
    for value in values.values():
        assert value.encode() not in image_header + series_header
    assert ds[0x0019, 0x0010].value == "SIEMENS MR HEADER"
    mr = ds.private_block(0x0019, "SIEMENS MR HEADER")
    assert mr[0x0C].value == 1000
    assert list(mr[0x0E].value) == pytest.approx([0.0, 0.70710678, 0.70710678])
    assert ds[0x0043, 0x0010].value == "GEMS_PARM_01"
    assert list(ds.private_block(0x0043, "GEMS_PARM_01")[0x39].value) == [1000, 8, 0, 0]


def test_csa_headers_parse_with_nibabel(studies: tuple[Path, list[Path], list[Path]]) -> None:
    csareader = pytest.importorskip("nibabel.nicom.csareader")
    ds = pydicom.dcmread(studies[1][0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image = csareader.read(ds[0x0029, 0x1010].value)
        series = csareader.read(ds[0x0029, 0x1020].value)
    assert csareader.get_b_value(image) == 1000
    assert list(csareader.get_g_vector(image)) == pytest.approx([0.0, 0.70710678, 0.70710678])
    assert "N4_VE11C" in series["tags"]["MrPhoenixProtocol"]["items"][0]


def test_overlay_curve_signature_padding(studies: tuple[Path, list[Path], list[Path]]) -> None:
    values = planted_values(0)
    path = studies[1][0]
    ds = pydicom.dcmread(path)
    assert ds[0x6000, 0x4000].value == values["OverlayComment"]
    assert (ds[0x6000, 0x0010].value, ds[0x6000, 0x0011].value) == (ds.Rows, ds.Columns)
    assert ds[0x6000, 0x0040].value == "G" and ds[0x6000, 0x0100].value == 1
    assert len(ds[0x6000, 0x3000].value) * 8 >= ds.Rows * ds.Columns
    assert ds[0x5000, 0x2500].value == values["CurveLabel"]
    assert ds[0x5000, 0x0005].value == 2
    signature = ds.DigitalSignaturesSequence[0]
    assert values["SignerName"].encode() in signature.CertificateOfSigner
    assert signature.Signature and signature.MACIDNumber == 1
    assert ds.DataSetTrailingPadding.startswith(values["TrailingPadding"].encode())
    raw = path.read_bytes()
    pixel = raw.rfind(b"\xe0\x7f\x10\x00OW")
    sig = raw.rfind(b"\xfa\xff\xfa\xffSQ")
    pad = raw.rfind(b"\xfc\xff\xfc\xffOB")
    assert 0 < pixel < sig < pad
    assert raw.rfind(values["SignerName"].encode()) > sig
    assert raw.rfind(values["TrailingPadding"].encode()) > pad
    assert list(ds.keys())[-2:] == [0xFFFAFFFA, 0xFFFCFFFC]


def test_file_meta_and_preamble(studies: tuple[Path, list[Path], list[Path]]) -> None:
    values = planted_values(0)
    for path in studies[1]:
        raw = path.read_bytes()
        assert raw[:128] == values["PreambleText"].encode().ljust(128, b"\x00")
        assert raw[128:132] == b"DICM"
        ds = pydicom.dcmread(path)
        meta_end = 132 + 12 + ds.file_meta.FileMetaInformationGroupLength
        assert values["SourceAE"].encode() in raw[132:meta_end]
        assert ds.file_meta.SourceApplicationEntityTitle == values["SourceAE"]
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert ds.preamble == raw[:128]


def test_two_visits_of_one_subject(studies: tuple[Path, list[Path], list[Path]]) -> None:
    _, first, second = studies
    a, b = pydicom.dcmread(first[0]), pydicom.dcmread(second[0])
    assert a.PatientID == b.PatientID and a.PatientName == b.PatientName
    assert a.PatientBirthDate == b.PatientBirthDate
    assert a.StudyInstanceUID != b.StudyInstanceUID
    assert a.AccessionNumber != b.AccessionNumber
    assert a.StudyDate != b.StudyDate
    assert b.StudyDate == planted_values(0, study=1)["StudyDate"]
    series_a = {pydicom.dcmread(p).SeriesInstanceUID for p in first}
    series_b = {pydicom.dcmread(p).SeriesInstanceUID for p in second}
    assert len(series_a) == len(series_b) == 2 and not series_a & series_b


def test_uids_valid_unique_and_dated(studies: tuple[Path, list[Path], list[Path]]) -> None:
    _, first, second = studies
    sop_uids: set[str] = set()
    for study, paths in enumerate((first, second)):
        uid_date = planted_values(0, study=study)["UIDDate"]
        for path in paths:
            ds = pydicom.dcmread(path)
            for uid in _walk_uids(ds):
                assert len(uid) <= 64 and UID_RE.match(uid), uid
                assert UID(uid).is_valid
            for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
                assert ds[key].value.startswith(UID_ROOT), key
                assert f".{uid_date}." in ds[key].value, key
            assert ds.SOPInstanceUID not in sop_uids
            sop_uids.add(ds.SOPInstanceUID)
    assert len(sop_uids) == 12


def test_referenced_image_points_into_same_series(studies: tuple[Path, list[Path], list[Path]]) -> None:
    datasets = [pydicom.dcmread(p) for p in studies[1]]
    by_sop = {ds.SOPInstanceUID: ds for ds in datasets}
    for ds in datasets:
        ref = ds.ReferencedImageSequence[0]
        assert ref.ReferencedSOPClassUID == ds.SOPClassUID
        target = by_sop[ref.ReferencedSOPInstanceUID]
        assert target is not ds
        assert target.SeriesInstanceUID == ds.SeriesInstanceUID


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_encodings(tmp_path: Path, encoding: str) -> None:
    paths = make_study(tmp_path / encoding, subject=2, n_series=2, n_instances=2, encoding=encoding)
    reference = make_study(tmp_path / "ref", subject=2, n_series=2, n_instances=2)
    arrays = []
    for path, ref_path in zip(paths, reference, strict=True):
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == ENCODINGS[encoding]
        assert ds.PatientName == planted_values(2)["PatientName"]
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        ref = pydicom.dcmread(ref_path)
        assert ds.SOPInstanceUID == ref.SOPInstanceUID
        arr = ds.pixel_array
        assert arr.shape == (16, 16)
        assert (arr == ref.pixel_array).all()
        assert int(arr.max()) < 4096
        arrays.append(arr)
    assert all((arrays[0] != other).any() for other in arrays[1:])  # depends on series/instance


def test_deflated_hides_dataset_from_raw_search(tmp_path: Path) -> None:
    path = make_study(tmp_path, n_series=1, n_instances=1, encoding="deflated")[0]
    raw = path.read_bytes()
    meta_end = 132 + 12 + pydicom.dcmread(path).file_meta.FileMetaInformationGroupLength
    assert PLANTED_FIVE["PatientName"].encode() not in raw
    assert PLANTED_OTHER["SourceAE"].encode() in raw[:meta_end]
    inflated = zlib.decompress(raw[meta_end:], -zlib.MAX_WBITS)
    assert PLANTED_FIVE["PatientName"].encode() in inflated


def test_make_dataset_equals_written_file(studies: tuple[Path, list[Path], list[Path]]) -> None:
    path = studies[1][4]  # series 1, instance 1
    made = make_dataset(subject=0, study=0, series=1, instance=1)
    buffer = BytesIO()
    made.save_as(buffer, enforce_file_format=True)
    assert buffer.getvalue() == path.read_bytes()


def test_single_instance_series_and_sizes(tmp_path: Path) -> None:
    paths = make_study(tmp_path, n_series=1, n_instances=1, rows=8, columns=12)
    ds = pydicom.dcmread(paths[0])
    assert "ReferencedImageSequence" not in ds
    assert ds.pixel_array.shape == (8, 12)


def test_generation_raises_no_warnings(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for encoding in ENCODINGS:
            for path in make_study(tmp_path / encoding, n_series=1, n_instances=2, encoding=encoding):
                pydicom.dcmread(path)
        largest = make_dataset(subject=9999, study=99, series=99, instance=9999)  # longest values
        largest.save_as(BytesIO(), enforce_file_format=True)
    assert all(len(uid) <= 64 for uid in _walk_uids(largest))
    assert int(largest.PatientAge[:3]) < 100
