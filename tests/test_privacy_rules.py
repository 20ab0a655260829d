"""The rules of `full` against adversarial files (tests/adversarial.py): every planted value gone, files released.

Each class of hiding place (sequences stored as UN, text/dates/UIDs outside PS3.15 Table E.1-1, the burned-in
gate) is written in four encodings and three character sets, run through the pipeline, and the output bytes are
searched for every planted value in every byte form it can take. Assertion messages name cases and roles, never
values.
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom._dicom_dict import DicomDictionary
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from neuroanon import engine
from neuroanon.burnedin import RISKY_CLASSES, burned_in_risk
from neuroanon.options import PRESETS, Level, Options
from neuroanon.pipeline import anonymize_file, anonymize_tree
from neuroanon.profile import explain, render_rules
from neuroanon.ps315 import load_table
from neuroanon.read import parses_as_sequence, quiet, read_header
from neuroanon.report import Record, Status
from neuroanon.rules import TEXT_VRS, full_action, unlisted_action
from neuroanon.sample import make_dataset, make_study
from neuroanon.technical import TECHNICAL, technical
from neuroanon.verify import load_originals, verify

from .adversarial import (
    CASES,
    CHARSETS,
    ENCODINGS,
    MR_IMAGE,
    ROOT,
    Case,
    add_un,
    encoded,
    five_item,
    make_case,
    part10,
    un_bytes,
)
from .helpers import files_under, searchable_bytes
from .pixelfixtures import segment as jpeg_segment
from .pixelfixtures import thumbnail
from .tools import require_tool

KEY = b"privacy-rules-test-key-0123456789"
FULL = Options(level=Level.FULL, key=KEY)
FIVE_ROLES = ("PatientName", "ItemPatientName", "ReferringPhysicianName", "OperatorsName", "PerformingPhysicianName",
              "PatientBirthDate", "ItemBirthDate")


COMBOS = [(case, encoding, charset) for case in CASES for encoding in sorted(ENCODINGS) for charset in sorted(CHARSETS)]


def _leaks(data: bytes, values: dict[str, str], charset: str, roles: tuple[str, ...] | None = None) -> list[str]:
    """The roles whose planted value occurs in `data` in any of its byte forms."""
    found = []
    for role, value in values.items():
        if roles is not None and role not in roles:
            continue
        if any(form in data for form in encoded(value, charset)):
            found.append(role)
    return found


@pytest.mark.parametrize(("case", "encoding", "charset"), COMBOS, ids=lambda x: getattr(x, "name", x))
def test_full_leaves_no_planted_value(case: Case, encoding: str, charset: str, tmp_path: Path) -> None:
    name = case.name
    source, markers = make_case(tmp_path / "in", name, encoding, charset)
    with quiet():  # pydicom warns when it reads the command-group elements some cases plant
        assert _leaks(searchable_bytes(source), markers.values, charset), "the fixture plants nothing findable"
    record = anonymize_file(source, tmp_path / "out", Options(level=Level.FULL, key=KEY,
                                                              quarantine=tmp_path / "held"))
    if not case.released:
        assert record.status is Status.QUARANTINED, f"{name}: {record.status} ({record.reason})"
        assert "burned-in" in record.reason or "embedded in unused pixel bits" in record.reason
        assert not files_under(tmp_path / "out"), "a gated file was released"
        return
    assert record.status is Status.WRITTEN, f"{name}: {record.status} ({record.reason})"
    (out,) = files_under(tmp_path / "out")
    leaks = _leaks(searchable_bytes(out), markers.values, charset)
    assert not leaks, f"{name} {encoding} {charset}: planted values survive: {leaks}"
    with quiet():
        ds = pydicom.dcmread(out)
    assert ds.SOPClassUID == MR_IMAGE, "a SOP class UID must be kept"
    assert ds.file_meta.TransferSyntaxUID == ENCODINGS[encoding]
    if name == "gate-overlay":  # no bit above the 12 stored is left
        order = ">" if encoding == "explicit_be" else "<"
        words = struct.unpack(f"{order}{len(ds.PixelData) // 2}H", ds.PixelData)
        assert not any(w >> 12 for w in words), "an embedded overlay's bit is left"
    dump = subprocess.run([require_tool("dcmdump"), "-q", "+E", str(out)], capture_output=True, timeout=60)
    assert dump.returncode == 0, f"{name}: dcmtk cannot read the output"


# Letters each character set can write; a family name drawn from them must vanish from full output.
_LETTERS = {"ascii": "abcdefghijklmnopqrstuvwxyz", "latin1": "abcdefghijklmnopqrstuvwxyzäöüéèßñ",
            "utf8": "abcdefghijklmnopqrstuvwxyzäöüłžœđşğ"}


@st.composite
def _combos(draw: st.DrawFn) -> tuple[Case, str, str, str]:
    case, encoding, charset = draw(st.sampled_from([c for c in COMBOS if c[0].released]))
    family = draw(st.text(_LETTERS[charset], min_size=4, max_size=12)).title()
    return case, encoding, charset, family


@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(_combos())
def test_property_no_planted_value_survives_full(combo: tuple[Case, str, str, str]) -> None:
    """Any family name, any released case, any encoding and character set: nothing planted survives full."""
    case, encoding, charset, family = combo
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        source, markers = make_case(root / "in", case.name, encoding, charset, family)
        record = anonymize_file(source, root / "out", FULL)
        assert record.status is Status.WRITTEN, f"{case.name}: {record.status} ({record.reason})"
        (out,) = files_under(root / "out")
        data = searchable_bytes(out)
        leaks = _leaks(data, markers.values, charset)
        codec = "latin-1" if charset == "latin1" else "utf-8"
        assert not leaks and f"{family}^".encode(codec) not in data, f"{case.name} {encoding} {charset}: {leaks}"


@pytest.mark.parametrize("charset", sorted(CHARSETS))
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("case", [c for c in CASES if c.kind == "un"], ids=lambda c: c.name)
def test_anonymize_replaces_the_five_inside_un_sequences(case: Case, encoding: str, charset: str,
                                                         tmp_path: Path) -> None:
    name = case.name
    source, markers = make_case(tmp_path / "in", name, encoding, charset)
    record = anonymize_file(source, tmp_path / "out", Options(level=Level.ANONYMIZE))
    assert record.status is Status.WRITTEN, f"{name}: {record.status} ({record.reason})"
    (out,) = files_under(tmp_path / "out")
    leaks = _leaks(searchable_bytes(out), markers.values, charset, FIVE_ROLES)
    assert not leaks, f"{name} {encoding} {charset}: the five survive: {leaks}"
    # Everything but the five is kept: the UN sequence's other content is still there.
    kept = [r for r in markers.values if r not in FIVE_ROLES and r not in ("PatientID",)]
    assert set(_leaks(searchable_bytes(out), markers.values, charset, tuple(kept))) == set(kept)


def _pydicom_reads(path: Path, values: dict[str, str]) -> bool:
    """Whether pydicom alone reads the planted ErrorComment or the UN sequence's OperatorsName."""
    try:
        with quiet():
            ds = pydicom.dcmread(path, force=True)
            if "ErrorComment" in values:
                return bool(ds[0x00000902].value == values["ErrorComment"])
            return str(ds[0x00400340].value[0].OperatorsName) == values["OperatorsName"]
    except Exception:
        return False


@pytest.mark.parametrize("level", [Level.ANONYMIZE, Level.FULL], ids=str)
@pytest.mark.parametrize("case", ["retired-command", "un-undefined"])
def test_big_endian_forms_pydicom_misreads(case: str, level: Level, tmp_path: Path) -> None:
    """Explicit VR Big Endian with command-group elements in the dataset (pydicom reads group 0000 as implicit
    VR little endian), or with UN sequences of undefined length at the top and inside an item (pydicom reads
    their items in big endian): read, released, and cleaned as the level says."""
    source, markers = make_case(tmp_path / "in", case, "explicit_be", "latin1")
    assert not _pydicom_reads(source, markers.values), "pydicom alone reads this file: the fixture tests nothing"
    summary = anonymize_tree([tmp_path / "in"], tmp_path / "out", Options(level=level, key=KEY))
    assert summary.counts == {"written": 1}, summary.reasons
    (out,) = files_under(tmp_path / "out")
    data = out.read_bytes()
    leaks = _leaks(data, markers.values, "latin1", None if level is Level.FULL else FIVE_ROLES)
    assert not leaks, f"{case} {level}: planted values survive: {leaks}"
    dump = subprocess.run([require_tool("dcmdump"), "-q", "+E", str(out)], capture_output=True, timeout=60)
    assert dump.returncode == 0 and not dump.stderr, f"{case}: dcmtk cannot read the output"
    with quiet():
        ds = read_header(out).dataset
    assert ds.SOPClassUID == MR_IMAGE and ds.PatientID and ds.file_meta.TransferSyntaxUID == ENCODINGS["explicit_be"]
    if case == "un-undefined":  # the UN sequences opened and cleaned (full removes the nested one's parent)
        items = [ds[0x00400340].value[0]]
        if level is Level.ANONYMIZE:
            items.append(ds.RequestAttributesSequence[0][0x00400340].value[0])
        assert all(item.OperatorsName == "Anon" for item in items)
    if level is Level.FULL:
        assert not [tag for tag in ds.keys() if tag >> 16 == 0], "group 0000 elements kept at full"
        with quiet():
            assert pydicom.dcmread(out).PatientID == ds.PatientID
    elif case == "retired-command":  # anonymize changes only the five: the command-group elements stay
        assert ds.ErrorComment == markers.values["ErrorComment"]
    else:
        with quiet():
            assert pydicom.dcmread(out).PatientID == ds.PatientID


@pytest.mark.parametrize("pixels", [True, False], ids=["pixels", "no-pixels"])
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_anonymize_keeps_command_group_elements_in_any_encoding(encoding: str, pixels: bool, tmp_path: Path) -> None:
    """A file pydicom's dcmwrite refuses (command-group elements in the dataset) and the writer cannot copy around
    its pixel data (deflated, or none): written whole, the five replaced, the rest kept."""
    source, markers = make_case(tmp_path / "in", "retired-command", encoding, "utf8")
    if not pixels:
        with quiet():
            ds = read_header(source).dataset  # without its pixel data (unless deflated: read whole)
        ds.pop(0x7FE00010, None)
        source.write_bytes(part10(ds, encoding))
    record = anonymize_file(source, tmp_path / "out", Options(level=Level.ANONYMIZE))
    assert record.status is Status.WRITTEN, f"{record.status} ({record.reason})"
    (out,) = files_under(tmp_path / "out")
    assert not _leaks(searchable_bytes(out), markers.values, "utf8", FIVE_ROLES)
    dump = subprocess.run([require_tool("dcmdump"), "-q", "+E", str(out)], capture_output=True, timeout=60)
    assert dump.returncode == 0 and not dump.stderr, "dcmtk cannot read the output"
    with quiet():
        header = read_header(out)
    ds = header.dataset
    assert ds.ErrorComment == markers.values["ErrorComment"] and ds.PatientName == "Anon"
    assert (header.pixels is not None or "PixelData" in ds) is pixels


def test_un_sequence_opened_and_walked_at_full(tmp_path: Path) -> None:
    """The X/Z/U* sequence stored as UN is walked: its instance UID remapped, its class UID kept."""
    source, markers = make_case(tmp_path / "in", "un-xzu", "explicit_le", "ascii")
    assert anonymize_file(source, tmp_path / "out", FULL).status is Status.WRITTEN
    (out,) = files_under(tmp_path / "out")
    with quiet():
        item = pydicom.dcmread(out).ReferencedImageSequence[0]
    assert item.ReferencedSOPClassUID == MR_IMAGE
    assert str(item.ReferencedSOPInstanceUID).startswith("2.25.")


@pytest.mark.parametrize("level", [Level.ANONYMIZE, Level.FULL], ids=str)
def test_any_attribute_stored_as_un_is_handled(level: Level, tmp_path: Path) -> None:
    """Whatever a UN value holds (a wrong length for its dictionary VR, a UID, bytes that are no sequence under a
    sequence tag), the file is released; at full nothing unproven stays."""
    source, markers = make_case(tmp_path / "in", "un-text", "explicit_le", "ascii")
    with quiet():
        ds = pydicom.dcmread(source)
    add_un(ds, 0x00181310, b"\x01\x00\x02")  # AcquisitionMatrix (US, 4 values): 3 bytes
    add_un(ds, 0x00200242, f"{ROOT}77.1".encode() + b"\x00")  # SOPInstanceUIDOfConcatenationSource
    add_un(ds, 0x00081115, b"Quuxley^Zebedee-no-sequence!")  # ReferencedSeriesSequence: bytes that are not one
    add_un(ds, 0x00181000, b"SERIALZQ77")  # DeviceSerialNumber (table X) stored as UN
    source.write_bytes(part10(ds, "explicit_le"))
    record = anonymize_file(source, tmp_path / "out", Options(level=level, key=KEY))
    assert record.status is Status.WRITTEN, f"{record.status} ({record.reason})"
    if level is Level.FULL:
        (out,) = files_under(tmp_path / "out")
        data = out.read_bytes()
        for planted in (f"{ROOT}77.1".encode(), b"no-sequence", b"SERIALZQ77"):
            assert planted not in data
        assert not _leaks(data, markers.values, "ascii")


def test_required_text_stays_present_as_a_dummy(tmp_path: Path) -> None:
    """Free text an IOD requires (SR TextValue, SegmentLabel) becomes a dummy; optional free text goes."""
    for case in ("sr-content", "presentation-text"):
        source, _ = make_case(tmp_path / case, case, "explicit_le", "ascii")
        assert anonymize_file(source, tmp_path / case / "out", FULL).status is Status.WRITTEN
        (out,) = files_under(tmp_path / case / "out")
        with quiet():
            ds = pydicom.dcmread(out)
        if case == "sr-content":
            text, person, when = ds.ContentSequence[0].ContentSequence
            assert text.TextValue == "Anon" and person.PersonName == "Anon"
            assert when.DateTime.startswith("1000")
        else:
            assert ds.SegmentSequence[0].SegmentLabel == "Anon"
            assert "SegmentDescription" not in ds.SegmentSequence[0]
            assert ds.DocumentTitle in ("", None)
            assert ds.ContentDescription in ("", None)


@pytest.mark.parametrize("encoding", ["explicit_le", "explicit_be", "deflated"])
def test_engine_opens_un_sequences(encoding: str, tmp_path: Path) -> None:
    """The engine opens a sequence stored as UN and decides its items, at both levels (test_golden holds its output
    to the release's). (In implicit VR there is no UN: the same bytes are a plain sequence.)"""
    source, _ = make_case(tmp_path, "un-top", encoding, "ascii")
    for options in (FULL, Options(level=Level.ANONYMIZE)):
        with quiet():
            plan = engine.plan(source, options)
        assert isinstance(plan, engine.Plan)
        assert any(c.tag.startswith("(0040,0340)[0].") for c in plan.changes)


def test_parses_as_sequence_is_strict() -> None:
    item = Dataset()
    item.PatientName = "Fake^Name"
    value = un_bytes(item, 0x00400340, "ascii")
    assert parses_as_sequence(value)
    assert not parses_as_sequence(value[:-1])
    assert not parses_as_sequence(value + b"\x00\x00")
    assert not parses_as_sequence(b"Fake^Name ")
    assert not parses_as_sequence(b"")
    undefined = b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + value[8:] + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
    assert parses_as_sequence(undefined)
    assert not parses_as_sequence(undefined[:-8])


# --- the stance, as rules ------------------------------------------------------------------------------------------


def test_unlisted_attributes_follow_the_stance() -> None:
    table = load_table()
    cases = {
        "TextValue": "D", "DocumentTitle": "Z", "GraphicLayerDescription": "X",
        "MIMETypeOfEncapsulatedDocument": "K", "ContentDescription": "Z", "SegmentDescription": "X",
        "SOPInstanceUIDOfConcatenationSource": "U", "SOPClassUID": "K", "DeidentificationMethod": "K",
        "ImageType": "K", "Manufacturer": "K", "SequenceName": "K", "Rows": "K", "ContentSequence": "D",
        "PlacerOrderNumberImagingServiceRequestRetired": "X", "ErrorComment": "X", "RequestedSOPInstanceUID": "X",
        "CommandField": "X",
    }
    for keyword, expected in cases.items():
        tag = pydicom.datadict.tag_for_keyword(keyword)
        assert tag is not None
        assert full_action(tag, table.lookup(tag), FULL)[0] == expected, keyword
    clean = Options(level=Level.FULL, key=KEY, clean_descriptors=True)
    assert unlisted_action(0x00420010, clean)[0] == "C"  # DocumentTitle cleaned under Clean Descriptors
    # found from outside: text that names an identity was cleaned there, and cleaning takes out only the file's
    # own values: a contact's name and e-mail, a registry number, a file's name, a birth date in another calendar
    for keyword in ("ContactDisplayName", "ContactURI", "BreedRegistrationNumber", "FilenameInContainer",
                    "PatientBirthDateInAlternativeCalendar", "PatientDeathDateInAlternativeCalendar", "OwnerID",
                    "LocalNamespaceEntityID", "HL7InstanceIdentifier", "StorageURL", "HangingProtocolCreator",
                    "RadiationMachineName", "TimeSource", "SensorName", "DisplaySubsystemName", "DataSetSource",
                    "WorklistLabel", "ProcedureStepLabel", "FilmSessionLabel", "DeletionLock",
                    "CommentsOnTheScheduledProcedureStep"):
        tag = pydicom.datadict.tag_for_keyword(keyword)
        assert tag is not None and load_table().lookup(tag) is None, keyword
        assert unlisted_action(tag, clean)[0] == "X", keyword
    for keyword in ("ReconstructionDescription", "ASLCrusherDescription", "AcquisitionProtocolName",
                    "FunctionalGroupPrivateCreator", "DimensionIndexPrivateCreator", "ContrastBolusRoute"):
        tag = pydicom.datadict.tag_for_keyword(keyword)
        assert tag is not None and unlisted_action(tag, clean)[0] == "C", keyword


