"""Adversarial fixtures: DICOM files that hide fake PHI where de-identifiers forget to look.

Every value is fake and made here. Each case plants distinctive markers (names, dates, IDs, UIDs, free text) in
one class of hiding place of issue 9, and names them, so a test can search the output bytes for every marker in
every encoding the file uses. Cases are written in several encodings (explicit and implicit VR, little and big
endian, deflated) and character sets (ASCII, ISO_IR 100, ISO_IR 192).

Classes: sequences stored as VR UN (top level, nested, private, unknown tags, X/Z/U* attributes, text stored as
UN, undefined length); text, dates and UIDs outside PS3.15 Table E.1-1 (SR content, presentation and segmentation
text, document titles, retired and command-group elements, file meta elements in the dataset, issuer sequences,
concatenation UIDs, an earlier DeidentificationMethod); and the burned-in gate (SOP classes whose Modality says
otherwise, projection X-ray, overlays embedded in unused pixel bits).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from pydicom.charset import convert_encodings
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr, write_data_element, write_dataset, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENCODINGS = {
    "explicit_le": ExplicitVRLittleEndian,
    "implicit_le": ImplicitVRLittleEndian,
    "explicit_be": ExplicitVRBigEndian,
    "deflated": DeflatedExplicitVRLittleEndian,
}
# Character sets and a fake family name written in each (the non-ASCII letters are what encoders get wrong).
CHARSETS = {
    "ascii": ("", "Quuxley"),
    "latin1": ("ISO_IR 100", "Quüxley"),
    "utf8": ("ISO_IR 192", "Quüxłey"),
}
ROOT = "1.2.826.0.1.3680043.10.1047."  # a test root: never a real device's
UNDEFINED = 0xFFFFFFFF


@dataclass
class Markers:
    """The fake values of one file, distinct per case and charset so that a hit names its source."""

    family: str
    tag: str  # short per-case suffix
    charset: str
    values: dict[str, str] = field(default_factory=dict)

    def name(self, role: str) -> str:
        """A fake person name (family^given), remembered under `role`."""
        value = f"{self.family}^Zebedee{self.tag}{role[:3].title()}"
        self.values[role] = value
        return value

    def text(self, role: str) -> str:
        value = f"Secret {role} of {self.family} zq{self.tag}"
        self.values[role] = value
        return value

    def ae(self, role: str) -> str:
        value = f"AEZQ{self.tag}"[:16]
        self.values[role] = value
        return value

    def uid(self, role: str, n: int) -> str:
        value = f"{ROOT}{sum(map(ord, self.tag))}.{n}"
        self.values[role] = value
        return value

    def date(self, role: str) -> str:
        value = "19470415"
        self.values[role] = value
        return value


def base(charset: str, markers: Markers) -> Dataset:
    """A small MR image with fake identifying attributes (pixels of zeros)."""
    ds = Dataset()
    if CHARSETS[charset][0]:
        ds.SpecificCharacterSet = CHARSETS[charset][0]
    ds.SOPClassUID = MR_IMAGE
    ds.SOPInstanceUID = markers.uid("SOPInstanceUID", 1)
    ds.StudyInstanceUID = markers.uid("StudyInstanceUID", 2)
    ds.SeriesInstanceUID = markers.uid("SeriesInstanceUID", 3)
    ds.FrameOfReferenceUID = markers.uid("FrameOfReferenceUID", 4)
    ds.Modality = "MR"
    ds.StudyDate = "20240115"
    ds.PatientName = markers.name("PatientName")
    ds.PatientID = f"PIDZQ{markers.tag}"
    markers.values["PatientID"] = ds.PatientID
    ds.PatientBirthDate = markers.date("PatientBirthDate")
    ds.PatientSex = "O"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M"]
    ds.Manufacturer = "FakeVendor"
    ds.SequenceName = "*tfl3d1"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.BurnedInAnnotation = "NO"
    ds.PixelData = b"\x00\x00" * 16
    return ds


def un_bytes(elements: Dataset, tag: int, charset: str) -> bytes:
    """The value a node without the dictionary writes for a sequence of one item `elements`: implicit VR little
    endian items (PS3.5 6.2.2), text in the file's character set."""
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = True, True
    codecs = convert_encodings([CHARSETS[charset][0] or "ISO_IR 6"])
    write_data_element(fp, DataElement(tag, "SQ", Sequence([elements])), codecs)
    return bytes(fp.getvalue()[8:])  # the value, without the tag and length


