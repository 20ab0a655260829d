"""Siemens CSA headers at `full`: kept only under the exact creator and only when they parse, cleaned in place.

Fake PHI is planted inside the real CSA headers of nibabel's Siemens DWI mosaic (a protocol name in the ASCCONV
protocol, a station name with letters running on after it, the patient's weight; its own UIDs carry the scanner
serial and dates), and free text is put under creators that only look like Siemens's. Each output is searched for
every planted value, and the cleaned headers must keep the layout nibabel and dcm2niix read.
"""

from __future__ import annotations

import gzip
import io
import re
import struct
from pathlib import Path

import pydicom
import pytest
from nibabel.nicom import csareader
from pydicom.dataset import Dataset

from neuroanon import csa, engine
from neuroanon.apply import apply_level
from neuroanon.identifiers import needles
from neuroanon.keys import Keyring
from neuroanon.options import Level, Options
from neuroanon.read import quiet

from .corpus import _package_dir, corpus_files
from .helpers import files_under
from .niix import convert, differences, outputs
from .test_engine import _engine
from .tools import require_tool

KEY = b"csa-test-key: 32 bytes or more of key material"
FULL = Options(level=Level.FULL, key=KEY)
STATION = "FAKESTN01"
PROTOCOL = "FakeProto^Doe Jane 19470415"
FREE_TEXT = b"Doe^Fakename, 1 Fake Street, Fakeville; MRN FAKE-77-1234"
LOOKALIKES = ("siemens csa header ", " SIEMENS CSA HEADER", "SIEMENS CSA HEADERS", "SIEMENS_CSA_HEADER")


def _dwi() -> pydicom.Dataset:
    base = _package_dir("nibabel")
    assert base is not None, "nibabel is a test dependency"
    data = gzip.decompress((base / "nicom/tests/data/siemens_dwi_1000.dcm.gz").read_bytes())
    return pydicom.dcmread(io.BytesIO(data))