@pytest.mark.parametrize("clean", [False, True])
def test_encrypted_attributes_and_a_signature_are_removed_at_full(tmp_path: Path, clean: bool) -> None:
    """Found from outside: PS3.15's envelope of the original values, encrypted, with its recipient's certificate
    naming the site in clear, was kept at full (a binary value the table does not list); so was a Signature."""
    ds = make_dataset(subject=3)
    clear = b"CN=Radiology Research PACS, O=Wobbleford Marsh Infirmary"  # as a certificate holds it, in clear
    envelope = Dataset()
    envelope.EncryptedContentTransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    envelope.EncryptedContent = b"\x30\x82\x02\x10" + clear + bytes(range(256))
    ds.EncryptedAttributesSequence = [envelope]
    ds.add_new(0x04000120, "OB", b"signed by " + clear)  # a Signature outside its sequence
    purpose = Dataset()  # (its coded purpose, free text in CodeMeaning)
    purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning = "1", "ASTM-sigpurpose", "Author Wobbleford"
    ds.DigitalSignaturePurposeCodeSequence = [purpose]
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    record = anonymize_file(source, tmp_path / "out", Options(level=Level.FULL, key=KEY, clean_descriptors=clean))
    assert record.status is Status.WRITTEN, record.reason
    written = (tmp_path / "out" / str(record.output)).read_bytes()
    assert b"Wobbleford" not in written and b"\x00\x04\x00\x05" not in written and b"\x00\x04\x20\x01" not in written
    out = pydicom.dcmread(tmp_path / "out" / str(record.output))
    assert 0x04000500 not in out and 0x04000120 not in out and 0x04000401 not in out


def test_unlisted_text_naming_an_identity_is_removed_under_the_bids_preset(tmp_path: Path) -> None:
    """Found from outside: under Clean Descriptors these were cleaned, which takes out only the file's own values,
    and released whole; at plain full they were removed."""
    ds = make_dataset(subject=4)
    planted = {
        "PatientBirthDateInAlternativeCalendar": "1365/12/23", "PatientDeathDateInAlternativeCalendar": "14450702",
        "BreedRegistrationNumber": "KC-AV4471QZ", "FilenameInContainer": "zmq_1987_brainMRI_ward7.dcm",
    }
    for keyword, value in planted.items():
        setattr(ds, keyword, value)
    contact = Dataset()
    contact.ContactDisplayName = "Ignatius Pemberton-Vole"
    contact.ContactURI = "mailto:ipvole@example.org"
    ds.add_new(0x00741008, "SQ", [contact])  # (a procedure step's progress parameters hold the contact)
    ds.ReconstructionDescription = "kept when cleaned"
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    bids = Options(level=Level.FULL, key=KEY, clean_descriptors=True, shift_dates=True,
                   retain_patient_characteristics=True, cap_ages=True)
    assert all(getattr(bids, switch) == on for switch, on in PRESETS["bids"].items())
    record = anonymize_file(source, tmp_path / "out", bids)
    assert record.status is Status.WRITTEN, record.reason
    written = (tmp_path / "out" / str(record.output)).read_bytes()
    for value in (*planted.values(), "Pemberton", "ipvole"):
        assert value.encode() not in written, value
    assert b"kept when cleaned" in written, "a description is still cleaned, not removed"


def test_technical_allow_list_is_reviewed() -> None:
    """Each entry has a reason, is outside the table (else it would be dead), and keeps no person name."""
    table = load_table()
    assert len(TECHNICAL) > 40
    for tag, entry in TECHNICAL.items():
        assert entry.why and entry.action in ("K", "D", "Z"), entry.keyword
        assert table.lookup(tag) is None, f"{entry.keyword} is in Table E.1-1: the table decides"
        vr = str(dictionary_VR(tag))
        assert vr != "PN", entry.keyword
        assert vr in TEXT_VRS | {"UI", "DT"}, f"{entry.keyword}: a {vr} is kept without a list"
        assert keyword_for_tag(tag) == entry.keyword


def test_table_is_2026c_and_explain_shows_the_stance() -> None:
    table = load_table()
    assert table.edition == "2026c"
    for tag, action in ((0x00700006, "D"), (0x00181010, "X"), (0x00181011, "X"), (0x300A0054, "U"),
                        (0x0040B020, "X/D")):
        entry = table.lookup(tag)
        assert entry is not None and entry.basic == action and entry.edition == "2026c"
    text = render_rules(explain(Level.FULL, FULL))
    assert "edition 2026c" in text
    assert "| (not in table) | text: AE LO LT PN SH ST UC UR UT | X |" in text
    assert "| (0008,0070) | Manufacturer | K |" in text
    assert "sequence stored as VR UN" in text


# --- the gate ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sop_class", [
    "1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.3.1", "1.2.840.10008.5.1.4.1.1.6.2",
    "1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1.2",
    "1.2.840.10008.5.1.4.1.1.1.3", "1.2.840.10008.5.1.4.1.1.12.1", "1.2.840.10008.5.1.4.1.1.12.2",
    "1.2.840.10008.5.1.4.1.1.13.1.3", "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.4",
    "1.2.840.10008.5.1.4.1.1.77.1.4", "1.2.840.10008.5.1.4.1.1.77.1.6", "1.2.840.10008.5.1.4.1.1.104.1",
    "1.2.840.10008.5.1.4.1.1.481.1", "1.2.840.10008.5.1.4.1.1.14.1", "1.2.840.10008.5.1.4.1.1.14.2",
])
def test_gate_by_sop_class_whatever_the_modality(sop_class: str) -> None:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.Modality = "MR"
    assert burned_in_risk(ds) is not None
    ds.BurnedInAnnotation = "NO"
    assert burned_in_risk(ds) is None


@pytest.mark.parametrize("sop_class", [MR_IMAGE, "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4.1",
                                       "1.2.840.10008.5.1.4.1.1.128", "1.2.840.10008.5.1.4.1.1.30"])
def test_gate_leaves_tomographic_classes_alone(sop_class: str) -> None:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.Modality = "MR"
    assert burned_in_risk(ds) is None
    assert all(not sop_class.startswith(prefix + ".") and sop_class != prefix for prefix in RISKY_CLASSES)


@pytest.mark.parametrize("modality", ["US", "IVUS", "XA", "RF", "CR", "DX", "MG", "IO", "PX", "SM", "OP", "RTIMAGE",
                                      "IVOCT"])
def test_gate_by_modality(modality: str) -> None:
    ds = Dataset()
    ds.SOPClassUID = MR_IMAGE
    ds.Modality = modality
    assert burned_in_risk(ds) is not None