def add_un(ds: Dataset, tag: int, value: bytes, undefined: bool = False) -> None:
    """Store `value` under `tag` with VR UN as written, whatever the dictionary says the tag is; `undefined`: with
    undefined length, `value` being items (`part10` ends them with a sequence delimiter)."""
    ds[tag] = RawDataElement(BaseTag(tag), "UN", UNDEFINED if undefined else len(value), value, 0, False, True)


def five_item(m: Markers) -> Dataset:
    """An item holding the NiDB five with fake values."""
    item = Dataset()
    item.ReferringPhysicianName = m.name("ReferringPhysicianName")
    item.PatientName = m.name("ItemPatientName")
    item.OperatorsName = m.name("OperatorsName")
    item.PatientBirthDate = m.date("ItemBirthDate")
    return item


# --- item 1: sequences stored as UN ------------------------------------------------------------------------------


def _un_top(ds: Dataset, m: Markers, charset: str) -> None:
    item = five_item(m)
    item.ProtocolName = m.text("ProtocolName")
    item.RetrieveAETitle = m.ae("RetrieveAETitle")
    item.SeriesInstanceUID = m.uid("PerformedSeriesUID", 11)
    add_un(ds, 0x00400340, un_bytes(item, 0x00400340, charset))  # PerformedSeriesSequence


def _un_nested(ds: Dataset, m: Markers, charset: str) -> None:
    inner = five_item(m)
    inner.PerformedProcedureStepDescription = m.text("StepDescription")
    outer = Dataset()
    outer.CodeValue = "1"
    add_un(outer, 0x00400340, un_bytes(inner, 0x00400340, charset))
    ds.RequestAttributesSequence = Sequence([outer])


def _un_private(ds: Dataset, m: Markers, charset: str) -> None:
    ds.add_new(0x00290010, "LO", "FAKE UN CREATOR")
    add_un(ds, 0x00291001, un_bytes(five_item(m), 0x00291001, charset))


def _un_unknown_tag(ds: Dataset, m: Markers, charset: str) -> None:
    # (0011,0010)-style unknown even tag: a newer standard attribute this dictionary does not know.
    add_un(ds, 0x0071FF02, un_bytes(five_item(m), 0x0071FF02, charset))


def _un_undefined(ds: Dataset, m: Markers, charset: str) -> None:
    item = five_item(m)
    item.ProtocolName = m.text("ProtocolName")
    item.SeriesInstanceUID = m.uid("PerformedSeriesUID", 41)
    add_un(ds, 0x00400340, un_bytes(item, 0x00400340, charset), undefined=True)
    inner = five_item(m)
    inner.PerformedProcedureStepDescription = m.text("StepDescription")
    outer = Dataset()
    outer.CodeValue = "1"
    add_un(outer, 0x00400340, un_bytes(inner, 0x00400340, charset), undefined=True)
    ds.RequestAttributesSequence = Sequence([outer])


def _un_xzu(ds: Dataset, m: Markers, charset: str) -> None:
    ref = Dataset()
    ref.ReferencedSOPClassUID = MR_IMAGE
    ref.ReferencedSOPInstanceUID = m.uid("ReferencedSOPInstanceUID", 21)
    add_un(ds, 0x00081140, un_bytes(ref, 0x00081140, charset))  # ReferencedImageSequence, X/Z/U*