def _replace_same_length(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data, "the real header no longer holds the planting spot"
    return data.replace(old, new.ljust(len(old))[: len(old)], 1)


def _planted(tmp: Path) -> tuple[Path, pydicom.Dataset]:
    """The real DWI mosaic with fake PHI in its public attributes and inside its CSA series header."""
    ds = _dwi()
    ds.PatientName = "Doe^Fakename"
    ds.PatientID = "FAKE-ID-0042"
    ds.StationName = STATION
    ds.InstitutionName = "Fakeville General Hospital"
    ds.ProtocolName = PROTOCOL
    series = ds[0x00291020].value
    series = re.sub(rb'(tProtocolName\s*=\s*"")[^"]*', lambda m: m.group(1) + PROTOCOL.encode()[:26], series, count=1)
    # a station name with letters after it, where no key names it (in an XProtocol label)
    series = _replace_same_length(series, b"Load images to graphic segments", f"${STATION}b051fac".encode())
    ds[0x00291020].value = series
    path = tmp / "planted.dcm"
    ds.save_as(path)
    return path, ds


def _original_csa_uids(ds: pydicom.Dataset) -> set[bytes]:
    found: set[bytes] = set()
    for tag in (0x00291010, 0x00291020):
        found |= set(re.findall(rb"[12]\.[0-9]+(?:\.[0-9]+){3,}", ds[tag].value))
    return found


def test_planted_values_gone_and_layout_kept(tmp_path: Path) -> None:
    source, original = _planted(tmp_path)
    uids = _original_csa_uids(original)
    assert len(uids) >= 3, "the real CSA header should hold its reference-image UIDs"
    _engine(source, tmp_path / "run", FULL)  # its output checked, whichever path took it
    out = files_under(tmp_path / "run" / "out")[0]
    data = out.read_bytes().lower()
    for value in (PROTOCOL.encode()[:26], STATION.encode(), b"fakeville", b"doe^fakename", b"fake-id-0042"):
        assert value.lower() not in data, "a planted value survived `full`"
    assert not [u for u in uids if u in out.read_bytes()], "an original UID survived inside the CSA header"
    cleaned = pydicom.dcmread(out)
    for tag in (0x00291010, 0x00291020):
        assert len(cleaned[tag].value) == len(original[tag].value), "the CSA header changed length"
    before_image, after_image = csareader.read(original[0x00291010].value), csareader.read(cleaned[0x00291010].value)
    assert before_image["tags"] == after_image["tags"], "the image header (b-matrix, mosaic, timing) changed"
    before, after = csareader.read(original[0x00291020].value), csareader.read(cleaned[0x00291020].value)
    assert before["tags"].keys() == after["tags"].keys()
    changed = {name for name in before["tags"] if before["tags"][name]["items"] != after["tags"][name]["items"]}
    assert changed == {"UsedPatientWeight", "PatReinPattern", "MrPhoenixProtocol"}, sorted(changed)
    assert after["tags"]["UsedPatientWeight"]["items"] == [0]
    protocol = after["tags"]["MrPhoenixProtocol"]["items"][0]
    assert re.search(r'tProtocolName\s*=\s*""X+""', protocol), "tProtocolName not blanked"
    assert re.search(r'tReferenceImage0\s*=\s*""2\.25\.[0-9]+""', protocol), "reference UID not remapped"
    for line in ("sKSpace.lBaseResolution", "sPat.lAccelFactPE", "tSequenceFileName"):  # what dcm2niix reads
        assert [x for x in before["tags"]["MrPhoenixProtocol"]["items"][0].splitlines() if x.startswith(line)] \
            == [x for x in protocol.splitlines() if x.startswith(line)], f"{line} changed"


def test_creators_padded_with_nul_keep_their_elements(tmp_path: Path) -> None:
    """A writer that pads private creators with a NUL, against the standard's rule, still wrote Siemens' headers:
    they are kept and cleaned as with a space (found from outside: every Siemens private element was dropped, and
    dcm2niix lost slice timing, phase encoding and echo spacing with them)."""
    ds = _dwi()
    for tag in [t for t in ds.keys() if t.group % 2 and t.element < 0x100]:
        ds[tag].value = str(ds[tag].value).rstrip(" ") + "\x00"
    source = tmp_path / "in.dcm"
    ds.save_as(source)
    _engine(source, tmp_path / "run", FULL)
    out = pydicom.dcmread(files_under(tmp_path / "run" / "out")[0])
    assert csareader.read(out[0x00291010].value)["tags"] == csareader.read(ds[0x00291010].value)["tags"]
    kept = {int(t) for t in out.keys() if t.group % 2}
    assert {0x00291010, 0x00291020, 0x0019100C} <= kept, sorted(hex(t) for t in kept)


def test_dcm2niix_reads_the_cleaned_header_as_before(tmp_path: Path) -> None:
    tool = require_tool("dcm2niix")
    source, _ = _planted(tmp_path)
    (tmp_path / "in").mkdir()
    source.rename(tmp_path / "in" / source.name)
    from neuroanon.pipeline import anonymize_tree

    summary = anonymize_tree([tmp_path / "in"], tmp_path / "out", Options(level=Level.FULL, key=KEY,
                                                                        clean_descriptors=True))
    assert summary.exit_code == 0
    convert(tool, tmp_path / "in", tmp_path / "n_in")
    convert(tool, tmp_path / "out", tmp_path / "n_out")
    before, after = outputs(tmp_path / "n_in"), outputs(tmp_path / "n_out")
    assert before and "SliceTiming" in next(iter(before.values())).sidecar
    assert not differences(before, after), differences(before, after)


def _lookalike_dataset(creators: tuple[str, ...]) -> Dataset:
    """A Siemens MR file: a real CSA image header in block 0; later blocks hold free text, as a well-formed CSA
    header under a lookalike creator (only the creator can give it away) or bare under the exact one."""
    ds = _dwi()
    real = ds[0x00291010].value
    for tag in [t for t in ds.keys() if t.group == 0x0029]:
        del ds[tag]
    for block, creator in enumerate(creators):
        ds.add_new(0x00290010 + block, "LO", creator)
        exact = creator.rstrip(" ") == "SIEMENS CSA HEADER"
        value = real if block == 0 else FREE_TEXT if exact else _csa([("ImaCoilString", "LO", [FREE_TEXT])], True)
        ds.add_new(0x00291010 + (block << 8), "OB", value)
    return ds


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_lookalike_creators_and_non_csa_values_removed(implicit: bool, tmp_path: Path) -> None:
    # block 0: exact creator padded with trailing spaces (allowed), a real header: kept
    # blocks 1-4: lookalikes with free text; block 5: the exact creator with free text (no CSA signature)
    ds = _lookalike_dataset(("SIEMENS CSA HEADER  ", *LOOKALIKES, "SIEMENS CSA HEADER"))
    source = tmp_path / "lookalike.dcm"
    syntax = pydicom.uid.ImplicitVRLittleEndian if implicit else pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(source, implicit_vr=implicit, little_endian=True)
    assert _engine(source, tmp_path / "run", FULL), "the engine should take this file"
    out = files_under(tmp_path / "run" / "out")[0]
    assert b"fake" not in out.read_bytes().lower(), "free text under a lookalike or non-CSA value survived"
    cleaned = pydicom.dcmread(out)
    kept = [t for t in cleaned.keys() if t.group == 0x0029]
    assert [(t.element, cleaned[t].value if t.element < 0x100 else None) for t in kept] == [
        (0x0010, "SIEMENS CSA HEADER"), (0x1010, None)], "only the real header and its creator stay"
    assert csareader.read(cleaned[0x00291010].value)["tags"] == csareader.read(ds[0x00291010].value)["tags"]


def test_general_path_alone_removes_lookalikes() -> None:
    """apply_level on a dataset (the library call) follows the same creator rule."""
    ds = _lookalike_dataset(("SIEMENS CSA HEADER", *LOOKALIKES))
    with quiet():
        new, changes = apply_level(ds, FULL)
    assert [int(t) for t in new.keys() if t.group == 0x0029] == [0x00290010, 0x00291010]
    assert sum(1 for c in changes if c.tag.startswith("(0029,1") and c.action == "removed") == len(LOOKALIKES)


def _csa(elements: list[tuple[str, str, list[bytes]]], csa2: bool) -> bytes:
    """A CSA header: CSA2 ("SV10", item length in the second word) or CSA1 (length + first tag's item count)."""
    out = bytearray(b"SV10\x04\x03\x02\x01" if csa2 else b"")
    out += struct.pack("<2I", len(elements), 77)
    first = len(elements[0][2])
    for name, vr, items in elements:
        out += struct.pack("<64si4s3i", name.encode(), len(items), vr.encode(), 0, len(items), 77)
        for item in items:
            word = len(item) if csa2 else len(item) + first
            out += struct.pack("<4i", word, len(item), 77, len(item)) + item + b"\x00" * (-len(item) % 4)
    return bytes(out)


@pytest.mark.parametrize("csa2", [True, False], ids=["CSA2", "CSA1"])
def test_both_layouts_parse_and_clean(csa2: bool) -> None:
    header = _csa([("UsedPatientWeight", "DS", [b"81.5\x00"]), ("StationName", "SH", [b"ANYNAME\x00"]),
                   ("RepresentativeImage", "UI", [b"1.3.12.2.1107.5.2.32.35119.2010011420070434054586384\x00"]),
                   ("B_value", "IS", [b"1000\x00"])], csa2)
    parsed = csa.parse(header)
    assert parsed is not None and [e.name for e in parsed][-1] == "B_value"
    cleaned = csa.clean_csa(header, (), Keyring(KEY))
    assert cleaned is not None and len(cleaned) == len(header)
    assert b"81.5" not in cleaned and b"ANYNAME" not in cleaned and b"35119" not in cleaned
    assert b"1000" in cleaned
    assert re.search(rb"2\.25\.[0-9]{47}\x00", cleaned), "the UID should become a keyed UID of the same length"
    start = 8 if csa2 else 0
    other_check = header[: start + 4] + struct.pack("<I", 78) + header[start + 8:]
    no_tags = header[:start] + struct.pack("<I", 0) + header[start + 4:]
    for broken in (header[:-3], header[:40], other_check, no_tags, b"SV11" + header[4:],
                   FREE_TEXT, b""):
        assert csa.parse(broken) is None, "a damaged or foreign value parsed as CSA"
        assert csa.clean_csa(broken, (), Keyring(KEY)) is None


@pytest.mark.parametrize("csa2", [True, False], ids=["CSA2", "CSA1"])
def test_bytes_after_the_last_element_are_zeroed(csa2: bool) -> None:
    """No reader reads past the last element, so nothing there is kept: not a name, an ID, a protocol line."""
    header = _csa([("B_value", "IS", [b"1000\x00"]), ("ImaComments", "LT", [b"\x00"])], csa2)
    trailer = b"trailer Drplonk EMP-0042-7731 ### ASCCONV BEGIN ###\n"
    cleaned, alone = csa.clean_csa(header + trailer, (), Keyring(KEY)), csa.clean_csa(header, (), Keyring(KEY))
    assert cleaned is not None and alone is not None
    assert cleaned == alone + bytes(len(trailer))
    assert [e.name for e in csa.parse(cleaned) or []] == ["B_value", "ImaComments"]


@pytest.mark.parametrize("csa2", [True, False], ids=["CSA2", "CSA1"])
def test_bytes_no_reader_reads_inside_the_header_are_zeroed(csa2: bool) -> None:
    """After the NUL that ends an element's name or VR or an item's text, and in an item's padding, scanners leave
    memory (a station name in nibabel's real Siemens file): no reader reads it, so none of it is kept (found from
    outside: another patient's name, birth date and town planted there were released, and verify called it clean).
    What readers read stays as it was."""
    header = bytearray(_csa([("B_value", "IS", [b"1000\x00"]), ("SliceTiming", "FD", [b"0.5\x00", b"12\x00"])], csa2))
    leftovers = [b"Drplonk^Ivy", b"19610302", b"Wobbleford"]
    start = 16 if csa2 else 8
    name_end = header.index(b"B_value") + len(b"B_value") + 1
    header[name_end:name_end + 11] = leftovers[0]  # (in the name field, after its NUL)
    text_end = header.index(b"1000\x00") + 5
    header[text_end:text_end + 3] = b"196"  # (the item's padding: 5 bytes of text, 3 to the next word)
    header[start + 64 + 4 + 3:start + 64 + 4 + 4] = b"Q"  # (the VR field, after "IS" and its NUL)
    cleaned = csa.clean_csa(bytes(header), (), Keyring(KEY))
    assert cleaned is not None and len(cleaned) == len(header)
    assert leftovers[0] not in cleaned and b"1000\x00\x00\x00\x00" in cleaned and b"IS\x00\x00" in cleaned

    def texts(value: bytes) -> list[tuple[str, list[bytes]]]:  # (as readers read them: up to the NUL)
        return [(e.name, [value[at:at + n].split(b"\x00")[0] for at, n in e.items]) for e in csa.parse(value) or []]

    assert texts(cleaned) == texts(bytes(header)) == [("B_value", [b"1000"]), ("SliceTiming", [b"0.5", b"12"])]
    if csa2:  # (nibabel reads this layout)
        read = csareader.read(cleaned)["tags"]
        assert read["B_value"]["items"] == [1000] and read["SliceTiming"]["items"] == [0.5, 12.0]


def test_an_id_with_letters_or_digits_run_on_is_cut_from_an_item_text() -> None:
    """Found from outside: this file's PatientID with a digit and letter after it, or a letter before it, in the text
    of real Siemens items (ICE_Dims, SliceMeasurementDuration) was released, and verify called the file clean."""
    source = Dataset()
    source.PatientID = "QX771234"
    planted = [b"QX7712344d\x00", b"xQX771234\x00", b"1771234\x00"]
    header = _csa([("ICE_Dims", "LO", [planted[0]]), ("SliceMeasurementDuration", "DS", [planted[1], planted[2]])],
                  csa2=True)
    cleaned = csa.clean_csa(header, needles(source), Keyring(KEY))
    assert cleaned is not None and len(cleaned) == len(header)
    assert b"qx771234" not in cleaned.lower()
    assert b"1771234\x00" in cleaned, "a longer number holding the ID's digits is another number"
    assert [e.name for e in csa.parse(cleaned) or []] == ["ICE_Dims", "SliceMeasurementDuration"]


@pytest.mark.parametrize("item", [b"DOE^JANE", b"JANE", b"FAKEQWER", b"DOE^JANE\x00\x00\x00\x00"])
def test_a_name_or_id_that_fills_its_item_is_cut_before_the_next_element_s_name(item: bytes) -> None:
    """Found from outside: an item holding the patient's name or ID with no NUL after it, its length a multiple of 4
    (no padding), the last of its element: the next element's name follows at once, and read whole, its first
    letter hid the end of the word. It was kept, and neither the residual check nor verify saw it. An ID whose
    first letters are another needle ("FAKE", the institution's word) is cut whole."""
    source = Dataset()
    source.PatientName, source.PatientID, source.InstitutionName = "DOE^JANE", "FAKEQWER", "FAKE GENERAL HOSPITAL"
    header = _csa([("ImaComments", "LT", [item]), ("SliceMeasurementDuration", "DS", [b"12345.0\x00"])], csa2=True)
    cleaned = csa.clean_csa(header, needles(source), Keyring(KEY))
    assert cleaned is not None and len(cleaned) == len(header)
    read = csareader.read(cleaned)["tags"]
    (kept,) = read["ImaComments"]["items"]  # (nibabel gives bytes, or text when a NUL ends it)
    assert set((kept if isinstance(kept, bytes) else kept.encode()).strip(b"\x00")) == {ord("X")}, kept
    assert read["SliceMeasurementDuration"]["items"] == [12345.0]


@pytest.mark.parametrize("where", ["OB", "OW", "item"])
@pytest.mark.parametrize("item", [b"DOE^JANE", b"FAKEQWER"])
def test_verify_reads_a_csa_header_s_items_apart_in_another_tool_s_output(tmp_path: Path, item: bytes, where: str
                                                                         ) -> None:
    """Found from outside: a name or ID filling its item before the next element's name, in a file another tool
    wrote, was not seen by verify (the header read as one text). verify reads each item apart, as the anonymizer
    does: a header as OB or OW, at the top level or in an item (found from outside: only the top level's OB and UN
    were read)."""
    from neuroanon.sample import make_dataset
    from neuroanon.verify import load_originals, verify

    source = make_dataset(subject=3)
    source.PatientName, source.PatientID = "DOE^JANE", "FAKEQWER"
    source.save_as(tmp_path / "in.dcm", enforce_file_format=True)
    other = make_dataset(subject=3)  # as another tool left it: the identity replaced, the CSA header kept whole
    other.PatientName, other.PatientID = "ANON", "ANON"
    holder = Dataset() if where == "item" else other
    holder.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
    holder.add_new(0x00291010, "OW" if where == "OW" else "OB", _csa([
        ("ImaComments", "LT", [item]), ("SliceMeasurementDuration", "DS", [b"12345.0\x00"])], csa2=True))
    if where == "item":
        other.ReferencedImageSequence = [holder]
    (tmp_path / "out").mkdir()
    other.save_as(tmp_path / "out" / "out.dcm", enforce_file_format=True)
    originals = load_originals([tmp_path / "in.dcm"], Level.FULL, KEY)
    (result,) = verify([tmp_path / "out"], Options(level=Level.FULL, key=KEY), originals)
    attribute = "PatientName" if item.startswith(b"DOE") else "PatientID"
    assert f"original {attribute} value found in (0029,1010) (a CSA item)" in result.findings, result.findings


def test_same_length_uid_is_keyed_and_valid() -> None:
    ring = Keyring(KEY)
    uid = "1.3.12.2.1107.5.2.32.35119.2010011420070434054586384"
    new = csa.same_length_uid(ring, uid).decode()
    assert len(new) == len(uid) and new.startswith(ring.uid(uid))
    assert new == csa.same_length_uid(ring, uid).decode() != csa.same_length_uid(Keyring(KEY + b"x"), uid).decode()
    assert csa.same_length_uid(ring, "1.2.3.4.5") == b"0.0.0.0.0"
    # Fewer than 30 digits would look like another system's 2.25 UID, which the residual check searches
    short, long_ = "1.3.12.2.1107.5.2.32.3511900000012", "1.3.12.2.1107.5.2.32.35119000000123"  # (34, 35)
    assert csa.same_length_uid(ring, short) == re.sub(rb"[0-9]", b"0", short.encode())
    assert re.fullmatch(rb"2\.25\.[0-9]{30}", csa.same_length_uid(ring, long_))


def test_siemens_files_are_taken_by_the_engine(tmp_path: Path) -> None:
    """The common Siemens file (CSA headers on the allow-list) is not declined by the engine."""
    source, _ = _planted(tmp_path)
    with quiet():
        assert isinstance(engine.plan(source, FULL), engine.Plan)


def test_every_real_csa_header_parses_as_nibabel_reads_it() -> None:
    """Real headers (one with zeros after "SV10") parse, to the same element names nibabel finds."""
    headers = [_dwi()[0x00291010].value, _dwi()[0x00291020].value]
    for path in corpus_files():
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # not DICOM, or damaged: the corpus holds both on purpose
            continue
        headers += [ds[t].value for t in ds.keys() if t.group == 0x0029 and t.element & 0xFF in (0x10, 0x20)
                    and t.element >= 0x1000 and isinstance(ds[t].value, bytes) and ds[t].value[:4] == b"SV10"]
    assert len(headers) >= 7
    for value in headers:
        parsed = csa.parse(value)
        assert parsed is not None, "a real CSA header did not parse"
        assert [e.name for e in parsed] == list(csareader.read(value)["tags"])


def test_protocol_keys_blanked_in_both_syntaxes() -> None:
    text = (b'<ParamString.""ProtocolName"">  { <Label> ""Protocol name"" { <Default> ""x"" } ""Doe Proto""  }\n'
            b'<ParamLong.""BaseResolution"">  { 64 }\n'
            b'### ASCCONV BEGIN ###\n'
            b'tProtocolName = ""Doe+AF8-Proto""\n'
            b'sPatient.flWeight = 81.5\n'
            b'sKSpace.lBaseResolution = 64\n'
            b'### ASCCONV END ###\n')
    cleaned = csa.clean_protocol(text, (), Keyring(KEY))
    assert len(cleaned) == len(text)
    assert b"Doe" not in cleaned and b"81.5" not in cleaned and b"00.0" in cleaned
    assert b'<ParamLong.""BaseResolution"">  { 64 }' in cleaned and b"sKSpace.lBaseResolution = 64" in cleaned