@pytest.mark.parametrize(("header", "reason"), [
    ({"BurnedInAnnotation": "YES"}, "BurnedInAnnotation is YES"),
    ({"Modality": "US"}, "modality US without BurnedInAnnotation NO"),
    ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, "SOP class of secondary capture without BurnedInAnnotation NO"),
    ({"ImageType": ["DERIVED", "SECONDARY", "SCREEN SAVE"]}, "screen save without BurnedInAnnotation NO"),
    ({"ConversionType": "WSD"}, "screen save without BurnedInAnnotation NO"),
    ({"ImageType": ["DERIVED", "SECONDARY", "SCREENSAVE"]}, "screen save without BurnedInAnnotation NO"),
    ({"RecognizableVisualFeatures": "YES", "BurnedInAnnotation": "NO"},
     "RecognizableVisualFeatures is YES (a face or another feature that identifies)"),
    ({"RecognizableVisualFeatures": "NO"}, None),
    ({"Modality": "US", "BurnedInAnnotation": "NO"}, None),
    ({}, None),
    ({"Modality": ["OT", "MR"]}, "modality OT without BurnedInAnnotation NO"),
    ({"BurnedInAnnotation": ["NO", "YES"]}, "BurnedInAnnotation is neither YES nor NO"),
    ({"BurnedInAnnotation": "MAYBE"}, "BurnedInAnnotation is neither YES nor NO"),
    ({"BurnedInAnnotation": "no"}, None),
])
@pytest.mark.parametrize("encoding", ["explicit_le", "implicit_le", "explicit_be"])
def test_gate_on_the_header_as_the_engine_reads_it(header: dict[str, object], reason: str | None, encoding: str,
                                                    tmp_path: Path) -> None:
    """The gate's reasons on a header read raw (the engine's view, whose reasons are derived once per series from
    the elements they need) equal those on the header decoded: an element the gate reads is never left out."""
    path = make_study(tmp_path, subject=21, n_series=1, n_instances=1, encoding=encoding)[0]
    ds = pydicom.dcmread(path)
    ds.SpecificCharacterSet = "ISO_IR 100"
    for keyword in ("BurnedInAnnotation", "ConversionType", "RecognizableVisualFeatures"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.Modality, ds.SOPClassUID, ds.ImageType = "MR", MR_IMAGE, ["ORIGINAL", "PRIMARY"]
    for keyword, value in header.items():
        setattr(ds, keyword, value)
    with quiet():
        ds.save_as(path, enforce_file_format=True)
        plan = engine.plan(path, FULL)
        decoded = burned_in_risk(pydicom.dcmread(path))
    assert isinstance(plan, engine.Plan)
    assert plan.context.burned_in_risk == decoded == reason


@pytest.mark.parametrize("encoding", ["explicit_le", "implicit_le", "explicit_be", "deflated"])
@pytest.mark.parametrize(("burned_in", "held"), [(None, True), ("NO", False)])
@pytest.mark.parametrize("named", ["absent", "empty"])
def test_a_class_named_only_in_the_file_meta_is_gated(encoding: str, burned_in: str | None, held: bool, named: str,
                                                      tmp_path: Path) -> None:
    """A secondary capture whose dataset has neither SOPClassUID nor Modality, or an empty SOPClassUID beside an MR
    Modality (found from outside: released with burned-in text): its file meta names the class."""
    path = make_study(tmp_path / "in", subject=22, n_series=1, n_instances=1, encoding=encoding)[0]
    ds = pydicom.dcmread(path)
    del ds.SOPClassUID, ds.Modality
    if named == "empty":
        ds.SOPClassUID, ds.Modality = "", "MR"
    if "BurnedInAnnotation" in ds:
        del ds.BurnedInAnnotation
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
    with quiet():
        ds.save_as(path)
        decoded = burned_in_risk(pydicom.dcmread(path))
    reason = "SOP class of secondary capture (named in the file meta) without BurnedInAnnotation NO"
    assert decoded == (reason if held else None)
    record = anonymize_file(path, tmp_path / "out", FULL)
    assert record.status is (Status.QUARANTINED if held else Status.WRITTEN), record.reason
    assert (reason in record.reason) is held


@pytest.mark.parametrize(("raw", "held"), [(b"\x00YES", True), ("YES".encode("utf-16-le"), True), (b"NO\\YES", True),
                                           (b"YES\x00", True), (b"NO\x00", False), (b"no ", False)])
def test_a_burned_in_annotation_neither_yes_nor_no_holds_the_file(raw: bytes, held: bool, tmp_path: Path) -> None:
    """A BurnedInAnnotation that says neither YES nor NO (NUL before it, UTF-16, two values) says the pixels may
    show text: it was read as absent, and an MR with text burned in was released (found from outside)."""
    path = make_study(tmp_path / "in", subject=24, n_series=1, n_instances=1)[0]
    ds = pydicom.dcmread(path)
    ds.add_new(0x00280301, "CS", raw)
    with quiet():
        ds.save_as(path)
    record = anonymize_file(path, tmp_path / "out", FULL)
    assert record.status is (Status.QUARANTINED if held else Status.WRITTEN), record.reason
    assert ("BurnedInAnnotation" in record.reason) is held, record.reason


@pytest.mark.parametrize("encoding", ["explicit_le", "implicit_le", "explicit_be", "deflated"])
@pytest.mark.parametrize(("after", "held"), [(b"Quxworth^Zelda ZQ-4471-0093 19610203", True), (bytes(36), False),
                                             (b"", False)])
def test_bytes_after_the_frames_of_native_pixel_data_hold_the_file_back(encoding: str, after: bytes, held: bool,
                                                                        tmp_path: Path) -> None:
    """Bytes past Rows x Columns x samples x bits x frames show in no image and are read by no check."""
    path = make_study(tmp_path / "in", subject=23, n_series=1, n_instances=1, encoding=encoding)[0]
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData + after
    with quiet():
        ds.save_as(path)
    record = anonymize_file(path, tmp_path / "out", FULL)
    assert record.status is (Status.QUARANTINED if held else Status.WRITTEN), record.reason
    assert ("pixel data holds 36 bytes that no frame shows" in record.reason) is held


def test_embedded_overlay_held_even_with_burned_in_no() -> None:
    ds = Dataset()
    ds.SOPClassUID = MR_IMAGE
    ds.Modality = "MR"
    ds.BurnedInAnnotation = "NO"
    ds.BitsStored = 12
    ds.add_new(0x60020102, "US", 12)
    assert "embedded" in (burned_in_risk(ds) or "")
    ds.add_new(0x60023000, "OW", b"\x00\x00")
    ds[0x60020102].value = 0
    assert burned_in_risk(ds) is None, "a separate overlay (OverlayData, bit 0) is removed with its group"


def _with_embedded_overlay(syntax: str, signed: bool, high_bit: int = 11) -> Dataset:
    """An 8x8 MR image of 12 stored bits whose overlay 6000 lies in bit 15 (no OverlayData), drawn over half the
    image; its values span the stored range (negative ones too when `signed`)."""
    ds = make_dataset(subject=3, series=1, rows=8, columns=8)
    ds.BurnedInAnnotation = "NO"
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, high_bit, int(signed)
    for tag in [t for t in ds.keys() if t >> 16 & 0xFF00 == 0x6000]:
        del ds[tag]
    ds.add_new(0x60000102, "US", 15)  # OverlayBitPosition above BitsStored, no OverlayData
    values = [(i * 97) % 4096 for i in range(64)]
    if signed:
        values = [v - 4096 if v >= 2048 else v for v in values]  # sign-extended to 16 bits
    words = [(v & 0xFFFF) | (0x8000 if i < 32 else 0) for i, v in enumerate(values)]  # the overlay in bit 15
    ds.file_meta.TransferSyntaxUID = pydicom.uid.UID(syntax)
    ds.PixelData = struct.pack((">" if syntax == pydicom.uid.ExplicitVRBigEndian else "<") + "64H", *words)
    return ds


@pytest.mark.parametrize("syntax", [pydicom.uid.ExplicitVRLittleEndian, pydicom.uid.ImplicitVRLittleEndian,
                                    pydicom.uid.ExplicitVRBigEndian], ids=lambda s: pydicom.uid.UID(s).name)
@pytest.mark.parametrize("signed", [False, True])
def test_full_clears_an_overlay_embedded_in_unused_pixel_bits(tmp_path: Path, syntax: str, signed: bool) -> None:
    """The design's full removes overlays, those embedded in pixel data's unused bits too: in native 16-bit pixel
    data their bits are cleared (a signed value sign-extended from its high bit, as decoders read it) and the file
    is released (found from outside: it was held back); the stored values are unchanged."""
    ds = _with_embedded_overlay(syntax, signed)
    source = tmp_path / "in.dcm"
    with quiet():
        pydicom.dcmwrite(source, ds, implicit_vr=syntax == pydicom.uid.ImplicitVRLittleEndian,
                         little_endian=syntax != pydicom.uid.ExplicitVRBigEndian, force_encoding=True)
    ds = pydicom.dcmread(source)
    record = anonymize_file(source, tmp_path / "out", FULL)
    assert record.status is Status.WRITTEN, record.reason
    assert ("(7FE0,0010)", "unused bits cleared (an overlay embedded in them)") in {
        (c.tag, c.action) for c in record.changes}
    (written,) = files_under(tmp_path / "out")
    out = pydicom.dcmread(written)
    assert out.file_meta.TransferSyntaxUID == syntax
    assert (out.pixel_array == ds.pixel_array).all(), "the stored values changed"
    order = ">" if syntax == pydicom.uid.ExplicitVRBigEndian else "<"
    words = struct.unpack(f"{order}64H", out.PixelData)
    assert not any(w & 0x8000 for w in words) if not signed else all(
        (w >> 11 & 1) == (w >> 15 & 1) for w in words), "an overlay bit is left"
    assert words != struct.unpack(f"{order}64H", ds.PixelData)


@pytest.mark.parametrize("syntax", [pydicom.uid.ExplicitVRLittleEndian, pydicom.uid.ExplicitVRBigEndian],
                         ids=lambda s: pydicom.uid.UID(s).name)
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("high_bit", [11, 15])
def test_bits_outside_the_stored_ones_without_an_overlay_hold_the_file_back(tmp_path: Path, syntax: str,
                                                                            signed: bool, high_bit: int) -> None:
    """Bits no image shows, with no overlay declared in them (found from outside: the name in the high byte of each
    value was released, and verify called it clean; a tool that removed group 60xx leaves an embedded overlay so).
    Values that span the stored range, a signed one's sign copied into the bits above, are released; one bit more
    holds the file back, and verify names it."""
    ds = _with_embedded_overlay(syntax, signed, high_bit)
    del ds[0x60000102]
    order = ">" if syntax == pydicom.uid.ExplicitVRBigEndian else "<"
    words = struct.unpack(f"{order}64H", ds.PixelData)
    if high_bit == 15:
        clean = [(w & 0xFFF) << 4 for w in words]
    else:  # (the overlay's bit 15 made a copy of the sign, or cleared)
        clean = [w & 0x7FFF | (w & 0x0800) << 4 if signed else w & 0xFFF for w in words]
    for name, values in (("clean", clean), ("set", [clean[0] ^ (0x2000 if high_bit == 11 else 0x1), *clean[1:]])):
        ds.PixelData = struct.pack(f"{order}64H", *values)
        source = tmp_path / name / "in.dcm"
        source.parent.mkdir()
        with quiet():
            pydicom.dcmwrite(source, ds, little_endian=syntax != pydicom.uid.ExplicitVRBigEndian, implicit_vr=False,
                             force_encoding=True)
        held = tmp_path / name / "held"
        record = anonymize_file(source, tmp_path / name / "out", Options(level=Level.FULL, key=KEY, quarantine=held))
        if name == "clean":
            assert record.status is Status.WRITTEN, record.reason
            continue
        assert record.status is Status.QUARANTINED, record.reason
        assert "bits outside the stored ones (1 value;" in record.reason, record.reason
        (result,) = verify(files_under(held), FULL)
        assert any("bits outside the stored ones" in finding for finding in result.findings), result.findings


@pytest.mark.parametrize(("path", "keyword", "value"), [
    ((), "LastMenstrualDate", "19991231"), ((), "StudyVerifiedDate", "19991231"),
    ((), "PerformedProcedureStepEndDate", "19991231"), ((), "DecayCorrectionDateTime", "19991231235000+0100"),
    ((), "DateOfLastCalibration", "19991231"), (("ReferencedStudySequence",), "StudyDate", "19991231"),
    (("RequestAttributesSequence",), "ScheduledProcedureStepStartDate", "19991231"),
    (("ContentSequence",), "DateTime", "19991231120000"), (("AcquisitionContextSequence",), "Date", "19991231"),
    (("PerFrameFunctionalGroupsSequence", "FrameContentSequence"), "InstanceCreationDate", "19991231"),
])
@pytest.mark.parametrize("stored_as", ["own VR", "UN", "LO"])
def test_every_date_the_file_holds_is_searched_for_at_any_depth(tmp_path: Path, path: tuple[str, ...], keyword: str,
                                                                value: str, stored_as: str) -> None:
    """Each date or date-time (its date) that full removes or replaces, at the top level or in an item at any depth,
    stored with its VR, as UN or under another VR (LO): its copy in a kept value holds the file (found from outside:
    dates outside a list of them were released, one list after another; then one written as LO). verify finds it
    too."""
    ds = make_dataset(subject=63)
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20240115"
    ds.ImageType = ["DERIVED", "PRIMARY", "1999-12-31"]
    item = Dataset()
    tag = int(pydicom.datadict.tag_for_keyword(keyword) or 0)
    if stored_as == "own VR":
        setattr(item, keyword, value)
    else:
        item.add_new(tag, stored_as, value.encode() if stored_as == "UN" else value)
    for sequence in reversed(path):
        outer = Dataset()
        setattr(outer, sequence, [item])
        item = outer
    for element in item:
        ds.add(element)
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    held = tmp_path / "held"
    record = anonymize_file(source, tmp_path / "out", Options(level=Level.FULL, key=KEY, quarantine=held))
    assert record.status is Status.QUARANTINED, record.reason
    assert keyword in {f.attribute for f in record.findings}, record.findings
    (result,) = verify(files_under(held), FULL, load_originals([source], Level.FULL, KEY))
    assert any(keyword in finding for finding in result.findings), result.findings


@pytest.mark.parametrize("written", ["20240115101500\\19991231101500", " 19991231101500", "1999-12-31T10:15",
                                     "1999.12.31 10:15", "1999/12/31 10:15", "1999 12 31 10:15", "\t19991231101500",
                                     "20240115\\\t19991231"])
def test_each_date_of_a_date_time_is_searched_for_in_any_form(tmp_path: Path, written: str) -> None:
    """A date-time's date in each of its values, past spaces, tabs or NULs before it, its parts apart or not (ISO's
    form, ACR-NEMA's, slashes): one cut to its first eight bytes was the first value's, or no date at all (found
    from outside: released). A date after a NUL too."""
    ds = make_dataset(subject=64)
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20240115"
    ds.ImageType = ["DERIVED", "PRIMARY", "1999-12-31"]
    ds.add_new(0x0008002A, "DT", written)  # AcquisitionDateTime
    ds.add_new(0x00080023, "DA", "\x0019991230")  # ContentDate, after a NUL (found from outside too)
    ds.ImageType = [*ds.ImageType, "1999-12-30"]
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    record = anonymize_file(source, tmp_path / "out", FULL)
    assert record.status is Status.QUARANTINED, record.reason
    assert {"AcquisitionDateTime", "ContentDate"} <= {f.attribute for f in record.findings}, record.findings


def test_a_date_kept_by_an_option_or_not_in_the_file_holds_nothing(tmp_path: Path) -> None:
    """Retain Device Identity keeps a calibration's date: released by choice, it is no needle. A date the file does
    not hold is none either."""
    for name, options, image_type in (
            ("kept", Options(level=Level.FULL, key=KEY, retain_device_identity=True), "1999-12-31"),
            ("other", FULL, "1999-12-30")):
        ds = make_dataset(subject=63)
        ds.ImageType = ["DERIVED", "PRIMARY", image_type]
        ds.DateOfLastCalibration = "19991231"
        ds.DeviceSerialNumber, ds.StationName = "SN99310", "MRC99310"  # (kept too: none of the others' values)
        source = tmp_path / name / "in.dcm"
        source.parent.mkdir()
        ds.save_as(source, enforce_file_format=True)
        record = anonymize_file(source, tmp_path / name / "out", options)
        assert record.status is Status.WRITTEN, (name, record.reason)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize(("vr", "allocated"), [("UN", 16), ("OB", 24), ("OB", 48), ("OB", 64), ("OW", 32)])
def test_bits_outside_the_stored_ones_are_found_in_values_of_any_width_and_vr(tmp_path: Path, vr: str, allocated: int,
                                                                              signed: bool) -> None:
    """Found from outside: pixel data stored as UN was read from 4 bytes too early (its length taken for values: a
    clean file held; its last values unread: a dirty one released), and values of 24, 48 or 64 bits were not read at
    all (text in their upper bytes released). A set bit above the stored ones in the last value holds the file."""
    per = allocated // 8
    for name, extra in (("clean", 0), ("set", 1 << (allocated - 2))):
        ds = make_dataset(subject=59, rows=64, columns=64)  # (a UN value's length, 0x2000 bytes, sets bit 13)
        ds.BurnedInAnnotation = "NO"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = allocated, 12, 11, int(signed)
        values = [((i * 37) % 4096 - (2048 if signed else 0)) for i in range(64 * 64)]
        values[-1] = abs(values[-1]) | extra
        ds.PixelData = b"".join(v.to_bytes(per, "little", signed=True) for v in values)
        ds["PixelData"].VR = vr
        _assert_held_for_one_unused_bit(tmp_path / name, ds, held=bool(extra))


def _assert_held_for_one_unused_bit(folder: Path, ds: Dataset, held: bool) -> None:
    """`full` on `ds` (written in `folder`) holds it for one value with a bit outside the stored ones, or releases
    it."""
    source = folder / "in.dcm"
    source.parent.mkdir()
    ds.save_as(source, enforce_file_format=True)
    record = anonymize_file(source, folder / "out", FULL)
    assert record.status is (Status.QUARANTINED if held else Status.WRITTEN), record.reason
    assert not held or "bits outside the stored ones (1 value;" in record.reason, record.reason


@pytest.mark.parametrize(("stored", "high", "layout"), [(12, 11, (16, 0, 11, False)), (12, 15, (16, 4, 15, False)),
                                                        (12, 10, (16, 0, 11, False)), (12, 16, (16, 0, 11, False)),
                                                        (16, 15, None), (0, 0, None)])
def test_the_bits_values_are_stored_in_follow_a_high_bit_out_of_place_as_viewers_do(stored: int, high: int,
                                                                                    layout: object) -> None:
    """Found from outside: HighBit 10 with 12 bits stored (no valid layout) left every bit unchecked; the bits a
    viewer shows are then BitsStored's lowest."""
    from neuroanon.residual import _bit_layout

    ds = Dataset()
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, stored, high, 0
    assert _bit_layout(ds) == layout


def test_an_overlay_below_values_stored_from_a_higher_bit_is_cleared(tmp_path: Path) -> None:
    """12 bits stored from bit 4 (HighBit 15): an overlay at bit 2 lies in unused bits, even beside OverlayData
    (the gate took a bit under BitsStored for a stored one, and released the file with the overlay in it)."""
    ds = _with_embedded_overlay(pydicom.uid.ExplicitVRLittleEndian, signed=False, high_bit=15)
    ds.add_new(0x60003000, "OW", bytes(8))
    ds[0x60000102].value = 2
    values = struct.unpack("<64H", ds.PixelData)
    ds.PixelData = struct.pack("<64H", *[(v & 0xFFF) << 4 | (0b100 if i < 32 else 0) for i, v in enumerate(values)])
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    record = anonymize_file(source, tmp_path / "out", FULL)
    assert record.status is Status.WRITTEN, record.reason
    (written,) = files_under(tmp_path / "out")
    out = struct.unpack("<64H", pydicom.dcmread(written).PixelData)
    assert list(out) == [(v & 0xFFF) << 4 for v in values]


def test_an_embedded_overlay_is_cleared_in_pixel_data_streamed_past_the_first_read(tmp_path: Path) -> None:
    """2 MiB of pixel data, beyond the engine's first read: cleared as it is copied, a chunk at a time."""
    ds = make_dataset(subject=3, series=1, rows=1024, columns=1024)
    ds.BurnedInAnnotation, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = "NO", 12, 11, 0
    for tag in [t for t in ds.keys() if t >> 16 & 0xFF00 == 0x6000]:
        del ds[tag]
    ds.add_new(0x60000102, "US", 13)
    words = [(i * 7919) % 4096 | (0x2000 if i % 3 == 0 else 0) for i in range(1024 * 1024)]
    ds.PixelData = struct.pack(f"<{len(words)}H", *words)
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    record = anonymize_file(source, tmp_path / "out", FULL)
    assert record.status is Status.WRITTEN, record.reason
    (written,) = files_under(tmp_path / "out")
    out = struct.unpack(f"<{len(words)}H", pydicom.dcmread(written).PixelData)
    assert list(out) == [w & 0x0FFF for w in words]


def test_an_embedded_overlay_in_items_under_a_native_syntax_is_held(tmp_path: Path) -> None:
    """Pixel data of undefined length in items (encapsulated, though the syntax says native) is not cleared: its
    item tags would be translated with it (found from outside: a file no reader could read was released)."""
    ds = _with_embedded_overlay(pydicom.uid.ExplicitVRLittleEndian, signed=False)
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    data = source.read_bytes()
    at = data.rfind(b"\xe0\x7f\x10\x00OW\x00\x00")
    value = data[at + 12 :]
    items = (b"\xfe\xff\x00\xe0" + bytes(4) + b"\xfe\xff\x00\xe0" + struct.pack("<I", len(value)) + value
             + b"\xfe\xff\xdd\xe0" + bytes(4))
    source.write_bytes(data[:at] + b"\xe0\x7f\x10\x00OW\x00\x00\xff\xff\xff\xff" + items)
    record = anonymize_file(source, tmp_path / "out", FULL)
    assert record.status is Status.QUARANTINED and "encapsulated pixel data" in record.reason, record.reason


def test_an_embedded_overlay_in_a_dataset_without_file_meta_is_cleared(tmp_path: Path) -> None:
    """A bare dataset (no file meta, no transfer syntax) is in the encoding its elements show: native, cleared
    (found from outside: held as though it were not native)."""
    ds = _with_embedded_overlay(pydicom.uid.ImplicitVRLittleEndian, signed=False)
    source = tmp_path / "in.dcm"
    with quiet():
        pydicom.dcmwrite(source, Dataset(ds), implicit_vr=True, little_endian=True)
    assert source.read_bytes()[128:132] != b"DICM"
    record = anonymize_file(source, tmp_path / "out", FULL)
    assert record.status is Status.WRITTEN, record.reason
    (written,) = files_under(tmp_path / "out")
    assert not any(w >> 12 for w in struct.unpack("<64H", pydicom.dcmread(written, force=True).PixelData))


def test_an_embedded_overlay_that_cannot_be_cleared_in_place_is_held(tmp_path: Path) -> None:
    """In RLE (or any encapsulated) pixel data the bits are not cleared without decoding: held, even with
    --allow-burned-in (the pixels were looked at, the overlay is still in them). (A deflated dataset's native
    pixel data is cleared: the adversarial case in that encoding.)"""
    ds = _with_embedded_overlay(pydicom.uid.ExplicitVRLittleEndian, signed=False)
    ds.compress(pydicom.uid.RLELossless, encoding_plugin="pydicom")
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    options = Options(level=Level.FULL, key=b"k" * 32, allow_burned_in=True)
    record = anonymize_file(source, tmp_path / "out", options)
    assert record.status is Status.QUARANTINED and "embedded in unused pixel bits" in record.reason


def test_an_overlay_in_a_stored_bit_is_held(tmp_path: Path) -> None:
    """An overlay without OverlayData at a bit the image stores is drawn into the image's own values: clearing the
    unused bits leaves it, so the file is held as before."""
    ds = _with_embedded_overlay(pydicom.uid.ExplicitVRLittleEndian, signed=False)
    ds[0x60000102].value = 3  # OverlayBitPosition: a stored bit
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    record = anonymize_file(source, tmp_path / "out", FULL)
    assert record.status is Status.QUARANTINED, record.reason
    assert "embedded in the pixel data, without OverlayData (bit 3)" in record.reason
    assert "a bit the image stores" in record.reason and "--clean-pixels" not in record.reason
    with_ocr = Options(level=Level.FULL, key=KEY, clean_pixels="all")  # (the pixel stage cannot clear it either)
    assert anonymize_file(source, tmp_path / "ocr", with_ocr).status is Status.QUARANTINED


def test_a_cleared_overlay_leaves_the_rest_of_the_burned_in_gate(tmp_path: Path) -> None:
    """An ultrasound image whose embedded overlay is cleared is still held for its class, until --allow-burned-in."""
    ds = _with_embedded_overlay(pydicom.uid.ExplicitVRLittleEndian, signed=False)
    ds.SOPClassUID, ds.Modality = "1.2.840.10008.5.1.4.1.1.6.1", "US"
    del ds.BurnedInAnnotation
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    record = anonymize_file(source, tmp_path / "out", FULL)
    assert record.status is Status.QUARANTINED and record.reason.startswith("burned-in annotation risk (")
    assert "embedded" not in record.reason
    allowed = anonymize_file(source, tmp_path / "allowed", Options(level=Level.FULL, key=KEY, allow_burned_in=True))
    assert allowed.status is Status.WRITTEN, allowed.reason


# Tags a UN test leaves alone: those the pipeline needs to name and gate the output (file meta, identifiers,
# class, modality, pixel description), which a file with garbage in them may rightly fail for.
_STRUCTURAL = frozenset({0x00080005, 0x00080016, 0x00080018, 0x00080060, 0x00100020, 0x0020000D, 0x0020000E,
                         0x00280301})
_UN_TAGS = sorted(
    tag for tag in DicomDictionary
    if tag >> 16 not in (0x0000, 0x0002, 0x0028, 0x7FE0) and tag >> 16 < 0xFFFA and tag & 0xFFFF
    and tag not in _STRUCTURAL
)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(tag=st.sampled_from(_UN_TAGS), kind=st.sampled_from(["sequence", "text", "bytes"]),
       noise=st.binary(max_size=40), level=st.sampled_from([Level.ANONYMIZE, Level.FULL]))
def test_property_any_standard_attribute_stored_as_un(tag: int, kind: str, noise: bytes, level: Level) -> None:
    """Any standard attribute stored as UN, holding a sequence with the five, a fake name or any bytes: the file
    is released, and at full no planted name survives."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        source, markers = make_case(root / "in", "un-top", "explicit_le", "ascii")
        with quiet():
            ds = pydicom.dcmread(source)
        del ds[0x00400340]
        if kind == "sequence":
            value = un_bytes(five_item(markers), tag, "ascii")
        elif kind == "text":  # a name that is not the patient's: kept-by-design text would be quarantined
            markers.values["UNText"] = "Wobbleton^Xerxes"
            value = b"Wobbleton^Xerxes"
        else:
            value = noise
        add_un(ds, tag, value + b"\x00" * (len(value) % 2))
        source.write_bytes(part10(ds, "explicit_le"))
        record = anonymize_file(source, root / "out", Options(level=level, key=KEY))
        assert record.status is Status.WRITTEN, f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {kind}: {record.reason}"
        vr = str(dictionary_VR(tag))
        listed = technical(tag)
        if level is Level.FULL and vr in TEXT_VRS | {"SQ", "UI", "DA", "DT", "TM"} and (
                listed is None or listed.action != "K"):
            # (A code string, a number or a listed technical text keeps its bytes by design: the residual check
            # is what searches those for the file's identifying values.)
            (out,) = files_under(root / "out")
            assert not _leaks(out.read_bytes(), markers.values, "ascii"), f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@pytest.mark.parametrize("level", [Level.ANONYMIZE, Level.FULL])
@pytest.mark.parametrize("tag", [0x00120062, 0x00120063, 0x00120064, 0x00280303])
def test_a_mark_stored_as_un_holding_a_sequence_is_replaced_by_the_levels_own(level: Level, tag: int,
                                                                               tmp_path: Path) -> None:
    """PatientIdentityRemoved, DeidentificationMethod (and its code sequence) or LongitudinalTemporalInformation-
    Modified stored as UN with a sequence of the five inside (a hypothesis example once failed the file with a
    TypeError): the file is released with the level's marks in their own VRs, and at full no planted value stays."""
    source, markers = make_case(tmp_path / "in", "un-top", "explicit_le", "ascii")
    with quiet():
        ds = pydicom.dcmread(source)
    del ds[0x00400340]
    value = un_bytes(five_item(markers), tag, "ascii")
    add_un(ds, tag, value + b"\x00" * (len(value) % 2))
    source.write_bytes(part10(ds, "explicit_le"))
    record = anonymize_file(source, tmp_path / "out", Options(level=level, key=KEY))
    assert record.status is Status.WRITTEN, record.reason
    (out,) = files_under(tmp_path / "out")
    written = pydicom.dcmread(out)
    assert written["DeidentificationMethod"].VR == "LO" and "neuroanon" in str(written.DeidentificationMethod)
    if level is Level.FULL:
        assert written.PatientIdentityRemoved == "YES"
        assert written["DeidentificationMethodCodeSequence"].VR == "SQ"
        assert written.LongitudinalTemporalInformationModified == "REMOVED"
        assert not _leaks(out.read_bytes(), markers.values, "ascii")


def _codestream(syntax: str, text: bytes, between: bool = False) -> bytes:
    """A JPEG (or JPEG 2000) codestream's marker segments with `text` in a comment segment, then coded data; or,
    `between`, the comment between two scans (JPEG: after the first scan's coded data, which holds 0xFF 0x00 and a
    restart marker) or in the second tile-part's header (JPEG 2000: after the first's coded data)."""
    if syntax == pydicom.uid.JPEG2000Lossless:  # SOC, SIZ (short), COM (registration 1: Latin-1 text), SOT...
        com = b"\xff\x64" + (len(text) + 4).to_bytes(2, "big") + b"\x00\x01" + text
        siz = b"\xff\x51\x00\x06\x00\x00\x00\x01"
        if not between:
            return b"\xff\x4f" + siz + com + b"\xff\x90\x00\x0a" + b"\x00" * 8 + b"\xff\xd9"
        data = b"\xff\x64\x00\x05" * 3  # coded data may hold what looks like a comment marker
        first = b"\xff\x90\x00\x0a\x00\x00" + (14 + len(data)).to_bytes(4, "big") + b"\x00\x02" + b"\xff\x93" + data
        second = b"\xff\x90\x00\x0a\x00\x00\x00\x00\x00\x00\x01\x02" + com + b"\xff\x93" + b"\x12" * 8
        return b"\xff\x4f" + siz + first + second + b"\xff\xd9"
    com = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
    app1 = b"\xff\xe1" + (len(text) + 8).to_bytes(2, "big") + b"Exif\x00\x00" + text
    # (a fill byte before the comment: a marker may be preceded by any number of them)
    segment = b"\xff" + com if syntax == pydicom.uid.JPEGBaseline8Bit else app1
    scan = b"\xff\xda\x00\x02" + b"\x12\xff\x00\x34\xff\xd0" + b"\x12\x34" * 8
    if between:
        return b"\xff\xd8" + scan + segment + scan + b"\xff\xd9"
    return b"\xff\xd8" + segment + scan + b"\xff\xd9"


@pytest.mark.parametrize("between", [False, True], ids=["header", "between-scans"])
@pytest.mark.parametrize("syntax", [pydicom.uid.JPEGBaseline8Bit, pydicom.uid.JPEGLosslessSV1,
                                    pydicom.uid.JPEG2000Lossless])
def test_text_in_a_codestreams_marker_segments_holds_the_file_back(tmp_path: Path, syntax: pydicom.uid.UID,
                                                                   between: bool) -> None:
    """A device may write the patient's name in a JPEG comment or application (Exif) segment, beside the image,
    before the first scan or between scans (or tiles): the residual check reads those segments in every frame's
    fragment, so the file is held back; other text there (a codec's name) is released."""
    secret = make_dataset(subject=39)
    for name, text in (("named", f"{secret.PatientName} {secret.PatientID}".encode()), ("codec", b"libjpeg 9d")):
        ds = make_dataset(subject=39, instance=len(name))
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.SamplesPerPixel, ds.NumberOfFrames = 8, 8, 7, 1, 2
        frames = [_codestream(syntax, b"frame one", between), _codestream(syntax, text, between)]
        ds.PixelData = pydicom.encaps.encapsulate([f + b"\x00" * (len(f) % 2) for f in frames])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = syntax
        source = tmp_path / "in" / f"{name}.dcm"
        source.parent.mkdir(exist_ok=True)
        ds.save_as(source, enforce_file_format=True)
        record = anonymize_file(source, tmp_path / name, Options(level=Level.FULL, key=KEY))
        if name == "named":
            assert record.status is Status.QUARANTINED, record.reason
            assert {f.where for f in record.findings} == {"(7FE0,0010) outside the coded image"}
            assert "PatientID" in {f.attribute for f in record.findings}
            assert str(secret.PatientID) not in record.reason
        else:
            assert record.status is Status.WRITTEN, record.reason


@pytest.mark.parametrize("where", ["before-start", "after-end-and-padding"])
def test_text_around_a_jpeg_in_its_fragment_holds_the_file_back(tmp_path: Path, where: str) -> None:
    """Bytes before a frame's SOI, and after its EOI past 64 KB of padding: no decoder reads them, the check does."""
    secret = make_dataset(subject=40)
    text = f"{secret.PatientName} {secret.PatientID}".encode()
    jpeg = _codestream(pydicom.uid.JPEGBaseline8Bit, b"libjpeg 9d")
    fragment = text + b"\x00" + jpeg if where == "before-start" else jpeg + text + bytes(70_000)
    record = _full_on_a_jpeg(tmp_path, make_dataset(subject=40), fragment)
    assert record.status is Status.QUARANTINED, record.reason
    assert {f.where for f in record.findings} == {"(7FE0,0010) outside the coded image"}


@pytest.mark.parametrize("where", ["between-two-codestreams", "between-two-end-markers", "reserved-segment",
                                   "quantization-table", "clean", "exif-thumbnail", "second-codestream"])
def test_text_in_any_segment_or_after_the_first_end_holds_the_file_back(tmp_path: Path, where: str) -> None:
    """Any marker segment of a codestream's header (a table, a reserved marker: none is the image) and whatever
    follows its first end marker (a second codestream, a stray end marker after text) are searched (found from
    outside: released). An Exif thumbnail's end marker in an application segment ends no codestream."""
    secret = make_dataset(subject=41)
    text = f"{secret.PatientName} {secret.PatientID}".encode()
    jpeg = _codestream(pydicom.uid.JPEGBaseline8Bit, b"libjpeg 9d")
    soi, rest = jpeg[:2], jpeg[2:]
    # (an APP1 holding SOI and EOI after an Exif structure of one empty directory: no thumbnail)
    thumbnail = jpeg_segment(0xE1, b"Exif\x00\x00II*\x00\x08\x00\x00\x00" + bytes(6) + b"\xff\xd8\xff\xd9\x00\x00")
    fragment = {"between-two-codestreams": jpeg + text + jpeg, "between-two-end-markers": jpeg + text + b"\xff\xd9",
                "reserved-segment": soi + b"\xff\xf0" + (len(text) + 2).to_bytes(2, "big") + text + rest,
                "quantization-table": soi + b"\xff\xdb" + (len(text) + 3).to_bytes(2, "big") + b"\x00" + text + rest,
                "clean": jpeg + bytes(8), "exif-thumbnail": soi + thumbnail + rest,
                "second-codestream": jpeg + jpeg}[where]
    record = _full_on_a_jpeg(tmp_path, make_dataset(subject=41), fragment)
    if where in ("clean", "exif-thumbnail"):
        assert record.status is Status.WRITTEN, record.reason
        return
    if where == "second-codestream":  # (no text in it, but a picture no decoder of the one frame shows)
        assert record.status is Status.QUARANTINED and "bytes that no frame shows" in record.reason, record.reason
        return
    assert record.status is Status.QUARANTINED, record.reason
    assert {f.where for f in record.findings} == {"(7FE0,0010) outside the coded image"}


@pytest.mark.parametrize("where", ["exif", "jfif", "jfxx", "comment-j2k", "between-scans", "continued-fragment",
                                   "exif-uncompressed", "png", "jfif-longer", "bare-jfif", "spiff-end",
                                   "exif-without-thumbnail"])
def test_a_thumbnail_in_a_codestreams_segment_holds_the_file_back(tmp_path: Path, where: str) -> None:
    """A picture in a marker segment (an Exif or JFIF thumbnail; a codestream in a comment), before the first scan,
    between scans or in a frame's later fragment, is shown by no decoder of the frames and not read by the search
    for text: plain `full` holds the file (found on review: a thumbnail of the name was released). A bare JFIF
    segment (no thumbnail), Exif's with one image directory, and a SPIFF directory's end (which holds the start of
    the codestream, FFD8) are none."""
    name = str(make_dataset(subject=45).PatientName)
    exif = jpeg_segment(0xE1, b"Exif\x00\x00" + thumbnail(name))
    inserted = {"exif": exif, "between-scans": exif, "continued-fragment": exif,
               "jfif": jpeg_segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x02\x02" + bytes(range(12))),
               "bare-jfif": jpeg_segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
               # (no thumbnail declared, a picture after the 14 bytes JFIF has: no reader reads them)
               "jfif-longer": jpeg_segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
                                           + bytes(range(1, 250))),
               "jfxx": jpeg_segment(0xE0, b"JFXX\x00\x13\x02\x02" + bytes(range(12))),
               "comment-j2k": jpeg_segment(0xFE, b"\xff\x4f\xff\x51\x00\x29" + bytes(39)),
               "spiff-end": jpeg_segment(0xE8, b"\x00\x00\x00\x01\xff\xd8"),
               # Exif's TIFF structure: its first directory, then a second (IFD1, the thumbnail's), then the picture
               # uncompressed (found from outside: released); or only the first
               "exif-uncompressed": jpeg_segment(0xE1, b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x00\x00\x0e\x00\x00\x00"
                                                 + bytes(6) + bytes(range(1, 250)) * 4),
               "exif-without-thumbnail": jpeg_segment(0xE1, b"Exif\x00\x00MM\x00*\x00\x00\x00\x08" + bytes(6)),
               "png": jpeg_segment(0xE2, b"\x89PNG\r\n\x1a\n" + bytes(range(1, 100)))}[where]
    jpeg = _codestream(pydicom.uid.JPEGBaseline8Bit, b"libjpeg 9d")
    scan = jpeg.index(b"\xff\xda")
    if where in ("between-scans", "continued-fragment"):
        fragments = [jpeg[:-2] + inserted + jpeg[scan:]]
        if where == "continued-fragment":
            fragments = [fragments[0][:scan + 8], fragments[0][scan + 8:]]
    else:
        fragments = [jpeg[:2] + inserted + jpeg[2:]]
    record = _full_on_a_jpeg(tmp_path, make_dataset(subject=45), fragments)
    if where in ("bare-jfif", "spiff-end", "exif-without-thumbnail"):
        assert record.status is Status.WRITTEN, record.reason
        return
    assert record.status is Status.QUARANTINED, record.reason
    held = re.search(r"pixel data holds (\d+) bytes that no frame shows", record.reason)
    # (its payload; between scans, what follows the thumbnail's end marker too, taken for the frame's end)
    assert held is not None and int(held.group(1)) >= len(inserted) - 4, record.reason