def _un_text(ds: Dataset, m: Markers, charset: str) -> None:
    codec = convert_encodings([CHARSETS[charset][0] or "ISO_IR 6"])[0]
    value = m.name("PerformingPhysicianName").encode(codec)
    add_un(ds, 0x00081050, value + b" " * (len(value) % 2))  # a PN stored as UN
    text = m.text("ContentDescriptionUN").encode(codec)
    add_un(ds, 0x00700081, text + b" " * (len(text) % 2))  # unlisted text stored as UN


# --- item 3: outside the table -----------------------------------------------------------------------------------


def _sr_content(ds: Dataset, m: Markers, charset: str) -> None:
    text = Dataset()
    text.RelationshipType = "CONTAINS"
    text.ValueType = "TEXT"
    text.TextValue = m.text("TextValue")
    person = Dataset()
    person.RelationshipType = "HAS OBS CONTEXT"
    person.ValueType = "PNAME"
    person.PersonName = m.name("PersonName")
    when = Dataset()
    when.RelationshipType = "HAS OBS CONTEXT"
    when.ValueType = "DATETIME"
    when.DateTime = "19470415071500"
    m.values["DateTime"] = "19470415071500"
    container = Dataset()
    container.RelationshipType = "CONTAINS"
    container.ValueType = "CONTAINER"
    container.ContentSequence = Sequence([text, person, when])
    ds.ContentSequence = Sequence([container])


def _presentation_text(ds: Dataset, m: Markers, charset: str) -> None:
    ds.ContentLabel = "FAKE"
    ds.ContentDescription = m.text("ContentDescription")
    ds.DocumentTitle = m.text("DocumentTitle")
    segment = Dataset()
    segment.SegmentNumber = 1
    segment.SegmentLabel = m.text("SegmentLabel")
    segment.SegmentDescription = m.text("SegmentDescription")
    ds.SegmentSequence = Sequence([segment])


def _retired_and_command(ds: Dataset, m: Markers, charset: str) -> None:
    ds.add_new(0x00402006, "SH", f"ORDZQ{m.tag}")  # PlacerOrderNumberImagingServiceRequestRetired
    m.values["OrderNumber"] = f"ORDZQ{m.tag}"
    ds.add_new(0x0040A067, "PN", m.name("DocumentAuthorTrial"))
    ds.add_new(0x00000902, "LO", m.text("ErrorComment"))
    ds.add_new(0x00001030, "AE", m.ae("MoveOriginatorAE"))


def _meta_in_dataset(ds: Dataset, m: Markers, charset: str) -> None:
    """File meta elements in the dataset, after a command-group element: kept, they read back as the output's
    file meta."""
    ds.add_new(0x00000902, "LO", m.text("ErrorComment"))
    ds.add_new(0x00020102, "OB", m.text("PrivateInformation").encode("utf-8"))
    ds.add_new(0x00020100, "UI", m.uid("PrivateInformationCreatorUID", 1))


def _issuers_and_uids(ds: Dataset, m: Markers, charset: str) -> None:
    issuer = Dataset()
    issuer.LocalNamespaceEntityID = m.text("LocalNamespaceEntityID")
    issuer.UniversalEntityID = m.uid("UniversalEntityID", 31)
    issuer.UniversalEntityIDType = "ISO"
    ds.IssuerOfPatientIDQualifiersSequence = Sequence([issuer])
    ds.SOPInstanceUIDOfConcatenationSource = m.uid("ConcatenationSource", 32)
    ds.DeidentificationMethod = m.text("DeidentificationMethod")


