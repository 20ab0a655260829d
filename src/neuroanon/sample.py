"""Synthetic DICOM studies full of FAKE protected health information (PHI).

Every value in this module is invented; no real patient data is used. The
generated studies serve the product's demo command and the test suite, which
plants distinctive fake identifiers in every place PHI is known to hide (top
level, nested sequences, Original Attributes Sequence, private blocks,
overlays and curves, file meta, preamble, UIDs, digital signatures, trailing
padding, folder and file names) and then checks that anonymization removes
them all.

The planted strings are distinctive ("FAKEDOE0000^JANE", "PID-FAKE-0000") so
that a raw byte search of anonymized output finds no accidental hit. Note that
with the ``"deflated"`` encoding the data set after the file meta is
zlib-compressed, so a raw byte search only sees the file meta and preamble.
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from datetime import date, datetime, timedelta
from pathlib import Path

from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
    RLELossless,
)

__all__ = ["PLANTED_FIVE", "PLANTED_OTHER", "make_dataset", "make_study", "planted_values"]

_UID_ROOT = "1.2.826.0.1.3680043.8.498."
_MPPS_SOP_CLASS = "1.2.840.10008.3.1.2.3.3"  # Modality Performed Procedure Step
_STUDY_SOP_CLASS = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired)

# name -> (transfer syntax, big endian)
_ENCODINGS: dict[str, tuple[UID, bool]] = {
    "explicit_le": (ExplicitVRLittleEndian, False),
    "implicit_le": (ImplicitVRLittleEndian, False),
    "explicit_be": (ExplicitVRBigEndian, True),
    "deflated": (DeflatedExplicitVRLittleEndian, False),
    "rle": (ExplicitVRLittleEndian, False),  # built native, then RLE-compressed
}

_FIVE_KEYS = (
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "PatientName",
    "PatientBirthDate",
)

# series description / protocol suffix per series index; cycles after the last
_SERIES_KINDS = ("T1_MPRAGE", "DTI_64DIR", "BOLD_REST", "T2_SPACE", "FLAIR_3D")

_ASCCONV = (
    "### ASCCONV BEGIN ###\n"
    'sProtConsistencyInfo.tMeasuredBaselineString = "N4_VE11C"\n'
    "sRXSPEC.alDwellTime[0] = 3900\n"
    "lTotalScanTimeSec = 300\n"
    "### ASCCONV END ###\n"
)


def _check_range(name: str, value: int, upper: int) -> None:
    """Raise ValueError unless ``0 <= value < upper``."""
    if not 0 <= value < upper:
        raise ValueError(f"{name} must be in [0, {upper}), got {value}")


def _study_date(subject: int, study: int) -> date:
    """Date of the given visit, 2024-2033; distinct for the visits of one subject."""
    return date(2024, 1, 15) + timedelta(days=(subject * 101 + study * 7) % 3653)


def _study_clock(subject: int, study: int) -> datetime:
    """Start date and time of the given visit."""
    hour = 8 + (subject + study) % 10
    minute = (31 + subject * 7 + study * 13) % 60
    second = (45 + subject * 11 + study * 17) % 60
    return datetime.combine(_study_date(subject, study), datetime.min.time()).replace(
        hour=hour, minute=minute, second=second
    )


def _birth_date(subject: int) -> date:
    """Birth date between 1950 and 1999, unique for subjects below 18000."""
    return date(1950, 1, 1) + timedelta(days=(subject * 3659 + 437) % 18000)


def planted_values(subject: int = 0, *, study: int = 0) -> dict[str, str]:
    """Return every planted fake identifying string for ``subject`` (and visit ``study``).

    Keys are the PLANTED_FIVE keys plus the PLANTED_OTHER keys. Patient-level values
    depend only on ``subject``; StudyDate, UIDDate, AccessionNumber, StudyID,
    RequestedProcedureID, PerformedProcedureStepID and AdmissionID also depend on
    ``study``. Values are unique, at least 6 characters long, and none occurs inside
    another, except that StudyDate is the prefix of UIDDate (UIDs embed the date).
    """
    _check_range("subject", subject, 10_000)
    _check_range("study", study, 100)
    k = f"{subject:04d}"
    v = f"{k}{study:02d}"
    clock = _study_clock(subject, study)
    five = {
        "ReferringPhysicianName": f"FAKEREFERRER{k}^ALBERT",
        "PerformingPhysicianName": f"FAKEPERFORMER{k}^BERTA",
        "OperatorsName": f"FAKEOPERATOR{k}^CARL",
        "PatientName": f"FAKEDOE{k}^JANE",
        "PatientBirthDate": _birth_date(subject).strftime("%Y%m%d"),
    }
    other = {
        # patient module and other top-level attributes
        "PatientID": f"PID-FAKE-{k}",
        "IssuerOfPatientID": f"FAKEISSUER{k}",
        "OtherPatientIDs": f"MRN-FAKE-{k}",
        "OtherPatientNames": f"FAKEALIAS{k}^JOANNA",
        "PatientAddress": f"{k} FAKEELM ROAD, FAKEVILLE",
        "PatientTelephoneNumbers": f"555-FAKE-{k}",
        "PatientMotherBirthName": f"FAKEMOTHER{k}^GRETA",
        "MilitaryRank": f"FAKECAPTAIN{k}",
        "EthnicGroup": f"FAKEETHNIC{k}",
        "Occupation": f"FAKEJOB{k}",
        "AdditionalPatientHistory": f"FAKE HISTORY {k}: fell off a fake ladder",
        "PatientComments": f"FAKE COMMENT {k}: lives by the fake lake",
        "PatientWeight": f"{60 + subject % 40}.{k}1",
        "InstitutionName": f"FAKE GENERAL HOSPITAL {k}",
        "InstitutionAddress": f"{k} FAKEMAPLE STREET, FAKETOWN",
        "InstitutionalDepartmentName": f"FAKE NEUROLOGY DEPT {k}",
        "StationName": f"FAKESTATION{k}",
        "DeviceSerialNumber": f"SN-FAKE-{k}",
        "RequestingPhysician": f"FAKEREQUESTER{k}^DORA",
        "PhysiciansOfRecord": f"FAKERECORDDOC{k}^EMIL",
        "NameOfPhysiciansReadingStudy": f"FAKEREADER{k}^FRIDA",
        "ReferringPhysicianAddress": f"{k} FAKE REFERRER LANE, FAKEBURG",
        "ReferringPhysicianTelephoneNumbers": f"555-FAKEREF-{k}",
        "StudyDescription": f"FAKEPROJECT{k}^BRAIN",
        "SeriesDescription": f"FAKESERIES{k}",  # prefix of each series' description
        "ProtocolName": f"FAKEPROTOCOL{k}",  # prefix of each series' protocol name
        "PerformedProcedureStepDescription": f"FAKEPPSDESC{k}",
        "RequestedProcedureDescription": f"FAKEREQPROC{k} MRI HEAD",
        "ImageComments": f"FAKE IMAGE COMMENT {k}: patient moved",
        # visit-level values
        "StudyDate": clock.strftime("%Y%m%d"),
        "UIDDate": clock.strftime("%Y%m%d%H%M%S"),
        "AccessionNumber": f"FAKEACC{v}",
        "StudyID": f"FAKESID{v}",
        "PerformedProcedureStepID": f"FAKEPPSID{v}",
        "AdmissionID": f"FAKEADMIT{v}",
        "RequestedProcedureID": f"FAKERPID{v}",  # depth 1 (Request Attributes Sequence)
        # nested, private, overlay, curve, signature, meta, preamble, padding
        "DeepName": f"FAKEDEEP{k}^GUSTAV",  # depth 3
        "OriginalAttrName": f"FAKEORIGINAL{k}^HANS",
        "OriginalPatientID": f"FAKEOLDID{k}",
        "ModifyingSystem": f"FAKEPACS{k}",
        "PrivateName": f"FAKEPRIVATE{k}^IVAN",
        "PrivateSeqValue": f"FAKEPRIVSEQ{k}",
        "OverlayComment": f"FAKEOVERLAY{k} marked by the fake tech",
        "CurveLabel": f"FAKECURVE{k}",
        "SignerName": f"FAKESIGNER{k}",
        "TrailingPadding": f"FAKEPADDING{k}",
        "SourceAE": f"FAKEAE{k}",
        "PreambleText": f"FAKEPREAMBLE{k} CONFIDENTIAL",
        # paths written by make_study
        "FolderName": f"FAKEFOLDER{k}_DOE_JANE",
        "FileName": f"FAKEFILE{k}_DOE",
    }
    return five | other


_ALL_0 = planted_values(0)
PLANTED_FIVE: dict[str, str] = {key: _ALL_0[key] for key in _FIVE_KEYS}
PLANTED_OTHER: dict[str, str] = {key: val for key, val in _ALL_0.items() if key not in PLANTED_FIVE}


def _uid(kind: int, uid_date: str, *numbers: int) -> UID:
    """A valid UID under the pydicom root embedding ``uid_date``, like scanners do."""
    return UID(_UID_ROOT + ".".join([str(kind), uid_date, *(str(n + 1) for n in numbers)]))


def _csa2(entries: list[tuple[str, str, int, list[str]]]) -> bytes:
    """Encode a Siemens CSA2 header from ``(name, vr, syngodt, values)`` entries."""
    out = bytearray(b"SV10\x04\x03\x02\x01")
    out += struct.pack("<2I", len(entries), 77)
    for name, vr, syngodt, values in entries:
        out += struct.pack("<64si4s3i", name.encode(), len(values), vr.encode(), syngodt, len(values), 77)
        for value in values:
            data = value.encode() + b"\x00"
            out += struct.pack("<4i", len(data), len(data), 77, len(data))
            out += data + b"\x00" * (-len(data) % 4)
    return bytes(out)


def _csa_image_header(b_value: int) -> bytes:
    """CSA image header (0029,1010): diffusion and coil information, no PHI."""
    return _csa2(
        [
            ("EchoLinePosition", "IS", 6, ["128"]),
            ("B_value", "IS", 6, [str(b_value)]),
            ("DiffusionGradientDirection", "FD", 4, ["0.00000000", "0.70710678", "0.70710678"]),
            ("SliceNormalVector", "FD", 4, ["0.00000000", "0.00000000", "1.00000000"]),
            ("ImaCoilString", "LO", 19, ["HEA;HEP"]),
            ("BandwidthPerPixelPhaseEncode", "FD", 4, ["30.12000000"]),
        ]
    )


def _csa_series_header() -> bytes:
    """CSA series header (0029,1020) with a small ASCCONV protocol, no PHI."""
    return _csa2(
        [
            ("MrPhoenixProtocol", "UN", 0, [_ASCCONV]),
            ("CoilForGradient2", "SH", 22, ["AS82"]),
            ("FlowCompensation", "ST", 20, ["No"]),
        ]
    )


def _pixel_bytes(rows: int, columns: int, series: int, instance: int, big_endian: bool) -> bytes:
    """Deterministic 12-bit pattern stored in 16-bit words; depends on series and instance."""
    words = array(
        "H",
        ((r * 7 + c * 13 + series * 101 + instance * 37) % 4096 for r in range(rows) for c in range(columns)),
    )
    return _to_order(words, big_endian)


def _to_order(words: array[int], big_endian: bool) -> bytes:
    """Serialize 16-bit ``words`` in little- or big-endian byte order."""
    if (array("H", [1]).tobytes() == b"\x00\x01") != big_endian:
        words = array("H", words)
        words.byteswap()
    return words.tobytes()


def _overlay_bytes(rows: int, columns: int, big_endian: bool) -> bytes:
    """A 1-bit overlay plane drawing the image border, packed into 16-bit words."""
    n_bits = rows * columns
    bits = bytearray((n_bits + 15) // 16 * 2)
    for r in range(rows):
        for c in range(columns):
            if r in (0, rows - 1) or c in (0, columns - 1):
                i = r * columns + c
                bits[i // 8] |= 1 << (i % 8)
    return _to_order(array("H", bytes(bits)), big_endian)


def _build(
    *,
    subject: int,
    study: int,
    series: int,
    instance: int,
    rows: int,
    columns: int,
    n_instances: int,
    encoding: str,
) -> FileDataset:
    """Build one MR instance carrying fake PHI in every hiding place."""
    if encoding not in _ENCODINGS:
        raise ValueError(f"encoding must be one of {sorted(_ENCODINGS)}, got {encoding!r}")
    _check_range("series", series, 100)
    _check_range("instance", instance, 10_000)
    if rows < 1 or columns < 1:
        raise ValueError("rows and columns must be positive")
    tsyntax, big_endian = _ENCODINGS[encoding]
    pv = planted_values(subject, study=study)
    kind = _SERIES_KINDS[series % len(_SERIES_KINDS)]
    start = _study_clock(subject, study)
    series_start = start + timedelta(minutes=7 * series)
    acquired = series_start + timedelta(seconds=3 * instance)
    created = acquired + timedelta(seconds=41)
    udate = pv["UIDDate"]
    study_uid = _uid(1, udate, subject, study)
    series_uid = _uid(2, udate, subject, study, series)
    sop_uid = _uid(3, udate, subject, study, series, instance)
    mpps_uid = _uid(5, udate, subject, study)

    def tm(moment: datetime) -> str:
        return moment.strftime("%H%M%S.%f")

    def da(moment: datetime) -> str:
        return moment.strftime("%Y%m%d")

    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = tsyntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "NEUROANON_SAMPLE"
    meta.SourceApplicationEntityTitle = pv["SourceAE"]
    preamble = pv["PreambleText"].encode().ljust(128, b"\x00")

    ds = FileDataset(
        "",
        Dataset(),
        preamble=preamble,
        file_meta=meta,
        is_implicit_VR=encoding == "implicit_le",
        is_little_endian=not big_endian,
    )

    # SOP common, general study/series/equipment, patient
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.InstanceCreationDate = da(created)
    ds.InstanceCreationTime = tm(created)
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.SeriesDate = da(series_start)
    ds.AcquisitionDate = da(acquired)
    ds.ContentDate = da(created)
    ds.AcquisitionDateTime = acquired.strftime("%Y%m%d%H%M%S.%f")
    ds.StudyTime = tm(start)
    ds.SeriesTime = tm(series_start)
    ds.AcquisitionTime = tm(acquired)
    ds.ContentTime = tm(created)
    ds.Modality = "MR"
    ds.Manufacturer = "SIEMENS"
    ds.SeriesDescription = f"{pv['SeriesDescription']} {kind}"
    ds.ManufacturerModelName = "Prisma_fit"
    ds.ReferencedPerformedProcedureStepSequence = Sequence([_ref(_MPPS_SOP_CLASS, mpps_uid)])
    if n_instances > 1:
        other = instance - 1 if instance > 0 else 1
        ds.ReferencedImageSequence = Sequence(
            [_ref(MRImageStorage, _uid(3, udate, subject, study, series, other))]
        )
    ds.PatientSex = "F"
    ds.PatientAge = f"{(_study_date(subject, study) - _birth_date(subject)).days // 365:03d}Y"
    ds.PatientSize = "1.68"

    # Identifying attributes whose planted value is the attribute's own (keyed by keyword)
    for keyword in (
        "StudyDate",
        "AccessionNumber",
        "InstitutionName",
        "InstitutionAddress",
        "ReferringPhysicianName",
        "ReferringPhysicianAddress",
        "ReferringPhysicianTelephoneNumbers",
        "StationName",
        "StudyDescription",
        "InstitutionalDepartmentName",
        "PhysiciansOfRecord",
        "PerformingPhysicianName",
        "NameOfPhysiciansReadingStudy",
        "OperatorsName",
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "PatientBirthDate",
        "OtherPatientIDs",
        "OtherPatientNames",
        "PatientWeight",
        "PatientAddress",
        "PatientMotherBirthName",
        "MilitaryRank",
        "PatientTelephoneNumbers",
        "EthnicGroup",
        "Occupation",
        "AdditionalPatientHistory",
        "PatientComments",
        "DeviceSerialNumber",
        "StudyID",
        "ImageComments",
        "RequestingPhysician",
        "RequestedProcedureDescription",
        "AdmissionID",
        "PerformedProcedureStepID",
        "PerformedProcedureStepDescription",
    ):
        setattr(ds, keyword, pv[keyword])

    # MR acquisition (realistic technical values, no PHI)
    ds.BodyPartExamined = "HEAD"
    ds.ScanningSequence = ["GR", "IR"]
    ds.SequenceVariant = ["SK", "SP", "MP"]
    ds.ScanOptions = "IR"
    ds.MRAcquisitionType = "3D"
    ds.SequenceName = "*tfl3d1_16ns"
    ds.SliceThickness = "1"
    ds.RepetitionTime = "2300"
    ds.EchoTime = "2.98"
    ds.InversionTime = "900"
    ds.NumberOfAverages = "1"
    ds.ImagingFrequency = "123.251582"
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = "1"
    ds.MagneticFieldStrength = "3"
    ds.EchoTrainLength = "1"
    ds.PercentSampling = "100"
    ds.PercentPhaseFieldOfView = "93.75"
    ds.PixelBandwidth = "240"
    ds.SoftwareVersions = "syngo MR E11"
    ds.ProtocolName = f"{pv['ProtocolName']}_{kind}"
    ds.TransmitCoilName = "Body"
    ds.AcquisitionMatrix = [0, 256, 240, 0]
    ds.InPlanePhaseEncodingDirection = "ROW"
    ds.FlipAngle = "9"
    ds.SAR = "0.0456"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series + 1
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = instance + 1
    z = -60.0 + instance * 1.0
    ds.ImagePositionPatient = ["-95.5000", "-127.3000", f"{z:.4f}"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = _uid(4, udate, subject, study, series)
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = f"{z:.4f}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.PixelSpacing = ["1", "1"]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.BurnedInAnnotation = "NO"
    ds.WindowCenter = "2048"
    ds.WindowWidth = "4096"
    ds.PerformedProcedureStepStartDate = pv["StudyDate"]
    ds.PerformedProcedureStepStartTime = tm(start)

    # names 1 and 3 sequence levels deep
    depth3 = _ref(_MPPS_SOP_CLASS, mpps_uid)
    _add_names(depth3, pv)
    depth3.PersonName = pv["DeepName"]
    depth2 = _ref(_STUDY_SOP_CLASS, study_uid)
    depth2.ReferencedPerformedProcedureStepSequence = Sequence([depth3])
    depth1 = Dataset()
    depth1.RequestedProcedureID = pv["RequestedProcedureID"]
    depth1.RequestedProcedureDescription = pv["RequestedProcedureDescription"]
    _add_names(depth1, pv)
    depth1.ReferencedStudySequence = Sequence([depth2])
    ds.RequestAttributesSequence = Sequence([depth1])

    # Original Attributes Sequence with the pre-correction values
    modified = Dataset()
    modified.PatientName = pv["OriginalAttrName"]
    modified.PatientID = pv["OriginalPatientID"]
    original = Dataset()
    original.SourceOfPreviousValues = ""
    original.AttributeModificationDateTime = start.strftime("%Y%m%d%H%M%S")
    original.ModifyingSystem = pv["ModifyingSystem"]
    original.ReasonForTheAttributeModification = "COERCE"
    original.ModifiedAttributesSequence = Sequence([modified])
    ds.OriginalAttributesSequence = Sequence([original])

    _add_private_blocks(ds, pv)
    _add_overlay_and_curve(ds, pv, rows, columns, big_endian)

    ds.PixelData = _pixel_bytes(rows, columns, series, instance, big_endian)
    ds["PixelData"].VR = "OW"

    # Digital Signatures Sequence and trailing padding: tags above Pixel Data
    signature = Dataset()
    signature.MACIDNumber = 1
    signature.DigitalSignatureUID = _uid(6, udate, subject, study, series, instance)
    signature.DigitalSignatureDateTime = created.strftime("%Y%m%d%H%M%S")
    signature.CertificateType = "X509_1993_SIG"
    signature.CertificateOfSigner = _even(f"-----FAKE CERTIFICATE----- CN={pv['SignerName']}".encode())
    signature.Signature = hashlib.sha256(sop_uid.encode()).digest()
    ds.DigitalSignaturesSequence = Sequence([signature])
    ds.DataSetTrailingPadding = _even(pv["TrailingPadding"].encode() + b"\x00\x00")

    if encoding == "rle":
        ds.compress(RLELossless, generate_instance_uid=False)
    return ds


def _even(data: bytes) -> bytes:
    """Pad ``data`` with a NUL byte to even length."""
    return data + b"\x00" * (len(data) % 2)


def _ref(sop_class: str, sop_instance: str) -> Dataset:
    """A reference item (Referenced SOP Class / Instance UID)."""
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    return item


def _add_names(item: Dataset, pv: dict[str, str]) -> None:
    """Copy the patient, referring physician and operator names into a sequence item."""
    item.PatientName = pv["PatientName"]
    item.ReferringPhysicianName = pv["ReferringPhysicianName"]
    item.OperatorsName = pv["OperatorsName"]


def _add_private_blocks(ds: Dataset, pv: dict[str, str]) -> None:
    """Add Siemens, GE and a non-allow-listed private block carrying fake PHI."""
    mr = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    mr.add_new(0x0B, "DS", "4000")
    mr.add_new(0x0C, "IS", "1000")
    mr.add_new(0x0D, "CS", "DIRECTIONAL")
    mr.add_new(0x0E, "FD", [0.0, 0.70710678, 0.70710678])

    acme = ds.private_block(0x0011, "ACME FAKE PHI 1.0", create=True)
    acme.add_new(0x01, "LO", pv["PrivateName"])
    item = Dataset()
    item.private_block(0x0011, "ACME FAKE PHI 1.0", create=True).add_new(0x01, "LO", pv["PrivateSeqValue"])
    acme.add_new(0x02, "SQ", Sequence([item]))

    csa = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
    csa.add_new(0x08, "CS", "IMAGE NUM 4")
    csa.add_new(0x09, "LO", "20100114")
    csa.add_new(0x10, "OB", _csa_image_header(1000))
    csa.add_new(0x18, "CS", "MR")
    csa.add_new(0x19, "LO", "20100114")
    csa.add_new(0x20, "OB", _csa_series_header())

    ge = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
    ge.add_new(0x39, "IS", [1000, 8, 0, 0])


def _add_overlay_and_curve(
    ds: Dataset, pv: dict[str, str], rows: int, columns: int, big_endian: bool
) -> None:
    """Add overlay plane 6000 (with comments) and retired curve group 5000 (with a label)."""
    ds.add_new(0x50000005, "US", 2)  # CurveDimensions
    ds.add_new(0x50000010, "US", 4)  # NumberOfPoints
    ds.add_new(0x50000020, "CS", "TAC")  # TypeOfData
    ds.add_new(0x50002500, "LO", pv["CurveLabel"])  # CurveLabel
    ds.add_new(0x60000010, "US", rows)  # OverlayRows
    ds.add_new(0x60000011, "US", columns)  # OverlayColumns
    ds.add_new(0x60000040, "CS", "G")  # OverlayType
    ds.add_new(0x60000050, "SS", [1, 1])  # OverlayOrigin
    ds.add_new(0x60000100, "US", 1)  # OverlayBitsAllocated
    ds.add_new(0x60000102, "US", 0)  # OverlayBitPosition
    ds.add_new(0x60003000, "OW", _overlay_bytes(rows, columns, big_endian))  # OverlayData
    ds.add_new(0x60004000, "LT", pv["OverlayComment"])  # OverlayComments


def make_dataset(
    *,
    subject: int = 0,
    study: int = 0,
    series: int = 0,
    instance: int = 0,
    rows: int = 16,
    columns: int = 16,
) -> FileDataset:
    """Return one in-memory instance (Explicit VR Little Endian), as make_study would write it.

    Its ReferencedImageSequence points at instance ``instance - 1`` (instance 1 for
    instance 0), i.e. it assumes the series has at least two instances.
    """
    return _build(
        subject=subject,
        study=study,
        series=series,
        instance=instance,
        rows=rows,
        columns=columns,
        n_instances=max(2, instance + 1),
        encoding="explicit_le",
    )


def make_study(
    out_dir: Path,
    *,
    subject: int = 0,
    study: int = 0,
    n_series: int = 2,
    n_instances: int = 3,
    rows: int = 16,
    columns: int = 16,
    encoding: str = "explicit_le",
) -> list[Path]:
    """Write one fake study as DICOM Part-10 files and return their paths.

    Layout: ``out_dir/<FolderName>/<StudyDate>_<AccessionNumber>/<FileName>_Sss_Iiiii.dcm``.
    ``encoding`` is one of "explicit_le", "implicit_le", "explicit_be", "deflated", "rle".
    A single-instance series gets no ReferencedImageSequence (there is nothing to reference).
    """
    if encoding not in _ENCODINGS:
        raise ValueError(f"encoding must be one of {sorted(_ENCODINGS)}, got {encoding!r}")
    _check_range("n_series", n_series - 1, 100)
    _check_range("n_instances", n_instances - 1, 10_000)
    pv = planted_values(subject, study=study)
    study_dir = Path(out_dir) / pv["FolderName"] / f"{pv['StudyDate']}_{pv['AccessionNumber']}"
    study_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for series in range(n_series):
        for instance in range(n_instances):
            ds = _build(
                subject=subject,
                study=study,
                series=series,
                instance=instance,
                rows=rows,
                columns=columns,
                n_instances=n_instances,
                encoding=encoding,
            )
            path = study_dir / f"{pv['FileName']}_S{series + 1:02d}_I{instance + 1:04d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    return paths


def make_many(out_dir: Path, count: int, *, subject: int = 0, rows: int = 16, columns: int = 16,
              per_folder: int = 100) -> list[Path]:
    """Write `count` instances of one series fast (one template, new SOP Instance UIDs), `per_folder` a folder.

    For scale tests and benchmarks: the fake PHI is that of `make_dataset`, shared by every instance.
    """
    template = make_dataset(subject=subject, rows=rows, columns=columns)
    paths = []
    for i in range(count):
        template.SOPInstanceUID = f"{_UID_ROOT}99.{subject}.{i + 1}"
        template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
        template.InstanceNumber = i + 1
        folder = Path(out_dir) / f"part{i // per_folder:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        paths.append(folder / f"IM{i:05d}.dcm")
        template.save_as(paths[-1], enforce_file_format=True)
    return paths