@pytest.mark.parametrize("where", ["stray-bytes-then-comment", "segment-longer-than-its-length", "two-stray-bytes"])
def test_bytes_between_header_segments_are_read_and_hold_the_file_back(tmp_path: Path, where: str) -> None:
    """A decoder skips bytes that are no marker to the next one: so does the check, reading what follows (found from
    outside: the walk stopped at three such bytes after the JFIF segment, and a comment after them holding the name
    was released; so were a segment's bytes past its declared length). More than two such bytes hold the file (a
    picture may lie there); two, a writer's slip, do not."""
    secret = make_dataset(subject=47)
    text = f"{secret.PatientName} {secret.PatientID}".encode()
    jpeg = _codestream(pydicom.uid.JPEGBaseline8Bit, b"libjpeg 9d")
    jfif = jpeg_segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    fragment = {"stray-bytes-then-comment": jpeg[:2] + jfif + b"\x01\x02\x03" + jpeg_segment(0xFE, text) + jpeg[2:],
                "segment-longer-than-its-length": jpeg[:2] + b"\xff\xe1\x00\x08Exif\x00\x00" + bytes(range(1, 200))
                + jpeg[2:],
                "two-stray-bytes": jpeg[:2] + jfif + b"\x01\x02" + jpeg[2:]}[where]
    record = _full_on_a_jpeg(tmp_path, make_dataset(subject=47), fragment)
    if where == "two-stray-bytes":
        assert record.status is Status.WRITTEN, record.reason
    elif where == "stray-bytes-then-comment":
        assert record.status is Status.QUARANTINED and "PatientID" in {f.attribute for f in record.findings}
    else:
        assert record.status is Status.QUARANTINED and "199 bytes that no frame shows" in record.reason, record.reason


@pytest.mark.parametrize("what", ["comment", "exif-thumbnail"])
def test_a_segment_across_two_fragments_is_read_whole(tmp_path: Path, what: str) -> None:
    """A frame may be split over fragments anywhere, inside a segment too: the check reads such a segment on into
    the next fragment (found from outside: a comment holding the name, and a thumbnail, across two fragments, were
    released)."""
    secret = make_dataset(subject=48)
    jpeg = _codestream(pydicom.uid.JPEGBaseline8Bit, b"libjpeg 9d")
    if what == "comment":
        inserted = jpeg_segment(0xFE, b"x" * 40 + f"{secret.PatientName} {secret.PatientID}".encode())
    else:  # (uncompressed, in a second image directory: no end marker in it)
        inserted = jpeg_segment(0xE1, b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x00\x00\x0e\x00\x00\x00" + bytes(6)
                                + bytes(range(1, 250)) * 4)
    frame = jpeg[:2] + inserted + jpeg[2:]
    frame += b"\x00" * (len(frame) % 2)
    cut = 10  # (inside the segment's payload, before what tells it is a picture; even: fragments are padded to even)
    record = _full_on_a_jpeg(tmp_path, make_dataset(subject=48), [frame[:cut], frame[cut:]])
    assert record.status is Status.QUARANTINED, record.reason
    if what == "comment":
        assert "PatientID" in {f.attribute for f in record.findings}, record.reason
    else:
        assert "bytes that no frame shows" in record.reason, record.reason


def _commented(syntax: str, text: bytes) -> bytes:
    """A JPEG baseline or JPEG 2000 codestream with a comment segment holding `text` at an even offset (2 or 10)."""
    if syntax == pydicom.uid.JPEG2000Lossless:
        return _codestream(syntax, text)
    jpeg = _codestream(pydicom.uid.JPEGBaseline8Bit, b"libjpeg 9d")
    return jpeg[:2] + jpeg_segment(0xFE, text) + jpeg[2:]


@pytest.mark.parametrize("syntax", [pydicom.uid.JPEGBaseline8Bit, pydicom.uid.JPEG2000Lossless],
                         ids=["jpeg", "jpeg2000"])
def test_a_frame_cut_anywhere_near_a_comment_is_read_as_one_stream(tmp_path: Path, syntax: str) -> None:
    """A decoder reads a frame's fragments as one stream: so does the check (found from outside: a cut right after a
    comment's marker, or in the segment before it, released the name; a JPEG 2000 frame's later fragment was
    searched for JPEG's markers only). Two fragments cut at every even place around the comment, and three."""
    secret = make_dataset(subject=50)
    frame = _commented(syntax, b"x" * 8 + f"{secret.PatientName} {secret.PatientID}".encode())
    marker = frame.index(b"\xff\x64" if syntax == pydicom.uid.JPEG2000Lossless else b"\xff\xfe")
    cuts = [[frame[:cut], frame[cut:]] for cut in range(2, marker + 10, 2)]
    cuts.append([frame[:marker], frame[marker:marker + 2], frame[marker + 2:marker + 4], frame[marker + 4:]])
    for index, fragments in enumerate(cuts):
        (tmp_path / str(index)).mkdir()
        record = _full_on_a_jpeg(tmp_path / str(index), make_dataset(subject=50), fragments)
        assert record.status is Status.QUARANTINED, (index, record.reason)
        assert "PatientID" in {f.attribute for f in record.findings}, (index, record.reason)


@pytest.mark.parametrize("syntax", [pydicom.uid.JPEGBaseline8Bit, pydicom.uid.JPEG2000Lossless],
                         ids=["jpeg", "jpeg2000"])