def _coded_identity(ds: Dataset, m: Markers, charset: str) -> None:
    """A person and an institution named only by codes of a local scheme (an employee number, a clinic's code):
    code values are vocabulary elsewhere, so the sequences that hold them here go whole."""
    def code(role: str, meaning: str) -> Dataset:
        item = Dataset()
        item.CodeValue = f"EMPZQ{m.tag}{role[:2]}"
        m.values[role + "Value"] = item.CodeValue
        item.CodingSchemeDesignator = "99FAKEHR"
        item.CodeMeaning = m.text(meaning)
        return item
    operator = Dataset()
    operator.PersonIdentificationCodeSequence = Sequence([code("Operator", "OperatorMeaning")])
    ds.OperatorIdentificationSequence = Sequence([operator])
    ds.InstitutionCodeSequence = Sequence([code("Institution", "InstitutionMeaning")])
    ds.PersonIdentificationCodeSequence = Sequence([code("Person", "PersonMeaning")])  # (out of its place)


# --- item 6: the gate --------------------------------------------------------------------------------------------


def _ivus(ds: Dataset, m: Markers, charset: str) -> None:
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage
    ds.Modality = "IVUS"
    del ds.BurnedInAnnotation


def _projection(ds: Dataset, m: Markers, charset: str) -> None:
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    ds.Modality = "OT"
    del ds.BurnedInAnnotation


def _embedded_overlay(ds: Dataset, m: Markers, charset: str) -> None:
    ds.add_new(0x60000010, "US", 4)  # OverlayRows
    ds.add_new(0x60000011, "US", 4)  # OverlayColumns
    ds.add_new(0x60000040, "CS", "G")  # OverlayType
    ds.add_new(0x60000050, "SS", [1, 1])  # OverlayOrigin
    ds.add_new(0x60000100, "US", 16)  # OverlayBitsAllocated
    ds.add_new(0x60000102, "US", 12)  # OverlayBitPosition: a bit above BitsStored, no OverlayData
    ds.PixelData = b"\x00\x10" * 16  # bit 12 set: the overlay


class Case(NamedTuple):
    """One class of hiding place: what it plants, and whether full releases the file (False: the gate holds it)."""

    name: str
    kind: str  # "un", "unlisted" or "gate"
    build: Callable[[Dataset, Markers, str], None]
    released: bool = True
    why: str = ""


def _case(name: str, kind: str, build: Callable[[Dataset, Markers, str], None], released: bool = True,
          why: str = "") -> Case:
    return Case(name, kind, build, released, why)


CASES = (
    _case("un-top", "un", _un_top, why="PerformedSeriesSequence stored as UN"),
    _case("un-nested", "un", _un_nested, why="a UN sequence inside an SQ item"),
    _case("un-private", "un", _un_private, why="a private sequence stored as UN"),
    _case("un-unknown-tag", "un", _un_unknown_tag, why="an unknown even tag holding a UN sequence"),
    _case("un-undefined", "un", _un_undefined, why="UN sequences of undefined length, top level and nested"),
    _case("un-xzu", "un", _un_xzu, why="an X/Z/U* sequence stored as UN"),
    _case("un-text", "un", _un_text, why="text attributes stored as UN"),
    _case("sr-content", "unlisted", _sr_content, why="TextValue, PersonName, DateTime in ContentSequence"),
    _case("presentation-text", "unlisted", _presentation_text, why="content, document and segment text"),
    _case("retired-command", "unlisted", _retired_and_command, why="retired and group-0000 elements"),
    _case("issuers-uids", "unlisted", _issuers_and_uids, why="issuer sequence, concatenation UID, old method"),
    _case("gate-ivus", "gate", _ivus, released=False, why="an ultrasound class with Modality IVUS"),
    _case("gate-projection", "gate", _projection, released=False, why="a DX class with Modality OT"),
    _case("gate-overlay", "gate", _embedded_overlay, why="an overlay in unused pixel bits (cleared)"),
    # (added last: a case's place in this list seeds its values, which the recorded outputs hold)
    _case("meta-in-dataset", "unlisted", _meta_in_dataset, why="group-0002 elements after a group-0000 one"),
    _case("coded-identity", "unlisted", _coded_identity, why="operator and institution named by local codes"),
)


