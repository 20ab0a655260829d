"""The lean path gives byte for byte the output, the report record and the changes of the general path.

Every file is run through the pipeline twice: as it runs (the lean path takes what it can) and with the lean
path switched off (the general path takes everything). The lean path must take the common case, or this would
prove nothing: the tests also count what it takes.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

from neuroanon import lean
from neuroanon.options import Level, Options
from neuroanon.pipeline import anonymize_file
from neuroanon.read import quiet
from neuroanon.report import Record
from neuroanon.sample import make_dataset, make_study

from .adversarial import CASES, make_case
from .corpus import corpus_files
from .helpers import files_under

KEY = b"lean-test-key-0123456789abcdef!!"
FILES = corpus_files()
OPTION_SETS = {
    "anonymize": Options(level=Level.ANONYMIZE, key=KEY),
    "full": Options(level=Level.FULL, key=KEY),
    "full-retain": Options(level=Level.FULL, key=KEY, retain_patient_characteristics=True,
                           retain_device_identity=True),
    "full-no-private-lookup": Options(level=Level.FULL, key=KEY, retain_safe_private=False,
                                      lookup={"PID-FAKE-0001": "SUBJ-01"}),
}


def _run(source: Path, out: Path, options: Options) -> tuple[Record, dict[str, bytes]]:
    record = anonymize_file(source, out, options)
    return record, {str(p.relative_to(out)): p.read_bytes() for p in files_under(out)}


def _both(source: Path, tmp: Path, options: Options, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run both paths on `source`, assert they agree; return whether the lean path took the file."""
    with quiet():
        took = lean.plan(source, options) is not None
    lean_record, lean_files = _run(source, tmp / "lean", options)
    with monkeypatch.context() as m:
        m.setattr(lean, "plan", lambda path, options: None)
        general_record, general_files = _run(source, tmp / "general", options)
    assert lean_record.as_dict() == general_record.as_dict()
    assert lean_files.keys() == general_files.keys()
    for name, data in general_files.items():
        assert lean_files[name] == data, f"{name}: the lean path wrote other bytes than the general path"
    return took


@pytest.mark.parametrize("options", [OPTION_SETS["anonymize"], OPTION_SETS["full"]], ids=["anonymize", "full"])
def test_corpus_same_bytes_both_paths(options: Options, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    taken = 0
    for i, source in enumerate(FILES):
        taken += _both(source, tmp_path / str(i), options, monkeypatch)
    # The real corpus is varied on purpose (big endian, deflated, DICOMDIRs, SRs, damaged files); the common
    # case must still be most of its images.
    assert taken >= 140, f"the lean path took only {taken} of {len(FILES)} files"


@pytest.mark.parametrize("name", sorted(OPTION_SETS))
@pytest.mark.parametrize("encoding", ["explicit_le", "implicit_le"])
def test_synthetic_studies_taken_and_same(name: str, encoding: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Files full of fake PHI: nested names, private blocks and sequences, overlays, CSA headers."""
    files = make_study(tmp_path / "in", subject=1, n_series=2, n_instances=2, encoding=encoding)
    for i, source in enumerate(files):
        assert _both(source, tmp_path / str(i), OPTION_SETS[name], monkeypatch), "the common case was declined"


@pytest.mark.parametrize("encoding", ["explicit_be", "deflated"])
def test_other_encodings_declined_and_still_done(encoding: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    files = make_study(tmp_path / "in", subject=2, n_series=1, n_instances=1, encoding=encoding)
    assert not _both(files[0], tmp_path / "run", OPTION_SETS["full"], monkeypatch)
    assert (tmp_path / "run" / "lean").exists()


@pytest.mark.parametrize("name", ["anonymize", "full"])
def test_header_longer_than_first_read_and_pixels_streamed(name: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Pixel data beyond the first read is streamed from the source; elements after it are kept or removed."""
    ds = make_dataset(subject=3, rows=512, columns=512)
    ds.NumberOfFrames = 4
    ds.PixelData = bytes(range(256)) * (512 * 512 * 2 * 4 // 256)
    ds.add_new(0xFFFCFFFC, "OB", b"\x00" * 16)  # trailing padding after the pixel data
    source = tmp_path / "big.dcm"
    ds.save_as(source, enforce_file_format=True)
    assert source.stat().st_size > 2 * lean.HEAD_BYTES
    with quiet():
        plan = lean.plan(source, OPTION_SETS[name])
    assert plan is not None and plan.pixel_bytes is None, "the pixel data should be streamed, not held"
    assert _both(source, tmp_path / "run", OPTION_SETS[name], monkeypatch)


def test_encapsulated_fragments_walked_from_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = make_dataset(subject=4, rows=64, columns=64)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.NumberOfFrames = 3
    ds.PixelData = encapsulate([bytes([n]) * 700_001 + b"\x00" for n in range(3)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    source = tmp_path / "jpeg.dcm"
    ds.save_as(source, enforce_file_format=True)
    assert source.stat().st_size > 2 * lean.HEAD_BYTES
    assert _both(source, tmp_path / "run", OPTION_SETS["full"], monkeypatch)
    out = files_under(tmp_path / "run" / "lean")[0]
    assert pydicom.dcmread(out).PixelData == pydicom.dcmread(source).PixelData


def test_out_of_order_elements_declined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pydicom writes elements in tag order; an unsorted source is for the general path."""
    source = make_study(tmp_path / "in", subject=5, n_series=1, n_instances=1)[0]
    data = bytearray(source.read_bytes())
    # Swap the tags of two adjacent one-value CS elements of the same length: (0008,0060) Modality stays
    # where it is but now carries a lower tag than the element before it.
    at = data.index(struct.pack("<HH", 0x0008, 0x0060) + b"CS")
    data[at:at + 4] = struct.pack("<HH", 0x0008, 0x0001)
    broken = tmp_path / "unsorted.dcm"
    broken.write_bytes(bytes(data))
    assert not _both(broken, tmp_path / "run", OPTION_SETS["anonymize"], monkeypatch)


@pytest.mark.parametrize("name", ["anonymize", "full"])
@pytest.mark.parametrize("encoding", ["explicit_le", "implicit_le"])
@pytest.mark.parametrize("case", [c.name for c in CASES])
def test_adversarial_cases_same_on_both_paths(case: str, encoding: str, name: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """UN sequences, text outside the table, gated files: the two paths agree (the lean one may decline)."""
    source, _ = make_case(tmp_path / "in", case, encoding, "latin1")
    took = _both(source, tmp_path / "run", OPTION_SETS[name], monkeypatch)
    if case.startswith("un-") and encoding == "explicit_le" and case != "un-private":
        assert not took, "a UN that may be a sequence is for the general path"