def test_a_clean_frame_cut_anywhere_is_released(tmp_path: Path, syntax: str) -> None:
    """Reading a frame's fragments as one stream finds nothing where there is nothing: a clean frame cut at every
    even place, and the frame whole, are released."""
    frame = _commented(syntax, b"libjpeg 9d")
    frame += b"\x00" * (len(frame) % 2)
    for cut in range(0, len(frame), 2):
        (tmp_path / str(cut)).mkdir()
        fragments = [frame[:cut], frame[cut:]] if cut else [frame]
        record = _full_on_a_jpeg(tmp_path / str(cut), make_dataset(subject=51), fragments)
        assert record.status is Status.WRITTEN, (cut, record.reason)


@pytest.mark.parametrize("where", ["inside-the-frame", "after-the-frame"])
def test_a_fragment_that_only_looks_like_rle_segments_is_read(tmp_path: Path, where: str) -> None:
    """Found from outside: a fragment whose first 64 bytes read as an RLE header (one segment, at 64) was read by
    nothing, inside a JPEG frame (a comment's payload: the name was released) or after its end. A file whose frames
    are codestreams holds no RLE segments."""
    secret = make_dataset(subject=53)
    text = f"{secret.PatientName} {secret.PatientID}".encode()
    text += b" " * (len(text) % 2)
    rle = struct.pack("<16L", 1, 64, *[0] * 14)
    jpeg = _codestream(pydicom.uid.JPEGBaseline8Bit, b"libjpeg 9d")
    if where == "inside-the-frame":
        frame = jpeg[:2] + jpeg_segment(0xFE, rle + text) + jpeg[2:]
        fragments = [frame[:6], frame[6:70 + len(text)], frame[70 + len(text):]]  # (the middle one: the payload)
    else:
        fragments = [jpeg, rle + text]
    record = _full_on_a_jpeg(tmp_path, make_dataset(subject=53), fragments)
    assert record.status is Status.QUARANTINED, record.reason


def test_a_second_codestream_after_a_jp2_wrapped_one_holds_the_file_back(tmp_path: Path) -> None:
    """A JPEG 2000 frame in a JP2 file's boxes decodes; a second codestream after its end is no frame's (found from
    outside: it was released, the check reading only frames that begin with a codestream)."""
    j2k = _codestream(pydicom.uid.JPEG2000Lossless, b"libjpeg 9d")
    jp2 = b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00\x00\x00\x14ftypjp2 \x00\x00\x00\x00jp2 "
    box = jp2 + (8 + len(j2k)).to_bytes(4, "big") + b"jp2c" + j2k
    for second in (b"", _codestream(pydicom.uid.JPEG2000Lossless, b"a picture of the name")):
        (tmp_path / str(len(second))).mkdir()
        record = _full_on_a_jpeg(tmp_path / str(len(second)), make_dataset(subject=54), box + second)
        assert record.status is (Status.QUARANTINED if second else Status.WRITTEN), record.reason


def test_a_jp2_box_that_looks_like_a_codestream_is_searched(tmp_path: Path) -> None:
    """Found from outside: a box before the codestream box holding a JPEG's start and a scan's header, then the
    name, was taken for the codestream, and the name for its coded data. The codestream is the codestream box's."""
    secret = make_dataset(subject=57)
    j2k = _codestream(pydicom.uid.JPEG2000Lossless, b"libjpeg 9d")
    fake = b"\xff\xd8\xff\xda\x00\x02" + f"{secret.PatientName} {secret.PatientID}".encode()
    frame = (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + (8 + len(fake)).to_bytes(4, "big") + b"uuid" + fake
             + (8 + len(j2k)).to_bytes(4, "big") + b"jp2c" + j2k)
    record = _full_on_a_jpeg(tmp_path, make_dataset(subject=57), frame)
    assert record.status is Status.QUARANTINED and "PatientID" in {f.attribute for f in record.findings}, \
        record.reason


def test_a_thumbnail_cut_right_after_its_marker_holds_the_file_back(tmp_path: Path) -> None:
    """Found from outside: an Exif segment holding a thumbnail, cut right after its marker (FF E1), was released."""
    jpeg = _codestream(pydicom.uid.JPEGBaseline8Bit, b"libjpeg 9d")
    frame = jpeg[:2] + jpeg_segment(0xE1, b"Exif\x00\x00" + thumbnail("Fake Name")) + jpeg[2:]
    for cut in (4, 6):
        (tmp_path / str(cut)).mkdir()
        record = _full_on_a_jpeg(tmp_path / str(cut), make_dataset(subject=52), [frame[:cut], frame[cut:]])
        assert record.status is Status.QUARANTINED and "bytes that no frame shows" in record.reason, record.reason


def test_a_picture_behind_bytes_that_begin_no_segment_holds_the_file_back(tmp_path: Path) -> None:
    """0xFF 0x00 begins no segment (nor does a restart marker): what follows up to the next marker is skipped by a
    decoder, and was taken for a segment's payload (found from outside: a raw picture there was released)."""
    jpeg = _codestream(pydicom.uid.JPEGBaseline8Bit, b"libjpeg 9d")
    for begins in (b"\xff\x00", b"\xff\xd0"):
        raw = bytes(range(1, 255)) * 2
        picture = begins + (len(raw) + 2).to_bytes(2, "big") + raw  # (as if a segment's length and payload)
        (tmp_path / begins.hex()).mkdir()
        record = _full_on_a_jpeg(tmp_path / begins.hex(), make_dataset(subject=49), jpeg[:2] + picture + jpeg[2:])
        assert record.status is Status.QUARANTINED and "bytes that no frame shows" in record.reason, record.reason