def make_case(folder: Path, case: str, encoding: str, charset: str, family: str | None = None,
              ) -> tuple[Path, Markers]:
    """Write one case in one encoding and character set; return its path and its planted values. `family`
    replaces the charset's fake family name (it must be encodable in the charset)."""
    index = next(i for i, c in enumerate(CASES) if c.name == case)
    build = CASES[index].build
    markers = Markers(family or CHARSETS[charset][1], f"{index:02d}{list(CHARSETS).index(charset)}", charset)
    ds = base(charset, markers)
    build(ds, markers, charset)
    path = folder / f"{case}-{encoding}-{charset}.dcm"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_bytes(part10(ds, encoding))
    return path, markers


def _as_read(ds: Dataset, implicit: bool, little: bool) -> None:
    """Mark `ds` and its items as read in the target encoding, so that pydicom writes the planted raw UN
    elements as they are instead of converting them to their dictionary VR."""
    ds.set_original_encoding(implicit, little, ds._character_set)
    for tag in list(ds.keys()):
        element = ds.get_item(tag)
        if isinstance(element, DataElement) and element.VR == "SQ":
            for item in element.value:
                _as_read(item, implicit, little)


def part10(ds: Dataset, encoding: str) -> bytes:
    """`ds` as a Part 10 file in `encoding`, written element by element (pydicom's dcmwrite refuses the
    command-group elements some cases plant in the dataset)."""
    syntax = ENCODINGS[encoding]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = UID(ROOT + "1")
    head = DicomBytesIO()
    head.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(head, meta, enforce_standard=True)
    body = DicomBytesIO()
    body.is_implicit_VR, body.is_little_endian = syntax.is_implicit_VR, syntax.is_little_endian
    ds = correct_ambiguous_vr(ds, syntax.is_little_endian)
    _as_read(ds, syntax.is_implicit_VR, syntax.is_little_endian)
    words = ds.get("PixelData") if not syntax.is_little_endian and ds.get("BitsAllocated") == 16 else None
    if isinstance(words, bytes):  # (made little endian, as `make_dataset` makes it: a big endian file holds it so)
        swapped = bytearray(len(words))
        swapped[0::2], swapped[1::2] = words[1::2], words[0::2]
        ds.PixelData = bytes(swapped)
    try:
        write_dataset(body, ds)
    finally:
        if isinstance(words, bytes):
            ds.PixelData = words
    data = bytes(body.getvalue())
    if not syntax.is_little_endian:
        data = _little_endian_delimiters(data, ds)
    if syntax.is_deflated:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        data = compressor.compress(data) + compressor.flush()
        data += b"\x00" * (len(data) % 2)
    return bytes(head.getvalue()) + data


_DELIMITER = {True: b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", False: b"\xff\xfe\xe0\xdd\x00\x00\x00\x00"}


def _little_endian_delimiters(data: bytes, ds: Dataset) -> bytes:
    """pydicom ends an undefined-length UN with a sequence delimiter in the file's byte order; it is part of the
    UN's implicit VR little endian value (PS3.5 6.2.2)."""
    for tag in ds.keys():
        element = ds.get_item(tag)
        if isinstance(element, RawDataElement) and element.VR == "UN" and element.length == UNDEFINED:
            assert isinstance(element.value, bytes)
            data = data.replace(element.value + _DELIMITER[False], element.value + _DELIMITER[True])
        elif isinstance(element, DataElement) and element.VR == "SQ":
            for item in element.value:
                data = _little_endian_delimiters(data, item)
    return data


def encoded(value: str, charset: str) -> list[bytes]:
    """The byte forms `value` can take in a file of `charset`: the charset's own and ASCII-only parts."""
    codec = convert_encodings([CHARSETS[charset][0] or "ISO_IR 6"])[0]
    forms = {value.encode(codec, "replace"), value.encode("utf-8")}
    # Parts unique to this value (they carry the case number): the shared family name and words are not.
    forms |= {part.encode("ascii") for part in value.replace("^", " ").split()
              if part.isascii() and len(part) >= 6 and any(c.isdigit() for c in part)}
    return sorted(forms)