def test_a_long_run_of_bytes_between_segments_is_read_in_one_pass() -> None:
    """Skipping to the next marker took time by the square of the run (found from outside: 1 MB held a worker for
    about an hour). 2 MB is read in one pass; the run is bounded by a timeout, not timed."""
    code = ("import io\nfrom neuroanon import residual\n"
            "data = b'\\xff\\xd8\\xff\\xe0\\x00\\x04ab' + bytes(range(1, 255)) * 8000\n"
            "segments, _ = residual._segment_payloads(io.BytesIO(data), 0, len(data))\n"
            "print(segments.stray)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == str(254 * 8000), done.stderr


def _full_on_a_jpeg(tmp_path: Path, ds: Dataset, fragment: bytes | list[bytes]) -> Record:
    """`full` on `ds` with one 8-bit JPEG baseline frame, `fragment` (or these fragments)."""
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.SamplesPerPixel = 8, 8, 7, 1
    fragments = [fragment] if isinstance(fragment, bytes) else fragment
    ds.PixelData = _items(b"", fragments)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEGBaseline8Bit
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    return anonymize_file(source, tmp_path / "out", Options(level=Level.FULL, key=KEY))


def _items(offsets: bytes, fragments: list[bytes]) -> bytes:
    """Encapsulated pixel data's items: the basic offset table, then the fragments (each padded to even length)."""
    items = [offsets, *(f + b"\x00" * (len(f) % 2) for f in fragments)]
    return b"".join(b"\xfe\xff\x00\xe0" + len(i).to_bytes(4, "little") + i for i in items)


@pytest.mark.parametrize("place", ["continued-fragment", "after-the-end", "offset-table", "clean"])
def test_text_in_a_frames_later_fragment_after_its_end_or_in_the_offset_table_holds_it_back(
    tmp_path: Path, place: str
) -> None:
    """A frame may be split over fragments: a comment in a later one is a real segment all the same (coded data
    holds no comment marker). Text after the end marker, or in the offset table, is out of place: searched too."""
    secret = make_dataset(subject=44)
    text = f"{secret.PatientName} {secret.PatientID}".encode()
    ds = make_dataset(subject=44)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.SamplesPerPixel = 8, 8, 7, 1
    stream = _codestream(pydicom.uid.JPEGBaseline8Bit, b"codec 9d")
    comment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
    head, rest = stream[:20], stream[20:]
    offsets = b"\x00\x00\x00\x00"
    fragments = {"continued-fragment": [head, comment + rest], "after-the-end": [stream + b" " + text],
                 "offset-table": [stream], "clean": [head, rest]}[place]
    if place == "offset-table":
        offsets += text + b"\x00" * (len(text) % 4)
    ds.PixelData = _items(offsets, fragments)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEGBaseline8Bit
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    record = anonymize_file(source, tmp_path / "out", Options(level=Level.FULL, key=KEY))
    if place == "clean":
        assert record.status is Status.WRITTEN, record.reason
        return
    assert record.status is Status.QUARANTINED, record.reason
    assert "PatientID" in {f.attribute for f in record.findings}
    assert str(secret.PatientID) not in record.reason


def test_the_files_own_instance_uid_in_a_jpeg_comment_holds_it_back(tmp_path: Path) -> None:
    """A device may stamp the instance UID into the codestream's comment: full remaps that UID, so the original
    there would link the output to its source file."""
    ds = make_dataset(subject=43)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.UID("1.2.826.0.1.3680043.10.9.43.5")
    frame = _codestream(pydicom.uid.JPEGBaseline8Bit, f"uid={ds.SOPInstanceUID}".encode(), False)
    record = _full_on_a_jpeg(tmp_path, ds, frame)
    assert record.status is Status.QUARANTINED, record.reason
    assert {(f.attribute, f.where) for f in record.findings} == {
        ("SOPInstanceUID", "(7FE0,0010) outside the coded image")}
    assert str(ds.SOPInstanceUID) not in record.reason


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("stored", ["SQ", "UN", "UN-undefined"])
def test_an_id_known_only_from_other_patient_ids_is_searched_for(tmp_path: Path, encoding: str, stored: str) -> None:
    """The top-level PatientID may be empty and the patient's ID stand only in an item of OtherPatientIDsSequence
    (as a sequence, or stored as UN): full removes the sequence, and the ID copied into a kept value is cleaned out
    of it like any other; in a JPEG comment it holds the file back."""
    pid = "ZQ-4471-0093"
    ds = make_dataset(subject=47)
    ds.PatientID = ""
    item = Dataset()
    item.PatientID, item.TypeOfPatientID, item.IssuerOfPatientID = pid, "TEXT", "FAKEVILLE GENERAL ZQ"
    if stored == "SQ":
        ds.OtherPatientIDsSequence = pydicom.Sequence([item])
    else:
        add_un(ds, 0x00101002, un_bytes(item, 0x00101002, "ascii"), undefined=stored == "UN-undefined")
    data = _coil_string_cleaned(tmp_path, ds, encoding, pid)
    assert pid.encode() not in data and b"FAKEVILLE GENERAL" not in data


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("stored", ["SQ", "UN", "UN-undefined"])
def test_a_patient_named_only_in_a_referenced_patient_item_is_searched_for(tmp_path: Path, encoding: str,
                                                                           stored: str) -> None:
    """An earlier tool emptied the top level, and the patient's name and ID stand only in an item of
    ReferencedPatientSequence (as a sequence, or stored as UN): full removes the sequence, and the name copied into
    a kept value (a Siemens coil string) is cleaned out of it like any other."""
    name, pid = "Quxworth^Zelda", "ZQ-4853-0737"
    ds = make_dataset(subject=48)
    ds.PatientName, ds.PatientID = "Anonymous", ""
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = "1.2.840.10008.3.1.2.1.1", ROOT + "48.9"
    item.PatientName, item.PatientID = name, pid
    if stored == "SQ":
        ds.ReferencedPatientSequence = pydicom.Sequence([item])
    else:
        add_un(ds, 0x00081120, un_bytes(item, 0x00081120, "ascii"), undefined=stored == "UN-undefined")
    assert b"QUXWORTH" not in _coil_string_cleaned(tmp_path, ds, encoding, "QUXWORTH")


@pytest.mark.parametrize(("group", "keyword", "value"), [
    ("FrameContentSequence", "FrameAcquisitionDateTime", "20000101000010"),
    ("UnassignedPerFrameConvertedAttributesSequence", "AcquisitionDate", "20000101"),
    ("RadiopharmaceuticalInformationSequence", "RadiopharmaceuticalStartDateTime", "20000101235000")])
def test_a_date_in_an_item_unlike_the_studys_is_searched_for(tmp_path: Path, group: str, keyword: str,
                                                             value: str) -> None:
    """An enhanced image's frame acquired after midnight (also a legacy converted one's), a radiopharmaceutical
    injected on another day: its date, copied into a kept value (a Siemens coil string), is cut from it (found from
    outside: it was released); the date-time itself is shifted or removed by the profile."""
    ds = make_dataset(subject=55)
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "19991231"
    content = Dataset()
    setattr(content, keyword, value)
    frame = Dataset()
    setattr(frame, group, pydicom.Sequence([content]))
    ds.PerFrameFunctionalGroupsSequence = pydicom.Sequence([frame])
    ds.add_new(0x00510010, "LO", "SIEMENS MR HEADER")
    ds.add_new(0x0051100F, "LO", "HEA;20000101;HEP")
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    record = anonymize_file(source, tmp_path / "out", FULL)
    assert record.status is Status.WRITTEN, record.reason
    (out,) = files_under(tmp_path / "out")
    assert b"20000101" not in out.read_bytes()
    with quiet():
        assert pydicom.dcmread(out)[0x0051100F].value == "HEA;00000000;HEP"


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_a_kept_value_of_a_utf8_file_is_cut_in_whole_characters(tmp_path: Path, encoding: str) -> None:
    """A name copied into a kept value of a file in UTF-8 is cut in whole characters: a form of "Novotný" matches
    "Novotn" and the first byte of the "é" of "Novotného" (found from outside: that byte was cut alone, and the
    value written with invalid UTF-8); its neighbours, UTF-8 characters too, stay."""
    ds = make_dataset(subject=56)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Novotný^Jan"
    _, value = _written_coil_string(tmp_path, ds, "µ;Novotného½;HEP", encoding)
    text = value.decode("utf-8").rstrip(" ")  # fails on half a character
    assert "Novotn" not in text and text.startswith("µ;X") and text.endswith("ho½;HEP"), text


@pytest.mark.parametrize(("charset", "name", "value", "cleaned"), [
    ("ISO_IR 192", "Петров^Иван", "ПетровPetrov".encode(), b"X" * 18),  # one value against another
    ("ISO_IR 192", "Петров^Иван", "PetrovПетров".encode(), b"X" * 18),
    ("ISO_IR 192", "Yamada^Tarou=山田^太郎", "山田Yamada".encode(), b"X" * 12),
    ("ISO_IR 100", "Moreau^Anne", b"A77120934Moreau", b"X" * 15),  # the ID, then the name
    ("\\ISO 2022 IR 100", "Müller^Jürgen", b"HE \x1b-AM\xfcller", b"HE \x1b-AXXXXXX"),  # an escape before it
    ("\\ISO 2022 IR 100", "Müller^Jürgen", b"HE M\x1b-A\xfcller", b"HE X\x1b-AXXXXX"),  # an escape inside it
    ("\\ISO 2022 IR 87", "Yamada^Tarou=山田^太郎", b"\x1b$B;3ED\x1b(BYamada", b"\x1b$BXXXX\x1b(BXXXXXX"),
    ("\\ISO 2022 IR 87", "Hana^Mori", b"T1 \x1b$BHana\x1b(B T2", b"T1 \x1b$BHana\x1b(B T2"),  # kanji, no name
    ("\\ISO 2022 IR 87", "Jones^Amy", b"\x1b(Jones T1", b"\x1b(JXXXX T1"),  # the escape stays whole
    ("\\ISO 2022 IR 149", "Jeong^Minsu=정^민수", b"\x1b$)CJeong T1", b"\x1b$)CXXXXX T1"),  # hangul into G1
    ("\\ISO 2022 IR 58", "Wang^XiaoDong=王^小东", b"\x1b$)AWang T1", b"\x1b$)AXXXX T1"),  # hanzi into G1
    ("\\ISO 2022 IR 87", "Yamada^Taro=山田^太郎", b"\x1b$B;3ED\x1b(B \x1b$BB@O:\x1b(B",
     b"\x1b$BXXXX\x1b(BX\x1b$BXXXX\x1b(B"),  # a name of two kanji groups: the escapes between them stay
])
def test_a_name_beside_another_value_or_an_escape_is_cut_from_a_kept_value(
        tmp_path: Path, charset: str, name: str, value: bytes, cleaned: bytes) -> None:
    """Found from outside, released at full: a value written against another cut before it (the cut's filler is a
    letter, so it was no word any more), a name beside an ISO 2022 escape sequence, which ends in a letter, or
    split by one. The escape sequences stay, also one a match took in. Kanji whose bytes spell a name are no name."""
    ds = make_dataset(subject=57)
    ds.SpecificCharacterSet = charset
    ds.PatientName = name
    ds.PatientID = "A77120934"
    padding = b" " * (len(value) % 2)
    assert _written_coil_string(tmp_path, ds, value + padding)[1] == cleaned + padding


_COIL_STRING = BaseTag(0x0051100F)  # a Siemens coil string: a kept value, cleaned of identifying values


def _written_coil_string(tmp_path: Path, ds: Dataset, value: str | bytes, encoding: str = "explicit_le",
                         options: Options = FULL) -> tuple[Path, bytes]:
    """`ds` with `value` as its coil string (bytes written as they are), anonymized: the file written, and the
    value's bytes in it."""
    ds.add_new(0x00510010, "LO", "SIEMENS MR HEADER")
    ds[_COIL_STRING] = DataElement(_COIL_STRING, "LO", value)
    source = tmp_path / "in.dcm"
    source.write_bytes(part10(ds, encoding))
    record = anonymize_file(source, tmp_path / "out", options)
    assert record.status is Status.WRITTEN, record.reason
    (out,) = files_under(tmp_path / "out")
    with quiet():
        return out, pydicom.dcmread(out).get_item(_COIL_STRING).value


def _coil_string_cleaned(tmp_path: Path, ds: Dataset, encoding: str, family: str, options: Options = FULL,
                         ) -> bytes:
    """`ds` with `family` copied into its coil string, at full: written, the value cleaned of it; the output's
    searchable bytes, upper-cased."""
    out, _ = _written_coil_string(tmp_path, ds, f"HEA;{family};HEP", encoding, options)
    with quiet():
        assert pydicom.dcmread(out)[_COIL_STRING].value == "HEA;" + "X" * len(family) + ";HEP"
    return searchable_bytes(out).upper()


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("depth", [1, 3])
def test_a_patient_named_only_in_an_item_at_any_depth_is_searched_for(tmp_path: Path, encoding: str,
                                                                    depth: int) -> None:
    """The patient's name, ID and birth date stand only in an item of a sequence that does not name patients
    (ReferencedImageSequence, at depth 1 or inside two more items), the top level naming no one: full removes
    them there, and the name copied into a kept value (a Siemens coil string) is cleaned out of it."""
    ds = make_dataset(subject=49)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Anonymous", "", ""
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.4", ROOT + "49.9"
    item.PatientName, item.PatientID, item.PatientBirthDate = "Vrellinghast^Odo", "VO-5521-8830", "19570412"
    for _ in range(depth - 1):
        outer = Dataset()
        outer.ReferencedImageSequence = pydicom.Sequence([item])
        item = outer
    ds.ReferencedImageSequence = pydicom.Sequence([item])
    data = _coil_string_cleaned(tmp_path, ds, encoding, "VRELLINGHAST")
    assert b"VRELLINGHAST" not in data and b"5521-8830" not in data and b"19570412" not in data


def _identity_item(**more: str) -> Dataset:
    """An item naming the patient (name, ID, birth date), with `more` attributes."""
    item = Dataset()
    for keyword, value in more.items():
        setattr(item, keyword, value)
    item.PatientName, item.PatientID, item.PatientBirthDate = "Vrellinghast^Odo", "VO-5521-8830", "19570412"
    return item


def _stored_as_un(ds: Dataset, where: str, undefined: bool) -> None:
    """Put the patient's identity in `ds` only inside the items of a sequence stored as UN: OriginalAttributesSequence
    (its item's ModifiedAttributesSequence, a sequence within the UN), a private sequence, a standard sequence the
    full level keeps and walks (ReferencedImageSequence), or such a UN inside an item of a sequence."""
    referenced = {"ReferencedSOPClassUID": MR_IMAGE, "ReferencedSOPInstanceUID": ROOT + "52.9"}
    if where == "original-attributes":
        item = Dataset()
        item.ModifiedAttributesSequence = pydicom.Sequence([_identity_item()])
        item.AttributeModificationDateTime, item.ModifyingSystem = "20240101000000", "FAKE SYSTEM"
        item.ReasonForTheAttributeModification = "CORRECT"
        add_un(ds, 0x04000561, un_bytes(item, 0x04000561, "ascii"), undefined)
    elif where == "private":  # (the UN first: pydicom reads an element added after its creator by the creator)
        add_un(ds, 0x00091001, un_bytes(_identity_item(), 0x00091001, "ascii"), undefined)
        ds.add_new(0x00090010, "LO", "FAKE UN CREATOR")
    elif where == "standard":
        add_un(ds, 0x00081140, un_bytes(_identity_item(**referenced), 0x00081140, "ascii"), undefined)
    else:
        outer = Dataset()
        outer.SeriesInstanceUID = ROOT + "52.8"
        add_un(outer, 0x00081140, un_bytes(_identity_item(**referenced), 0x00081140, "ascii"), undefined)
        ds.ReferencedSeriesSequence = pydicom.Sequence([outer])


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("undefined", [False, True], ids=["defined", "undefined"])
@pytest.mark.parametrize("where", ["original-attributes", "private", "standard", "in-an-item"])
def test_a_patient_named_only_in_items_of_a_sequence_stored_as_un_is_searched_for(tmp_path: Path, encoding: str,
                                                                                 undefined: bool, where: str) -> None:
    """The top level names no one; the patient's name, ID and birth date stand only in the items of a sequence
    stored as UN (PS3.5 6.2.2; in implicit VR the same bytes are a sequence, or a private value of unknown VR),
    of defined or undefined length. A kept description (--clean-descriptors), ImageComments and a kept private value
    repeat them: full cleans them out of each, and releases the file."""
    ds = make_dataset(subject=52)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Anonymous", "", ""
    _stored_as_un(ds, where, undefined)
    ds.SeriesDescription = "T1 VO-5521-8830 born 19570412"
    ds.ImageComments = "Vrellinghast moved"
    options = Options(level=Level.FULL, key=KEY, clean_descriptors=True)
    data = _coil_string_cleaned(tmp_path, ds, encoding, "VRELLINGHAST", options)
    assert b"VRELLINGHAST" not in data and b"5521-8830" not in data and b"19570412" not in data
    with quiet():
        out = pydicom.dcmread(files_under(tmp_path / "out")[0])
    assert out.SeriesDescription.startswith("T1 ") and out.ImageComments.endswith(" moved")


@pytest.mark.parametrize("encoding", ["explicit_le", "implicit_le"])
@pytest.mark.parametrize("tag", [0x00091001, 0x04000561], ids=["private", "original-attributes"])
def test_identity_in_un_items_the_engine_cannot_read_is_not_released(tmp_path: Path, encoding: str,
                                                                     tag: int) -> None:
    """A UN value whose bytes are items (as pydicom reads them) that the engine does not read as it reads a
    sequence (here an item's elements out of order) and that names the patient alone: a kept text repeats the name.
    A standard sequence is read by pydicom and written back in order (the salvage), then cleaned as any other; a
    private one stays as it was, and the file fails: it is never released with the name."""
    body = b"".join(struct.pack("<HHL", t >> 16, t & 0xFFFF, len(v)) + v
                    for t, v in ((0x00100020, b"VO-5521-8830"), (0x00100010, b"Vrellinghast^Odo")))
    value = struct.pack("<HHL", 0xFFFE, 0xE000, len(body)) + body
    assert parses_as_sequence(value)
    ds = make_dataset(subject=53)
    ds.PatientName, ds.PatientID = "Anonymous", ""
    add_un(ds, tag, value)
    if tag == 0x00091001:
        ds.add_new(0x00090010, "LO", "FAKE UN CREATOR")
    ds.ImageComments = "Vrellinghast moved"
    source = tmp_path / "in.dcm"
    source.write_bytes(part10(ds, encoding))
    record = anonymize_file(source, tmp_path / "out", Options(level=Level.FULL, key=KEY, clean_descriptors=True))
    if tag == 0x00091001:
        assert record.status is Status.FAILED and "elements out of order" in record.reason
        assert not files_under(tmp_path / "out")
        return
    assert record.status is Status.WRITTEN, record.reason
    (out,) = files_under(tmp_path / "out")
    data = searchable_bytes(out).upper()
    assert b"VRELLINGHAST" not in data and b"5521-8830" not in data


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _sr_naming_the_patient_in_a_code(code: Dataset, concept: bool) -> Dataset:
    """An SR document whose content tree holds `code` as an item's concept name or its coded value; the patient's
    family name is an eponymous view's (SCT 399065000, Causton), so that `code` may repeat it as a code meaning."""
    ds = make_dataset(subject=54)
    ds.PatientName = "Causton^Odo"
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "CODE"
    item.ConceptNameCodeSequence = pydicom.Sequence([_code("121071", "DCM", "Finding") if concept else code])
    item.ConceptCodeSequence = pydicom.Sequence([code if concept else _code("12738006", "SCT", "Brain")])
    root = Dataset()
    root.RelationshipType, root.ValueType, root.ContinuityOfContent = "CONTAINS", "CONTAINER", "SEPARATE"
    root.ContentSequence = pydicom.Sequence([item])
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = pydicom.Sequence([_code("18748-4", "LN", "Diagnostic Imaging Report")])
    ds.ContentSequence = pydicom.Sequence([root])
    return ds


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("concept", [False, True], ids=["concept-name", "concept"])
@pytest.mark.parametrize(("value", "scheme"), [("ZQ1", "99LOCAL"), ("ZQ1", "SCT"), ("121071", "DCM")])
def test_a_patient_named_in_an_sr_trees_local_code_is_held_back(tmp_path: Path, encoding: str, concept: bool,
                                                                value: str, scheme: str) -> None:
    """full keeps code sequences (vocabulary; PS3.15 keeps them) and the residual check is their safety net: a code
    meaning that repeats the patient's name holds the file back, also when the name is the meaning of a standard
    code, unless the item is that code (a local scheme's code, or another code of a standard scheme, is none)."""
    ds = _sr_naming_the_patient_in_a_code(_code(value, scheme, "Causton"), concept)
    source = tmp_path / "in.dcm"
    source.write_bytes(part10(ds, encoding))
    record = anonymize_file(source, tmp_path / "out", Options(level=Level.FULL, key=KEY, quarantine=tmp_path / "held"))
    assert record.status is Status.QUARANTINED, record.reason
    sequence = "(0040,A168)" if concept else "(0040,A043)"
    assert {(f.attribute, f.where) for f in record.findings} == {
        ("PatientName", f"(0040,A730)[0].(0040,A730)[0].{sequence}[0].(0008,0104)")}
    assert not files_under(tmp_path / "out") and "Causton" not in record.reason


@pytest.mark.parametrize("scheme", ["SCT", "SRT"])
def test_a_standard_codes_meaning_that_is_the_patients_name_is_released(tmp_path: Path, scheme: str) -> None:
    """The eponymous view's own code (in SNOMED CT or, as older files write it, SNOMED RT) names a view, not the
    patient: the file is released with it."""
    code = _code("399065000" if scheme == "SCT" else "R-1026B", scheme, "Causton")
    source = tmp_path / "in.dcm"
    source.write_bytes(part10(_sr_naming_the_patient_in_a_code(code, concept=True), "explicit_le"))
    record = anonymize_file(source, tmp_path / "out", FULL)
    assert record.status is Status.WRITTEN, record.reason


@pytest.mark.parametrize("codec", ["utf_32_le", "utf_32_be", "utf_16_be"])
@pytest.mark.parametrize("script", ["latin", "cyrillic"])
def test_identifying_text_in_utf32_in_a_kept_binary_value_is_cleaned_out(tmp_path: Path, codec: str,
                                                                         script: str) -> None:
    """GE's User Define Data is a kept binary header; a program may write wide-character text there (wchar_t is
    UTF-32 on Linux). The name, ID, birth date and study UID in it are overwritten in place: the value keeps its
    length, its other bytes and the text's NUL bytes (so it stays text), and the file is released."""
    ds = make_dataset(subject=46)
    if script == "cyrillic":
        ds.SpecificCharacterSet, ds.PatientName = "ISO_IR 192", "Квоксворт^Зельда"
    planted = [str(ds.PatientName).split("^")[0], str(ds.PatientID), "03.02.1961", str(ds.StudyInstanceUID)]
    ds.PatientBirthDate = "19610203"
    text = " | ".join(planted).encode(codec)
    value = b"\x01\x02\x03\x04" + text + b"\x05\x06\x07\x08"
    ds.add_new(0x00430010, "LO", "GEMS_PARM_01")
    ds.add_new(0x0043102A, "OB", value)
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    record = anonymize_file(source, tmp_path / "out", FULL)
    assert record.status is Status.WRITTEN, record.reason
    (out,) = files_under(tmp_path / "out")
    data, cleaned = out.read_bytes(), pydicom.dcmread(out)[0x0043102A].value
    assert not [p for p in planted if p.encode(codec) in data or p.upper().encode(codec) in data]
    assert len(cleaned) == len(value) and cleaned[:4] == value[:4] and cleaned[-4:] == value[-4:]
    assert [i for i, b in enumerate(cleaned) if b == 0] == [i for i, b in enumerate(value) if b == 0]
    assert " | ".encode(codec) in cleaned  # (what is not identifying stays)


@pytest.mark.parametrize(("kept", "linked", "dated"), [
    ("{study}", True, True), ("{study}", True, False), ("{series}.7", True, True), ("{series}.7", True, False),
    ("for {frame}", True, False), ("{study}5", False, True), ("{study}5", False, False),
    ("1.2.826.0.1.3680043.2.1125.1", False, True), ("ref {sop}", True, True), ("{sop}.1", True, False),
    ("{sop}7", False, False), ("ref {sop25}", True, True),
])
def test_the_inputs_own_uid_in_a_kept_private_value_is_cleaned_out(tmp_path: Path, kept: str, linked: bool,
                                                                 dated: bool) -> None:
    """full remaps every UID: the original study, series, frame of reference or instance UID (or one derived from
    it by a suffix) written in a kept private value would link the output back to the original study or file, so
    the cleaning of kept values overwrites it (whole, also when a scanner wrote the study date into it: `dated`).
    A longer number that starts with it, or another UID, is no link and stays."""
    ds = make_dataset(subject=41)
    if not dated:
        root = "1.2.826.0.1.3680043.10.543.41"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = pydicom.uid.UID(root), pydicom.uid.UID(f"{root}.2")
        ds.FrameOfReferenceUID = pydicom.uid.UID(f"{root}.4")
    if "sop" in kept:  # (under a root of its own: the series UID is no part of it; or another system's 2.25 UID)
        sop = "2.25.333172861509845321647825612345678" if "sop25" in kept else "1.2.826.0.1.3680043.10.9.41.77"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.UID(sop)
    text = kept.format(study=ds.StudyInstanceUID, series=ds.SeriesInstanceUID, frame=ds.FrameOfReferenceUID,
                       sop=ds.SOPInstanceUID, sop25=ds.SOPInstanceUID)
    ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
    ds.add_new(0x00191008, "LO", text)  # CSA Image Header Type: a kept code row, cleaned of identifying values
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    record = anonymize_file(source, tmp_path / "out", Options(level=Level.FULL, key=KEY))
    assert record.status is Status.WRITTEN, record.reason
    (out,) = files_under(tmp_path / "out")
    data, value = out.read_bytes(), str(pydicom.dcmread(out)[0x00191008].value)
    originals = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID, ds.SOPInstanceUID)
    if linked:
        assert not any(uid.encode() in data for uid in originals)
        assert "(0019,1008)" in {c.tag for c in record.changes if c.action == "cleaned"}, record.changes
        assert len(value) == len(text)  # (in place: the value keeps its length)
    else:  # (a study date in it is still overwritten, as any date of the file's)
        assert "X" not in value and value[:20] == text[:20]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-32-le"])
@pytest.mark.parametrize("between", [True, False])
@pytest.mark.parametrize("check", [True, False])
def test_a_kept_private_value_s_last_bytes_do_not_hide_an_id_in_the_next(tmp_path: Path, encoding: str, between: bool,
                                                                       check: bool) -> None:
    """Found from outside: kept private values are searched joined, one NUL between them, and a boundary's test in
    UTF-16 or UTF-32 read the last byte of one (b"\x00Z") with that NUL as a letter before the PatientID at the
    start of the next: the ID stayed, and the residual check held the file back (without it, the file was released
    with it). With a removed value between them (`between`) it was found until a42ff72 searched kept values only."""
    ds = make_dataset(subject=46)
    ds.PatientID = "FAKEQWERTY"
    for tag in [tag for tag in ds.keys() if tag >> 16 == 0x0021]:  # (its kept values of the block: none between)
        del ds[tag]
    # rows of no dictionary VR, kept as numbers: the ID's bytes among others that are no text (text that is most of
    # a number row's bytes makes it go whole, since 2c8c3b5: the ID is then cut in a value that stays)
    ds.add_new(0x00210010, "LO", "SIEMENS MR SDI 02")
    ds.add_new(0x00211004, "OB", b"\x01\x02\x00Z")  # (kept, as the next)
    if between:
        ds.add_new(0x00211010, "OB", b"\x01 ")  # (removed)
    id_bytes = ds.PatientID.encode(encoding)
    ds.add_new(0x00211042, "OB", id_bytes + b"\x01\x02" + b"\xff" * (len(id_bytes) // 2))
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    record = anonymize_file(source, tmp_path / "out", Options(level=Level.FULL, key=KEY, residual_check=check))
    assert record.status is Status.WRITTEN, record.reason
    (out,) = files_under(tmp_path / "out")
    assert id_bytes not in out.read_bytes()
    assert "(0021,1042)" in {c.tag for c in record.changes if c.action == "cleaned"}, record.changes


@pytest.mark.parametrize(("case", "value"), [
    ("tail16", b"\x01" + "FAKEQWERTY".encode("utf-16-le")[:-1]),  # (its last NUL the next tag's, in big endian)
    ("head16be", "FAKEQWERTY".encode("utf-16-be")[1:] + b"\x01"),  # (its first NUL the length's last byte)
    ("tail32", b"\x01\x02\x03" + "FAKEQWERTY".encode("utf-32-le")[:-3]),
    ("head32be", "FAKEQWERTY".encode("utf-32-be")[3:] + b"\x01\x02\x03"),
])
@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("check", [True, False])
def test_a_kept_value_whose_id_the_bytes_beside_it_complete_is_cut(tmp_path: Path, case: str, value: bytes,
                                                                    big_endian: bool, check: bool) -> None:
    """Found from outside: a kept value holding the PatientID in UTF-16 or UTF-32, one character at its start or end
    whole only with the NUL bytes beside the value (in the file: the length before it, or the next tag). Searched
    with its neighbours the ID was found, searched alone it was not, and the value was kept uncut: held back by the
    residual check (released in one case, verify calling it clean), released with the ID without it."""
    ds = make_dataset(subject=48)
    ds.PatientID = "FAKEQWERTY"
    for tag in [tag for tag in ds.keys() if tag >> 16 == 0x0021]:
        del ds[tag]
    # kept: a row of numbers of no dictionary VR, its bytes mostly no text (else it goes whole, since 2c8c3b5), the
    # ID at the value's end or start as the case says; the next element's group (0028) begins with a NUL byte
    other = b"\xff" * 16
    ds.add_new(0x00210010, "LO", "SIEMENS MR SDI 02")
    ds.add_new(0x00211042, "OB", other + value if case.startswith("tail") else value + other)
    ds.add_new(0x00200010, "SH", "4711")  # (StudyID: its tag's bytes follow the value)
    ds.BitsStored, ds.HighBit = 16, 15  # (pixel bytes written as they are in either byte order: no unused bits)
    if big_endian:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRBigEndian
    source = tmp_path / "in.dcm"
    pydicom.dcmwrite(source, ds, implicit_vr=False, little_endian=not big_endian, force_encoding=True)
    record = anonymize_file(source, tmp_path / "out", Options(level=Level.FULL, key=KEY, residual_check=check))
    assert record.status is Status.WRITTEN, record.reason
    (out,) = files_under(tmp_path / "out")
    data = out.read_bytes().lower()
    assert not [code for code in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
                if "fakeqwerty".encode(code) in data]


def test_a_kept_value_is_cut_of_the_whole_name_a_shorter_needle_cut_first_begins(tmp_path: Path) -> None:
    """Found from outside: a kept value "ESC ( B" + "FAKE GENERAL HOSPITAL" was cut of the institution's word "FAKE"
    first, and the match of its whole name, across that cut, was passed over: "XXXX GENERAL HOSPITAL" was kept (and
    the residual check, looking for the whole name, called it clean)."""
    ds = make_dataset(subject=47)
    ds.PatientID, ds.InstitutionName = "FAKE12345", "FAKE GENERAL HOSPITAL"
    ds.add_new(0x00510010, "LO", "SIEMENS MR HEADER")
    ds.add_new(0x0051100B, "OB", b"\x00\x1a" + "fake12345".encode("utf-16-le") + b"\x01\x00")
    ds.add_new(0x00430011, "LO", "GEMS_PARM_01")  # (a code row: text is kept, cut; a number row's text goes whole)
    ds.add_new(0x00431195, "OB", b"\x1b(BFAKE GENERAL HOSPITAL9\x00")
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    record = anonymize_file(source, tmp_path / "out", Options(level=Level.FULL, key=KEY, residual_check=False))
    assert record.status is Status.WRITTEN, record.reason
    (out,) = files_under(tmp_path / "out")
    assert pydicom.dcmread(out)[0x00431195].value == b"\x1b(B" + b"X" * 21 + b"9\x00"


def _person_named(ds: Dataset, where: str) -> None:
    """Name "Snickerdon^Pellam" in `ds` only where the top level's identifying list does not look: an attribute
    outside it (a consulting physician), an item (a scheduled performer, a verifying observer), the value a
    correction replaced (the top level's referring physician emptied)."""
    name = "Snickerdon^Pellam"
    item = Dataset()
    if where == "consulting":
        ds.ConsultingPhysicianName = name
    elif where == "scheduled":
        item.ScheduledPerformingPhysicianName = name
        ds.ScheduledProcedureStepSequence = pydicom.Sequence([item])
    elif where == "observer":
        item.VerifyingObserverName, item.VerificationDateTime = name, "20240115083000"
        ds.VerifyingObserverSequence = pydicom.Sequence([item])
    else:
        ds.ReferringPhysicianName = ""
        modified = Dataset()
        modified.ReferringPhysicianName = name
        item.ModifiedAttributesSequence = pydicom.Sequence([modified])
        ds.OriginalAttributesSequence = pydicom.Sequence([item])


PERSON_PLACES = ["consulting", "scheduled", "observer", "corrected"]


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("where", PERSON_PLACES)
def test_a_person_named_outside_the_identifying_list_is_searched_for(tmp_path: Path, encoding: str,
                                                                    where: str) -> None:
    """Every person's name is searched for wherever it stands, not only the top level's listed ones: full removes
    the name where it stands, and cleans it out of a kept value that copies it (a Siemens coil string)."""
    ds = make_dataset(subject=54)
    _person_named(ds, where)
    assert b"SNICKERDON" not in _coil_string_cleaned(tmp_path, ds, encoding, "SNICKERDON")


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("where", PERSON_PLACES)
def test_a_kept_text_that_copies_a_person_named_outside_the_list_holds_the_file_back(
        tmp_path: Path, encoding: str, where: str) -> None:
    """A kept standard text (WindowCenterWidthExplanation) that copies such a name: the file is held back, the
    finding naming the attribute the name came from."""
    ds = make_dataset(subject=55)
    _person_named(ds, where)
    ds.WindowCenter, ds.WindowWidth, ds.WindowCenterWidthExplanation = 100, 200, "SNICKERDON"
    source = tmp_path / "in.dcm"
    source.write_bytes(part10(ds, encoding))
    record = anonymize_file(source, tmp_path / "out", FULL)
    assert record.status is Status.QUARANTINED and not files_under(tmp_path / "out")
    keyword = {"consulting": "ConsultingPhysicianName", "scheduled": "ScheduledPerformingPhysicianName",
               "observer": "VerifyingObserverName", "corrected": "ReferringPhysicianName"}[where]
    assert {"attribute": keyword, "where": "(0028,1055)"} in [f.as_dict() for f in record.findings]


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_an_institution_named_only_in_an_item_is_searched_for(tmp_path: Path, encoding: str) -> None:
    """The institution's name stands only in the item that keeps what a correction replaced: it is searched for as
    the top level's is, and cleaned out of a kept value that copies it."""
    ds = make_dataset(subject=56)
    del ds.InstitutionName
    item, modified = Dataset(), Dataset()
    modified.InstitutionName = "Glimmerdale Clinic"
    item.ModifiedAttributesSequence = pydicom.Sequence([modified])
    ds.OriginalAttributesSequence = pydicom.Sequence([item])
    assert b"GLIMMERDALE" not in _coil_string_cleaned(tmp_path, ds, encoding, "GLIMMERDALE")


@pytest.mark.parametrize("version", ["GLIMMERDALE2", "OFFIS_DCMTK_GLIMMERDALE", "OFFIS_DCMTK_365"])
def test_an_implementation_version_name_holding_an_identifying_value_is_removed(tmp_path: Path,
                                                                               version: str) -> None:
    """A site may name its own software in the file meta's ImplementationVersionName, after itself: full removes
    the element then (the file is released, not held back); a toolkit's name that holds the institution's only in
    the toolkit's own (OFFIS's DCMTK at OFFIS) stays, as it does at anonymize."""
    ds = make_dataset(subject=57)
    ds.InstitutionName = "Glimmerdale Clinic" if "GLIMMERDALE" in version else "OFFIS"
    ds.file_meta.ImplementationVersionName = version
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    for options, name in ((FULL, "full"), (Options(level=Level.ANONYMIZE), "anonymize")):
        record = anonymize_file(source, tmp_path / name, options)
        assert record.status is Status.WRITTEN, record.reason
        with quiet():
            meta = pydicom.dcmread(files_under(tmp_path / name)[0]).file_meta
        kept = name == "anonymize" or not version.startswith("GLIMMERDALE") and version.endswith("365")
        assert meta.get("ImplementationVersionName") == (version if kept else None)
        assert ("(0002,0013)" in [c.tag for c in record.changes]) is not kept


def _jp2_file(codestream: bytes, text: bytes) -> bytes:
    """A JPEG 2000 codestream inside the JP2 file format's boxes, with an XML box holding `text`."""
    def box(kind: bytes, payload: bytes) -> bytes:
        return (len(payload) + 8).to_bytes(4, "big") + kind + payload
    return (box(b"jP  ", b"\r\n\x87\n") + box(b"ftyp", b"jp2 \0\0\0\0jp2 ") + box(b"xml ", b"<p>" + text + b"</p>")
            + box(b"jp2c", codestream))


@pytest.mark.parametrize("place", ["fragment-after-the-end", "frame-of-text", "before-start-past-64k",
                                   "after-the-end-past-64k", "jp2-boxes", "video", "clean-two-frames"])
def test_bytes_outside_any_codestream_are_searched_whole(tmp_path: Path, place: str) -> None:
    """No decoder reads a fragment after a frame's end, a frame that is no codestream, stray bytes before a start
    or after an end however many, the boxes of a JP2 file around its codestream, or a video's container: each is
    searched in full (found from outside: each was released)."""
    secret = make_dataset(subject=58)
    text = f"{secret.PatientName} {secret.PatientID}".encode()
    syntax = pydicom.uid.JPEGBaseline8Bit
    jpeg = _codestream(syntax, b"codec 9d")
    frames = 2 if place in ("frame-of-text", "clean-two-frames") else 1
    fragments = {"fragment-after-the-end": [jpeg, text], "frame-of-text": [jpeg, text],
                 "before-start-past-64k": [text + b" " * 70_000 + jpeg],
                 "after-the-end-past-64k": [jpeg + text + b" " * 70_000],
                 "jp2-boxes": [_jp2_file(_codestream(pydicom.uid.JPEG2000Lossless, b"codec"), text)],
                 "video": [b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomavc1" + b"\x00\x00\x00\x01\x06\x05" + text],
                 "clean-two-frames": [jpeg, jpeg]}[place]
    if place == "jp2-boxes":
        syntax = pydicom.uid.JPEG2000Lossless
    elif place == "video":
        syntax = pydicom.uid.UID("1.2.840.10008.1.2.4.102")  # MPEG-4 AVC/H.264
    ds = make_dataset(subject=58)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.SamplesPerPixel, ds.NumberOfFrames = 8, 8, 7, 1, frames
    record = _full_on_fragments(tmp_path, ds, fragments, syntax)
    if place.startswith("clean"):
        assert record.status is Status.WRITTEN, record.reason
        return
    assert record.status is Status.QUARANTINED, record.reason
    assert {f.where for f in record.findings} == {"(7FE0,0010) outside the coded image"}
    assert "PatientID" in {f.attribute for f in record.findings}


def _rle_frame(plane: bytes, after: bytes) -> bytes:
    """One RLE Lossless frame of one 8-bit segment encoding `plane` (literal runs), `after` it in the segment."""
    runs = b"".join(bytes([len(c) - 1]) + c for c in (plane[i:i + 128] for i in range(0, len(plane), 128)))
    return (1).to_bytes(4, "little") + (64).to_bytes(4, "little") + bytes(56) + runs + after


@pytest.mark.parametrize(("after", "held"), [(b"Quxworth^Zelda ZQ-4471-0093", True), (bytes(8), False),
                                             (b"", False)])
def test_bytes_after_an_rle_segments_image_hold_the_file_back(tmp_path: Path, after: bytes, held: bool) -> None:
    """An RLE segment is read until it gave Rows x Columns bytes: what follows it in the fragment no decoder reads
    (zero padding aside). Found from outside: such text was released."""
    ds = make_dataset(subject=59)
    ds.Rows = ds.Columns = 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.SamplesPerPixel, ds.PixelRepresentation = 8, 8, 7, 1, 0
    frame = _rle_frame(bytes(range(256)), after)
    ds.PixelData = pydicom.encaps.encapsulate([frame + b"\x00" * (len(frame) % 2)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = pydicom.uid.RLELossless
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    with quiet():
        assert pydicom.dcmread(source).pixel_array.tobytes() == bytes(range(256))  # (the segment is sound)
    record = anonymize_file(source, tmp_path / "out", Options(level=Level.FULL, key=KEY, allow_burned_in=True))
    assert record.status is (Status.QUARANTINED if held else Status.WRITTEN), record.reason
    assert ("pixel data holds 28 bytes that no frame shows" in record.reason) is held


@pytest.mark.parametrize(("bits", "samples"), [(8, 1), (16, 1), (8, 3)])
def test_an_rle_segment_past_those_the_image_is_made_of_holds_the_file_back(tmp_path: Path, bits: int,
                                                                            samples: int) -> None:
    """The image is made of a segment per byte of a sample; one more (found from outside: a second segment held a
    picture of the name, which no decoder shows) is read by nothing: held, as bytes after a segment's image are."""
    ds = make_dataset(subject=59)
    ds.Rows = ds.Columns = 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.SamplesPerPixel = samples
    if samples == 3:
        ds.PhotometricInterpretation, ds.PlanarConfiguration = "RGB", 0
    plane = bytes(range(256))
    runs = b"".join(bytes([len(c) - 1]) + c for c in (plane[i:i + 128] for i in range(0, 256, 128)))
    count = samples * bits // 8
    hidden = b"\x7f" + b"QUXWORTH" * 16  # (a second picture, as one literal run)
    segments = [runs] * count + [hidden]
    offsets, at = [], 64
    for segment in segments:
        offsets.append(at)
        at += len(segment)
    header = struct.pack("<16L", len(segments), *offsets, *[0] * (15 - len(offsets)))
    record = _full_on_rle(tmp_path, ds, header + b"".join(segments))
    assert record.status is Status.QUARANTINED, record.reason
    assert "pixel data holds 13" in record.reason and "bytes that no frame shows" in record.reason


@pytest.mark.parametrize(("layout", "held"), [("gap", True), ("zero gap", False), ("reversed", True)])
def test_rle_bytes_no_segment_starts_with_hold_the_file_back(tmp_path: Path, layout: str, held: bool) -> None:
    """Found from outside: bytes between the RLE header and the first segment (a picture of the name), or segments
    listed out of order (which no decoder reads), made the fragment no RLE fragment to the check, and the file was
    released, its bytes searched for text only."""
    ds = make_dataset(subject=59)
    ds.Rows = ds.Columns = 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.SamplesPerPixel, ds.PixelRepresentation = 8, 8, 7, 1, 0
    plane = bytes(range(256))
    runs = b"".join(bytes([len(c) - 1]) + c for c in (plane[i:i + 128] for i in range(0, 256, 128)))
    hidden = b"\x7f" + b"QUXWORTH" * 16
    if layout == "reversed":  # (the image's segment listed second, though it comes first)
        body = runs + hidden
        header = struct.pack("<16L", 2, 64 + len(runs), 64, *[0] * 13)
    else:
        gap = hidden if layout == "gap" else bytes(len(hidden))
        body = gap + runs
        header = struct.pack("<16L", 1, 64 + len(gap), *[0] * 14)
    record = _full_on_rle(tmp_path, ds, header + body)
    assert record.status is (Status.QUARANTINED if held else Status.WRITTEN), record.reason
    assert ("bytes that no frame shows" in record.reason) is held


@pytest.mark.parametrize("case", ["jpeg-fragment-in-an-rle-file", "bytes-before-a-jpeg", "clean-rle"])
def test_text_taken_for_a_scans_coded_data_where_no_decoder_reads_one_holds_the_file(tmp_path: Path,
                                                                                      case: str) -> None:
    """Coded data is not searched for text (chance hits), but only a decoder of the file's transfer syntax reads a
    frame, and only from its start: a JPEG's start and scan header in an RLE file, or after two stray bytes in a
    JPEG file, made the name after them coded data (found from outside: released)."""
    secret = make_dataset(subject=59)
    text = f"{secret.PatientName} {secret.PatientID}".encode()
    fake_scan = b"\xff\xd8\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + text
    plane = bytes(range(256))
    runs = b"".join(bytes([len(c) - 1]) + c for c in (plane[i:i + 128] for i in range(0, 256, 128)))
    rle = struct.pack("<16L", 1, 64, *[0] * 14) + runs
    fragments, syntax = {"jpeg-fragment-in-an-rle-file": ([rle, fake_scan], pydicom.uid.RLELossless),
                         "bytes-before-a-jpeg": ([b"\x00\x00" + fake_scan], pydicom.uid.JPEGBaseline8Bit),
                         "clean-rle": ([rle, rle], pydicom.uid.RLELossless)}[case]
    ds = make_dataset(subject=59)
    ds.Rows = ds.Columns = 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.SamplesPerPixel, ds.PixelRepresentation = 8, 8, 7, 1, 0
    ds.NumberOfFrames = len(fragments)
    record = _full_on_fragments(tmp_path, ds, fragments, syntax)
    if case.startswith("clean"):
        assert record.status is Status.WRITTEN, record.reason
        return
    assert record.status is Status.QUARANTINED, record.reason
    assert "PatientID" in {f.attribute for f in record.findings}, record.reason


def test_a_fragment_of_an_rle_file_that_holds_no_rle_segments_holds_the_file(tmp_path: Path) -> None:
    """No decoder of an RLE file reads a fragment that is no RLE segments (here a JPEG, which may show anything):
    bytes no frame shows (found on review: once such a fragment was no longer taken for a JPEG, it was released)."""
    plane = bytes(range(256))
    runs = b"".join(bytes([len(c) - 1]) + c for c in (plane[i:i + 128] for i in range(0, 256, 128)))
    rle = struct.pack("<16L", 1, 64, *[0] * 14) + runs
    jpeg = _codestream(pydicom.uid.JPEGBaseline8Bit, b"codec 9d")
    ds = make_dataset(subject=59)
    ds.Rows = ds.Columns = 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.SamplesPerPixel, ds.PixelRepresentation = 8, 8, 7, 1, 0
    ds.NumberOfFrames = 3
    record = _full_on_fragments(tmp_path, ds, [rle, jpeg, rle], pydicom.uid.RLELossless)
    assert record.status is Status.QUARANTINED, record.reason
    assert f"pixel data holds {len(jpeg) + len(jpeg) % 2} bytes that no frame shows" in record.reason, record.reason


def _full_on_rle(tmp_path: Path, ds: Dataset, frame: bytes) -> Record:
    """`full` (burned-in text allowed: the pixels are looked at) on `ds` with one RLE Lossless frame, `frame`."""
    return _full_on_fragments(tmp_path, ds, [frame], pydicom.uid.RLELossless)


def _full_on_fragments(tmp_path: Path, ds: Dataset, fragments: list[bytes], syntax: str) -> Record:
    """`full` (burned-in text allowed: the pixels are looked at) on `ds` with its pixel data the `fragments`
    (each padded to even length), in the transfer syntax `syntax`."""
    ds.PixelData = pydicom.encaps.encapsulate([f + b"\x00" * (len(f) % 2) for f in fragments])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = pydicom.uid.UID(syntax)
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    return anonymize_file(source, tmp_path / "out", Options(level=Level.FULL, key=KEY, allow_burned_in=True))


@pytest.mark.parametrize("keyword", ["FloatPixelData", "DoubleFloatPixelData"])
@pytest.mark.parametrize(("after", "held"), [(b"Quxworth^Zelda ZQ-4471-0093 ", True), (bytes(28), False)])
def test_bytes_after_the_frames_of_float_pixel_data_hold_the_file_back(tmp_path: Path, keyword: str, after: bytes,
                                                                       held: bool) -> None:
    """As for integer pixel data: bytes past the frames of float or double float pixel data show in no image."""
    ds = make_dataset(subject=60)
    del ds.PixelData, ds.BitsStored, ds.HighBit, ds.PixelRepresentation
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated = 32 if keyword == "FloatPixelData" else 64
    setattr(ds, keyword, bytes(16 * ds.BitsAllocated // 8) + after)
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    record = anonymize_file(source, tmp_path / "out", FULL)
    assert record.status is (Status.QUARANTINED if held else Status.WRITTEN), record.reason
    assert ("pixel data holds 28 bytes that no frame shows" in record.reason) is held


@pytest.mark.parametrize("syntax", [pydicom.uid.ExplicitVRLittleEndian, pydicom.uid.DeflatedExplicitVRLittleEndian])
@pytest.mark.parametrize(("frames", "held"), [(0.5, True), (2.5, True), (0.5, False), (3, False)],
                         ids=["half-a-frame", "a-frame-and-a-half-more", "half-a-frame-of-zeros", "whole"])
def test_a_frame_the_pixel_data_holds_only_part_of_is_no_image(tmp_path: Path, syntax: str, frames: float,
                                                               held: bool) -> None:
    """Native pixel data shorter than its frames: the part of a frame it ends in shows in no image (found from
    outside: 128 bytes of text, encapsulated items written as a native value, were released for a 64 x 64 image).
    Zeros there are released; whole frames are pixels. (A deflated file's is read whole.)"""
    ds = make_dataset(subject=62, rows=16, columns=16)  # (16-bit: 512 bytes a frame)
    ds.NumberOfFrames = 3
    text = b"\x55\xaa" * 128 if held else bytes(256)  # (no needle: the bytes alone hold the file)
    whole = bytes(i % 16 for i in range(int(frames) * 512))
    ds.PixelData = whole + (text if frames % 1 else b"")
    ds.file_meta.TransferSyntaxUID = pydicom.uid.UID(syntax)
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    record = anonymize_file(source, tmp_path / "out", FULL)
    assert record.status is (Status.QUARANTINED if held else Status.WRITTEN), record.reason
    assert ("pixel data holds 256 bytes that no frame shows" in record.reason) is held, record.reason


@pytest.mark.parametrize(("after", "held"), [(b"", False), (b"\x55\xaa" * 64, True)])
def test_a_ybr_full_422_frame_takes_two_samples_a_pixel(tmp_path: Path, after: bytes, held: bool) -> None:
    """Native YBR_FULL_422 stores a Cb and a Cr for two pixels: a frame is two bytes a pixel (8 bits), not three
    (pydicom's SC_ybr_full_422_uncompressed.dcm was held as a frame it held only part of); bytes past its frames
    hold the file as any others."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("SC_ybr_full_422_uncompressed.dcm")
    assert isinstance(path, str)
    ds = pydicom.dcmread(path)
    assert len(ds.PixelData) == ds.Rows * ds.Columns * 2
    ds.PixelData += after
    source = tmp_path / "in.dcm"
    ds.save_as(source)
    record = anonymize_file(source, tmp_path / "out", Options(level=Level.FULL, key=KEY, allow_burned_in=True))
    assert record.status is (Status.QUARANTINED if held else Status.WRITTEN), record.reason
    assert ("pixel data holds 128 bytes that no frame shows" in record.reason) is held, record.reason


@pytest.mark.parametrize("missing", ["Rows", "Columns", "BitsAllocated", None])
@pytest.mark.parametrize("keyword", ["PixelData", "FloatPixelData"])
def test_native_pixel_data_whose_header_gives_no_frame_size_is_held_back(tmp_path: Path, missing: str | None,
                                                                          keyword: str) -> None:
    """Without Rows, Columns or BitsAllocated no frame takes any byte: the whole value is bytes no image shows
    (text there was released: found from outside). A value of zeros stays released."""
    ds = make_dataset(subject=61)
    del ds.PixelData
    ds.BitsAllocated = 32 if keyword == "FloatPixelData" else 16
    if keyword == "FloatPixelData":
        del ds.BitsStored, ds.HighBit, ds.PixelRepresentation
    if missing is not None:
        delattr(ds, missing)
    text = b"Quxworth^Zelda ZQ-4471-0093 1961"
    tag, vr = (0x7FE00010, "OW") if keyword == "PixelData" else (0x7FE00008, "OF")
    ds.add_new(tag, vr, text if missing is not None else bytes(len(text)))
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=False)
    record = anonymize_file(source, tmp_path / "out", FULL)
    assert record.status is (Status.QUARANTINED if missing else Status.WRITTEN), record.reason


@pytest.mark.parametrize(("after", "held"), [(b"", False), (b"Quxworth^Zelda ZQ-4471-0093 ", True)])
def test_pixel_data_whose_number_of_frames_is_no_number_holds_as_many_frames_as_fit(tmp_path: Path, after: bytes,
                                                                                    held: bool) -> None:
    """NumberOfFrames '1A' (pydicom's badVR.dcm): the value's whole frames are pixels, what follows them is not."""
    ds = make_dataset(subject=62)
    ds.Rows = ds.Columns = 4
    ds.NumberOfFrames = "2"
    ds.PixelData = bytes(i % 16 for i in range(64)) + after  # (values of 12 bits: none outside the stored ones)
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    raw = source.read_bytes().replace(b"IS\x02\x002 ", b"IS\x02\x001A")
    source.write_bytes(raw)
    assert pydicom.dcmread(source)["NumberOfFrames"].VR == "IS" and b"1A" in raw
    record = anonymize_file(source, tmp_path / "out", FULL)
    assert record.status is (Status.QUARANTINED if held else Status.WRITTEN), record.reason


@pytest.mark.parametrize(("encoding", "action"), [("utf-32-le", "cleaned"), ("utf-16-le", "removed")])
def test_a_kept_binary_private_value_holding_a_name_is_cleaned_not_failed(tmp_path: Path, encoding: str,
                                                                          action: str) -> None:
    """A kept Siemens FD value (0019,xx0E) whose bytes are the patient's name in UTF-32: cleaned like any kept
    value, behind its own header (pydicom cannot write bytes as FD: the file failed, 'could not be processed
    (oserror)', found from outside). In UTF-16 its letters make a word, so it is no number and goes."""
    ds = make_dataset(subject=65)
    family = str(ds.PatientName).split("^")[0]
    ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
    value = family.ljust(12).encode(encoding)
    ds.add_new(0x0019100E, "FD", list(struct.unpack(f"<{len(value) // 8}d", value)))
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    record = anonymize_file(source, tmp_path / "out", FULL)
    assert record.status is Status.WRITTEN, record.reason
    assert ("(0019,100E)", "", action) in record.changes
    data = files_under(tmp_path / "out")[0].read_bytes()
    assert family.encode(encoding) not in data and len(data) > 0


def test_stray_bytes_are_searched_a_part_at_a_time_and_across_block_edges(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A video may lie in one fragment of hundreds of megabytes: its bytes are read in blocks that overlap and
    searched some at a time, never held whole; a name across two blocks is found all the same."""
    from neuroanon import residual

    monkeypatch.setattr(residual, "_BLOCK", 4096)
    monkeypatch.setattr(residual, "_SEARCHED_AT_ONCE", 16384)
    held: list[int] = []
    search = residual._Stray._search

    def searched(self: residual._Stray) -> None:
        held.append(self.size)
        search(self)

    monkeypatch.setattr(residual._Stray, "_search", searched)
    secret = make_dataset(subject=66)
    text = f" {str(secret.PatientName).split('^')[0]} ".encode()  # (one word, cut in two by a block's edge)
    video = b"\x00\x00\x00\x01\x09\x10" + b"\x55" * (3 * 4096 - 6 - len(text) // 2) + text + b"\x55" * 200_000
    record = _full_on_a_video(tmp_path, make_dataset(subject=66), video)
    assert record.status is Status.QUARANTINED, record.reason
    assert "PatientName" in {f.attribute for f in record.findings}
    assert len(held) > 10 and max(held) <= 16384 + 4096 + residual._OVERLAP


def test_a_videos_stream_is_no_second_picture(tmp_path: Path) -> None:
    """A video's stream holds, now and then by chance, the bytes that start and end a JPEG: a fragment that does not
    begin with a codestream is no frame's, and what follows such bytes holds no file back (it is searched)."""
    stream = b"\x55" * 5000 + b"\xff\xd8\xff\xda\x00\x02" + b"\x55" * 100 + b"\xff\xd9" + b"\x55" * 5000
    record = _full_on_a_video(tmp_path, make_dataset(subject=67), b"\x00\x00\x00\x01\x09\x10" + stream)
    assert record.status is Status.WRITTEN, record.reason


def _full_on_a_video(tmp_path: Path, ds: Dataset, fragment: bytes) -> Record:
    """`full` (burned-in text allowed) on `ds` with its pixel data one H.264 fragment, `fragment`."""
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.SamplesPerPixel = 8, 8, 7, 1
    ds.PixelData = pydicom.encaps.encapsulate([fragment])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = pydicom.uid.UID("1.2.840.10008.1.2.4.102")  # MPEG-4 AVC/H.264
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    return anonymize_file(source, tmp_path / "out", Options(level=Level.FULL, key=KEY, allow_burned_in=True))


@pytest.mark.parametrize("options", [Options(level=Level.FULL, key=KEY, shift_dates=True),
                                     Options(level=Level.FULL, key=KEY, shift_dates=True, clean_descriptors=True,
                                             retain_patient_characteristics=True, cap_ages=True)],
                         ids=["shift-dates", "bids"])
def test_a_date_equal_to_the_birth_date_is_the_dummy_not_shifted(tmp_path: Path, options: Options) -> None:
    """Dates move by the subject's offset, but the birth date, wherever it stands (a structured report's "Subject
    Birth Date" item, a ContentDate), becomes the dummy: shifted, it keeps the exact age, and one real date of the
    study gives it back (found from outside)."""
    ds = make_dataset(subject=67)
    ds.PatientBirthDate, ds.StudyDate, ds.ContentDate = "19610203", "20240115", "19610203"
    item, when = Dataset(), Dataset()
    item.ValueType, item.Date = "DATE", "19610203"
    when.ValueType, when.DateTime = "DATETIME", "19610203083000"
    ds.ContentSequence = pydicom.Sequence([item, when])
    source = tmp_path / "in.dcm"
    ds.save_as(source, enforce_file_format=True)
    record = anonymize_file(source, tmp_path / "out", options)
    assert record.status is Status.WRITTEN, record.reason
    with quiet():
        out = pydicom.dcmread(files_under(tmp_path / "out")[0])
    assert out.PatientBirthDate == out.ContentDate == out.ContentSequence[0].Date == "10000101"
    assert str(out.ContentSequence[1].DateTime).startswith("10000101")
    assert out.StudyDate not in ("20240115", "10000101")


def test_why_an_embedded_overlay_stays_names_the_layout_not_a_stored_bit() -> None:
    """32 bits allocated, 24 stored, the overlay at bit 28: outside the stored bits, so --clean-pixels can clear it;
    the reason says the layout, not that the overlay is drawn into the image's values."""
    from neuroanon.burnedin import HOLD_ALWAYS, overlay_clearing

    ds = Dataset()
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 32, 24, 23, 0
    ds.add_new(0x60000102, "US", 28)
    why = overlay_clearing(ds, pydicom.uid.ExplicitVRLittleEndian)
    assert isinstance(why, str) and HOLD_ALWAYS not in why and "--clean-pixels" in why, why


@pytest.mark.parametrize("meta", [2, 1102], ids=["meta", "long-meta"])
@pytest.mark.parametrize("frames", [1, 3], ids=["whole", "fewer-values-than-frames"])
def test_bits_outside_the_stored_ones_in_a_deflated_file_hold_it_back(tmp_path: Path, frames: int, meta: int) -> None:
    """A deflated file's pixel data has no place in the file to read from (found on review: a bit above the stored
    ones was released); it is read whole. A value shorter than its frames is read as far as it goes. A file meta of
    any length (found from outside: past 1 KB it hid the deflated syntax, and the bit was released)."""
    for name, extra in (("clean", 0), ("set", 0x4000)):
        ds = make_dataset(subject=59, rows=8, columns=8)
        ds.file_meta.FileMetaInformationVersion = b"\x00\x01" + bytes(meta - 2)
        ds.BurnedInAnnotation, ds.NumberOfFrames = "NO", frames
        ds.PixelData = struct.pack("<64H", *[(i * 37) % 4096 | (extra if i == 5 else 0) for i in range(64)])
        ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
        _assert_held_for_one_unused_bit(tmp_path / name, ds, held=bool(extra))


def test_the_check_of_unused_bits_is_right_in_threads_at_once(tmp_path: Path) -> None:
    """A Dask worker runs files in threads: each reads its pixel data into a buffer of its own (one shared by the
    process let a clean file's bytes stand in for a dirty one's, and the reverse)."""
    from concurrent.futures import ThreadPoolExecutor

    from neuroanon.read import read_header
    from neuroanon.residual import pixels_with_unused_bits

    files = {}
    for name, high in (("clean", 0), ("dirty", 0x10)):  # (every value of the dirty one sets bit 12)
        ds = make_dataset(subject=58, rows=1024, columns=1024)
        ds.PixelData = bytes((i * 7) % 256 if i % 2 == 0 else (i % 16) | high for i in range(2 * 1024 * 1024))
        ds.save_as(tmp_path / f"{name}.dcm", enforce_file_format=True)
        header = read_header(tmp_path / f"{name}.dcm")
        files[name] = (tmp_path / f"{name}.dcm", header.pixels, header.dataset)
    expected = {"clean": 0, "dirty": 1024 * 1024}
    with ThreadPoolExecutor(4) as pool:
        jobs = [(name, pool.submit(pixels_with_unused_bits, *files[name])) for name in ["clean", "dirty"] * 40]
        assert [job.result() for _, job in jobs] == [expected[name] for name, _ in jobs]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(allocated=st.sampled_from([8, 16, 24, 32, 48, 64]), stored=st.integers(1, 63), signed=st.booleans(),
       big=st.booleans(), frames=st.integers(1, 3), values=st.integers(0, 40), seed=st.integers(0, 2**32 - 1),
       extra=st.sampled_from([0, 1, 5]))
def test_the_check_of_unused_bits_reads_the_bytes_held_as_it_reads_the_file(
        tmp_path: Path, allocated: int, stored: int, signed: bool, big: bool, frames: int, values: int, seed: int,
        extra: int) -> None:
    """The pipeline gives the check the pixel data element it wrote, when the writer holds it (not read again from
    the file); `verify` and a file read in blocks read the file. Both count the same values, whatever the width,
    byte order, sign, number of frames (a value shorter or longer than its frames) and the bits set."""
    import random

    from neuroanon.read import read_header
    from neuroanon.residual import pixels_with_unused_bits

    stored = min(stored, allocated - 1)
    width, rng = allocated // 8, random.Random(seed)
    ds = make_dataset(subject=57, rows=2, columns=3)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = allocated, stored, stored - 1, int(signed)
    ds.NumberOfFrames = frames
    data = bytearray(rng.getrandbits(8) for _ in range(width * values))
    data[: width * extra] = bytes(width * extra)  # (some values clean at least)
    ds.PixelData = bytes(data) + bytes(len(data) % 2)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRBigEndian if big else pydicom.uid.ExplicitVRLittleEndian
    source = tmp_path / f"{seed}-{allocated}-{big}.dcm"
    with quiet():
        pydicom.dcmwrite(source, ds, implicit_vr=False, little_endian=not big, force_encoding=True)
    header = read_header(source)
    assert header.pixels is not None
    element = source.read_bytes()[header.pixels.start:header.pixels.end]
    from_file = pixels_with_unused_bits(source, header.pixels, header.dataset)
    assert pixels_with_unused_bits(source, header.pixels, header.dataset, element) == from_file
