"""Clean Pixel Data (--clean-pixels, 113101): burned-in PHI text found, redacted in every frame, proven gone.

Synthetic images carry fake PHI drawn in real fonts; each test checks the pixels themselves (no ink left where
PHI was drawn, labels and text-free frames unchanged) and an independent OCR pass over every released image.
OCR is heavy on a shared machine: the images are small, the fixtures are cleaned once per module.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import JPEGBaseline8Bit, RLELossless

from neuroanon import ocr, pixels, review
from neuroanon.cli import main
from neuroanon.errors import UsageError
from neuroanon.identifiers import Needle, needles
from neuroanon.options import Level, Options
from neuroanon.pipeline import anonymize_file, anonymize_tree
from neuroanon.pixeltext import fold, is_phi
from neuroanon.report import RunInfo, Status

from . import pixelfixtures as fx
from .corpus import pydicom_file
from .helpers import files_under
from .tools import require_tool

KEY = b"pixel-test-key-0123456789abcdef!"


def _require_ocr() -> None:
    if importlib.util.find_spec("rapidocr") is None or importlib.util.find_spec("onnxruntime") is None:
        message = "the ocr extra is not installed (pip install -e '.[test]' installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    fx.require_font()


def _run(inputs: Path, out: Path, quarantine: Path, mode: str) -> dict[str, dict[str, Any]]:
    report = out.parent / f"{out.name}.jsonl"
    options = Options(level=Level.FULL, key=KEY, clean_pixels=mode, quarantine=quarantine)
    anonymize_tree([inputs], out, options, report=report, run=RunInfo(clear_paths=True))  # records by file name
    records = [json.loads(line) for line in report.read_text().splitlines()]
    return {r["input"]: {**r, "root": str(out)} for r in records if "input" in r}


def _frames(path: Path) -> np.ndarray[Any, Any]:
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    return arr if int(ds.get("NumberOfFrames", 1) or 1) > 1 else arr[None]


def _output(record: dict[str, Any]) -> Path:
    return Path(record["root"]) / str(record["output"])


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The synthetic fixtures cleaned once at full with --clean-pixels (the gate's images), and the XA with
    --clean-pixels all (XA may not be on the gate's list)."""
    _require_ocr()
    base = tmp_path_factory.mktemp("pixels")
    inputs = base / "in"
    made = {"us.dcm": fx.us_cine(inputs / "us.dcm"), "sc.dcm": fx.sc_rgb(inputs / "sc.dcm"),
            "mono1.dcm": fx.mono1(inputs / "mono1.dcm"), "control.dcm": fx.control(inputs / "control.dcm"),
            "faint.dcm": fx.faint_bar(inputs / "faint.dcm"),
            "xa.dcm": fx.xa16(base / "xa" / "xa.dcm")}
    before = {p: p.read_bytes() for p in files_under(base)}
    records = _run(inputs, base / "out", base / "quarantine", "phi")
    records.update(_run(base / "xa", base / "out-xa", base / "quarantine", "all"))
    assert {p: p.read_bytes() for p in files_under(inputs)} == {p: b for p, b in before.items()
                                                                 if p.is_relative_to(inputs)}
    assert {p: p.read_bytes() for p in files_under(base / "xa")} == {p: b for p, b in before.items()
                                                                      if p.is_relative_to(base / "xa")}
    return {"made": made, "records": records, "out": base / "out", "quarantine": base / "quarantine"}


def test_every_text_image_is_released_redacted_not_held(cleaned: dict[str, Any]) -> None:
    records = cleaned["records"]
    assert set(records) == set(cleaned["made"])
    for name, record in records.items():
        assert record["status"] == "written", (name, record["reason"])
        assert record["pixels"]["frames_read"] >= record["pixels"]["frames"]
    for name in ("us.dcm", "sc.dcm", "xa.dcm", "mono1.dcm", "faint.dcm"):
        assert records[name]["pixels"]["boxes"], name
    assert records["us.dcm"]["pixels"]["frames"] == 3


def test_no_ink_is_left_where_phi_was_drawn_in_any_frame(cleaned: dict[str, Any]) -> None:
    for name, made in cleaned["made"].items():
        source = _frames(made.path)
        out = _frames(_output(cleaned["records"][name]))
        assert out.shape == source.shape, name
        for frame, x0, y0, x1, y1 in made.phi:
            ink = source[frame, y0:y1, x0:x1]
            ink_value = ink.reshape(-1, *ink.shape[2:])[np.argmax(_brightness(ink, name).reshape(-1))]
            region = out[frame, y0:y1, x0:x1]
            left = np.all(region == ink_value, axis=-1) if region.ndim == 3 else region == ink_value
            assert not left.any(), (name, frame, (x0, y0))


def _brightness(ink: np.ndarray[Any, Any], name: str) -> np.ndarray[Any, Any]:
    """Where the drawn text is: brightest pixels, darkest on MONOCHROME1 (the fixtures draw at an extreme)."""
    values = ink.sum(axis=-1) if ink.ndim == 3 else ink.astype(np.int64)
    return np.asarray(-values if name == "mono1.dcm" else values)


def test_labels_and_text_free_frames_are_unchanged(cleaned: dict[str, Any]) -> None:
    for name, made in cleaned["made"].items():
        source = _frames(made.path)
        out = _frames(_output(cleaned["records"][name]))
        for frame, x0, y0, x1, y1 in made.labels:
            assert np.array_equal(out[frame, y0:y1, x0:x1], source[frame, y0:y1, x0:x1]), (name, frame)
        for frame in made.text_free_frames:
            assert np.array_equal(out[frame], source[frame]), (name, frame)


def test_text_free_control_keeps_its_pixel_data_byte_for_byte(cleaned: dict[str, Any]) -> None:
    record = cleaned["records"]["control.dcm"]
    assert record["pixels"]["boxes"] == [] and record["pixels"]["pixel_data"] == "unchanged"
    source = pydicom.dcmread(cleaned["made"]["control.dcm"].path)
    out = pydicom.dcmread(_output(record))
    assert out.PixelData == source.PixelData
    assert out.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID


def test_released_files_are_marked_and_keep_their_image_description(cleaned: dict[str, Any]) -> None:
    for name, made in cleaned["made"].items():
        source = pydicom.dcmread(made.path)
        out = pydicom.dcmread(_output(cleaned["records"][name]))
        assert out.BurnedInAnnotation == "NO" and out.PatientIdentityRemoved == "YES"
        assert "113101" in [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
        for keyword in ("Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated",
                        "BitsStored", "PixelRepresentation", "NumberOfFrames"):
            assert out.get(keyword) == source.get(keyword), (name, keyword)
    us = pydicom.dcmread(_output(cleaned["records"]["us.dcm"]))
    assert us.file_meta.TransferSyntaxUID == RLELossless  # compressed input re-encoded in its own syntax
    assert cleaned["records"]["us.dcm"]["pixels"]["pixel_data"] == "rewritten, re-encoded RLE Lossless"


def test_overlay_bits_above_bits_stored_are_cleared(cleaned: dict[str, Any]) -> None:
    source = np.frombuffer(pydicom.dcmread(cleaned["made"]["xa.dcm"].path).PixelData, "<u2")
    assert (source >> 12).any()  # the fixture does carry a mark in bit 15 (pydicom's decoder hides it)
    out = pydicom.dcmread(_output(cleaned["records"]["xa.dcm"]))
    assert not (np.frombuffer(out.PixelData, "<u2") >> 12).any()
    assert not any(0x6000 <= tag.group <= 0x60FF for tag in pydicom.dcmread(
        _output(cleaned["records"]["xa.dcm"])).keys())


def _strings(value: object) -> list[str]:
    """Every string in a JSON value (keys included)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_report_holds_positions_never_text(cleaned: dict[str, Any]) -> None:
    for record in cleaned["records"].values():
        for box in record["pixels"]["boxes"]:
            assert set(box) == {"frame", "x", "y", "width", "height"}
        # Its words, not its numbers: a timing such as 0.41961 s holds a planted year's digits by chance.
        text = " ".join(_strings({k: v for k, v in record.items() if k != "output"})).lower()
        assert not any(planted in text for planted in fx.PLANTED)
        assert record["pixels"]["seconds_per_frame"] > 0


@pytest.fixture(scope="module")
def independent() -> Any:
    """A second OCR pass that shares nothing with the product's: its own engine, images scaled up twice, a more
    sensitive detector."""
    _require_ocr()
    import rapidocr
    from rapidocr import RapidOCR

    models = Path(rapidocr.__file__).parent / "models"
    return RapidOCR(params={"Global.use_cls": False, "Global.log_level": "error",
                            "Det.model_path": str(models / "PP-OCRv6_det_small.onnx"),
                            "Rec.model_path": str(models / "PP-OCRv6_rec_small.onnx"),
                            "Det.box_thresh": 0.3, "Det.thresh": 0.2,
                            "EngineConfig.onnxruntime.intra_op_num_threads": 1})


def _read_all(engine: Any, path: Path) -> list[str]:
    from PIL import Image

    ds = pydicom.dcmread(path)
    texts = []
    for frame in _frames(path):
        values = frame.astype(np.float64)
        scaled = ((values - values.min()) * 255 / max(1.0, float(values.max() - values.min()))).astype(np.uint8)
        if ds.PhotometricInterpretation == "MONOCHROME1":
            scaled = 255 - scaled
        image = Image.fromarray(scaled).convert("RGB")
        image = image.resize((image.width * 2, image.height * 2), Image.Resampling.BICUBIC)
        result = engine(np.asarray(image))
        texts += [str(t) for t in (result.txts or ())]
    return texts


def test_independent_ocr_reads_no_planted_string_in_any_released_image(cleaned: dict[str, Any],
                                                                        independent: Any) -> None:
    read_labels = []
    for name, record in cleaned["records"].items():
        texts = _read_all(independent, _output(record))
        compact = [re.sub(r"\s", "", fold(t)) for t in texts]
        for planted in fx.PLANTED:
            assert not any(planted.replace(" ", "") in t for t in compact), name
        read_labels += compact
    # The pass can read: the measurement labels that stayed are found.
    assert any("4.2cm" in t for t in read_labels) and any("gain55" in t for t in read_labels)


def test_review_images_and_page_sit_in_the_quarantine_not_the_release(cleaned: dict[str, Any]) -> None:
    root = cleaned["quarantine"] / review.FOLDER
    entries = [json.loads(p.read_text()) for p in root.glob("*/entry.json")]
    redacted = {r["output"]: r for r in cleaned["records"].values() if r["pixels"]["boxes"]}
    assert {e["output"] for e in entries} == set(redacted)
    for entry in entries:
        assert len(entry["frames"]) == redacted[entry["output"]]["pixels"]["frames"]
    assert (root / review.PAGE).is_file()
    assert not [p for p in files_under(cleaned["out"]) if p.suffix in (".png", ".html")]


def test_review_page_loads_every_image_in_headless_chromium(cleaned: dict[str, Any], tmp_path: Path) -> None:
    browser = require_tool("chromium", beside_python=False)
    page = cleaned["quarantine"] / review.FOLDER / review.PAGE
    images = len(re.findall(r"<img ", page.read_text()))
    assert images == sum(r["pixels"]["frames"] for r in cleaned["records"].values() if r["pixels"]["boxes"])
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-500:]
    match = re.search(r'data-loaded="(\d+)" data-broken="(\d+)"', done.stdout)
    assert match is not None, done.stdout[:500]
    assert (int(match.group(1)), int(match.group(2))) == (images, 0)


def test_strict_mode_redacts_labels_too(tmp_path: Path) -> None:
    _require_ocr()
    made = fx.sc_rgb(tmp_path / "in" / "sc.dcm")
    record = _run(tmp_path / "in", tmp_path / "out", tmp_path / "q", "strict")["sc.dcm"]
    assert record["status"] == "written", record["reason"]
    out = _frames(_output(record))
    (frame, x0, y0, x1, y1), = made.labels
    region = out[frame, y0:y1, x0:x1]
    assert not np.all(region == (0, 255, 0), axis=-1).any()  # the green label is gone too


def test_text_still_read_after_redaction_holds_the_file_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    fx.require_font()
    made = fx.control(tmp_path / "in" / "control.dcm")
    # An OCR that keeps reading a name, wherever the pixels were redacted: the proof must fail.
    monkeypatch.setattr(ocr, "read", lambda image, small_print=False: [ocr.TextBox(10, 10, 60, 24, "FAKEDOE^JANINE")])
    record = _run(tmp_path / "in", tmp_path / "out", tmp_path / "q", "phi")["control.dcm"]
    assert record["status"] == "quarantined"
    assert record["reason"].startswith("pixels not proven clean: text still read after redaction")
    assert record["pixels"]["still_read"] and record["pixels"]["boxes"]
    assert "fakedoe" not in json.dumps(record).lower()
    assert not files_under(tmp_path / "out")
    held = pydicom.dcmread(tmp_path / "q" / record["output"])
    assert held.get("BurnedInAnnotation") != "NO" and held.PatientIdentityRemoved == "NO"
    entry = json.loads(next((tmp_path / "q" / review.FOLDER).glob("*/entry.json")).read_text())
    assert entry["held"] and entry["still_read"] == 1
    assert made.path.exists()


def test_pixel_data_that_cannot_be_decoded_is_held_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fx.require_font()
    path = tmp_path / "in" / "broken.dcm"
    fx.control(path)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8 not a jpeg stream \xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    monkeypatch.setattr(ocr, "read", lambda image, small_print=False: [])
    record = _run(tmp_path / "in", tmp_path / "out", tmp_path / "q", "phi")["broken.dcm"]
    assert record["status"] == "quarantined"
    assert record["reason"].startswith("pixels not proven clean: pixel data could not be read")
    page = (tmp_path / "q" / review.FOLDER / review.PAGE).read_text()
    assert "held back: pixels not proven clean: pixel data could not be read" in page and "<img " not in page


def test_which_images_are_read() -> None:
    on = Options(level=Level.FULL, key=KEY, clean_pixels="phi")
    every = Options(level=Level.FULL, key=KEY, clean_pixels="all")

    def image(**attributes: str) -> Dataset:
        ds = Dataset()
        ds.Rows = 8
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        return ds

    # A header that says NO is not believed: the class or modality decides.
    assert pixels.in_scope(image(Modality="OT", SOPClassUID=fx.SECONDARY_CAPTURE, BurnedInAnnotation="NO"), on)
    assert pixels.in_scope(image(Modality="US", BurnedInAnnotation="NO"), on)
    assert not pixels.in_scope(image(Modality="MR", SOPClassUID="1.2.840.10008.5.1.4.1.1.4"), on)
    assert pixels.in_scope(image(Modality="MR", SOPClassUID="1.2.840.10008.5.1.4.1.1.4"), every)
    assert not pixels.in_scope(Dataset(), every)  # no image
    assert not pixels.in_scope(image(Modality="US"), Options(level=Level.FULL, key=KEY))
    assert not pixels.in_scope(image(Modality="US"), Options(level=Level.ANONYMIZE, clean_pixels="phi"))
    # A header that says YES, or neither YES nor NO, is believed (found from outside: such an MR was held, with a
    # reason that sent the user to --allow-burned-in, which releases it unread).
    mr = "1.2.840.10008.5.1.4.1.1.4"
    assert pixels.in_scope(image(Modality="MR", SOPClassUID=mr, BurnedInAnnotation="YES"), on)
    assert pixels.in_scope(image(Modality="MR", SOPClassUID=mr, BurnedInAnnotation="MAYBE"), on)
    assert not pixels.in_scope(image(Modality="MR", SOPClassUID=mr, BurnedInAnnotation="NO"), on)


def test_a_recognizable_feature_is_held_though_its_pixels_were_cleaned(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """RecognizableVisualFeatures YES (a face): reading text removes no face, so the pixel stage releases nothing
    the header says shows one; --allow-burned-in releases it once the pixels are checked."""
    monkeypatch.setattr(ocr, "read", lambda image, small_print=False: [])  # (no text found)
    fx.control(tmp_path / "in" / "face.dcm", RecognizableVisualFeatures="YES", BurnedInAnnotation="NO")
    record = _run(tmp_path / "in", tmp_path / "out", tmp_path / "q", "phi")["face.dcm"]
    assert record["status"] == "quarantined", record["reason"]
    assert "RecognizableVisualFeatures is YES" in record["reason"] and "--allow-burned-in" in record["reason"]
    options = Options(level=Level.FULL, key=KEY, clean_pixels="phi", allow_burned_in=True)
    assert anonymize_file(tmp_path / "in" / "face.dcm", tmp_path / "out2", options).status is Status.WRITTEN


@pytest.mark.parametrize("text", ["FAKEDOE^JANINE", "Fakedoe, Janine", "ID FK83920471", "FK 8392 0471",
                                  "15.01.2024", "DOB 07/03/1961", "7 Mar 1961", "555-0147", "12 Brightwater Lane",
                                  "FAKED0E", "janine", "20240115", "Patient: X", "10115 Berlin",
                                  # (found from outside: released) a telephone with points, an e-mail, spaced letters
                                  "555.014.2337", "otto.brackwater@mail.test", "F A K E D O E", "FK 8 3 9 2 0 4 7 1",
                                  # (found from outside: "FA<EID123" for an ID, released) a character read as a sign
                                  "FK839<0471"])
def test_phi_text_is_recognised(text: str) -> None:
    found = (Needle("PatientName", b"fakedoe^janine"), Needle("PatientName", b"fakedoe"),
             Needle("PatientName", b"janine"), Needle("PatientID", b"fk83920471"))
    assert is_phi(text, found)


def test_lines_turned_on_end_are_not_joined_into_one_box() -> None:
    """Found from outside: four lines turned a quarter turn side by side in a 512 x 512 frame (a name, an ID and a
    date) were joined as one line (the gap allowed is three heights, and a turned line's height is its length),
    and the whole frame was set to its background. Each is redacted on its own; spaced letters, a box each, are
    still joined."""
    turned = [ocr.TextBox(40, 60, 54, 260, "FAKEPERSON^ALICE"), ocr.TextBox(150, 80, 170, 230, "FAKE00123"),
              ocr.TextBox(260, 200, 268, 262, "1970-01-02"), ocr.TextBox(400, 40, 420, 340, "FAKEPERSON^ALICE")]
    assert ocr.joined(turned) == []
    patterns = (Needle("PatientName", b"fakeperson^alice"), Needle("PatientID", b"fake00123"))
    found = pixels._text([turned], patterns, strict=False)
    assert sorted(found, key=lambda b: b.x0) == turned  # each on its own, the date as a date
    spaced = [ocr.TextBox(10 + 14 * i, 10, 20 + 14 * i, 24, c) for i, c in enumerate("QUAX")]
    assert [b.text for b in ocr.joined(spaced)] == ["QUAX"]


def test_a_value_joined_over_two_lines_is_redacted_by_its_parts_not_around_them() -> None:
    """Found from outside: lines joined one below the other (a value wrapped in a narrow field is read so) were
    redacted as the rectangle around them, and with the lines near them, as one band across a 512 x 512 frame. The
    lines themselves are redacted."""
    wrapped = [ocr.TextBox(8, 6, 60, 24, "FAKE-"), ocr.TextBox(8, 28, 40, 46, "DOE")]
    beside = ocr.TextBox(200, 10, 480, 30, "GAIN 55")  # (a label on the first line's level, no part of the value)
    found = pixels._text([[*wrapped, beside]], (Needle("PatientName", b"fakedoe"),), strict=False)
    assert found == wrapped


def test_a_line_read_unsure_is_redacted_unless_a_sure_reading_covers_it() -> None:
    """8-pixel text on noise was read "GJATO PIEL FA/E1122" (0.58) for a name and an ID, and released (found from
    outside): a line of three characters or more read with little confidence may say anything. A label read so in
    one picture and surely in the other ("42Ccm" and "4.2 cm") stays; so does a one-letter read."""
    garbled = ocr.TextBox(294, 193, 431, 216, "GJATO PIEL FA/E1122", 0.58)
    assert pixels._text([[garbled], []], (), strict=False) == [garbled]
    label = ocr.TextBox(187, 229, 241, 248, "4.2 cm", 0.999)
    unsure_label = ocr.TextBox(189, 231, 240, 247, "42Ccm", 0.56)
    assert pixels._text([[label], [unsure_label]], (), strict=False) == []
    assert pixels._text([[ocr.TextBox(5, 5, 12, 20, "L", 0.4)]], (), strict=False) == []
    # a reading under 0.9 covers nothing: misread small print was read at 0.83 to 0.88 too
    less_sure = ocr.TextBox(294, 193, 431, 216, "QJXORTHYMIRA3EL FA<EIO123", 0.83)
    assert pixels._text([[less_sure, garbled]], (), strict=False) == [less_sure, garbled]


def _small_print(tmp_path: Path, frames: np.ndarray[Any, Any], lines: list[tuple[tuple[int, int], str]],
                 font: Path) -> tuple[dict[str, Any], np.ndarray[Any, Any]]:
    """`lines` burned into an 8-bit ultrasound frame in 8-pixel type, strokes a pixel wide (the name and the ID of
    its header), the file cleaned: its record, and where the ink is."""
    fx.require_font()
    from PIL import Image, ImageDraw, ImageFont

    rows, cols = frames.shape[1:3]
    mask = Image.new("L", (cols, rows), 0)
    drawn = ImageDraw.Draw(mask)
    for place, text in lines:
        drawn.text(place, text, fill=255, font=ImageFont.truetype(str(font), 8))
    ink = np.asarray(mask) > 127
    frames[0][ink] = 240
    path = tmp_path / "in" / "us.dcm"
    fx._save(fx._dataset(fx.US_IMAGE, "US", rows, cols, PatientName="QUXWORTHY^MIRABEL", PatientID="FAKEID123"),
             frames, path)
    return _run(tmp_path / "in", tmp_path / "out", tmp_path / "q", "phi")["us.dcm"], ink


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_small_print_on_a_noisy_ultrasound_image_is_found_and_redacted(tmp_path: Path, seed: int) -> None:
    """Found from outside: a name and an ID in 8-point type (strokes a pixel wide) on a noisy 640 x 480 ultrasound
    image were released unread (in 9 of 16 noise draws the detector found nothing at its scale). The frame is also
    read at twice its size; the measurement label stays."""
    _require_ocr()
    frames = np.random.default_rng(seed).normal(40, 12, (1, 480, 640)).clip(0, 255).astype(np.uint8)
    fx.require_font()
    canvas = fx.Canvas(frames)
    canvas.text(0, (500, 440), "4.2 cm", 240, phi=False)
    record, ink = _small_print(tmp_path, frames, [((300, 200), "QUXWORTHY^MIRABEL FAKEID123")], fx.MONO)
    assert record["status"] == "written", record["reason"]
    out = _frames(_output(record))[0]
    assert not (out[ink] == 240).any(), "ink left where the name and the ID were drawn"
    (_, x0, y0, x1, y1), = canvas.labels
    assert np.array_equal(out[y0:y1, x0:x1], frames[0, y0:y1, x0:x1])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_small_print_on_the_speckle_of_a_larger_ultrasound_frame_is_redacted(tmp_path: Path, seed: int) -> None:
    """Found from outside: a name and an ID in 8-pixel type on the speckle of a 960 x 720 grey ultrasound frame
    were released (in 8 of 15 such frames): the window fitted to the frame whitened them with the bright speckle,
    and a frame this large was not read at twice its size. Its values as they are are read too."""
    _require_ocr()
    rows, cols = 720, 960
    rng = np.random.default_rng(seed)
    picture = rng.normal(40, 12, (rows, cols))
    y, x = np.mgrid[0:rows, 0:cols]
    radius, angle = np.hypot(x - cols / 2, y - rows * 0.12), np.degrees(np.arctan2(x - cols / 2, y - rows * 0.12))
    fan = (np.abs(angle) < 35) & (radius > rows * 0.05) & (radius < rows * 0.85)
    picture[fan] = rng.rayleigh(45, int(fan.sum())) + 20
    frames = picture.clip(0, 255).astype(np.uint8)[None]
    record, ink = _small_print(tmp_path, frames, [((432, 324), "QUXWORTHY^MIRABEL"), ((432, 338), "ID FAKEID123")],
                               fx.FONT)
    if record["status"] == "written":
        assert not (_frames(_output(record))[0][ink] == 240).any(), "ink left where the name and the ID were drawn"
    else:
        assert record["status"] == "quarantined", record["reason"]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_faint_text_on_a_noisy_radiograph_is_found_and_redacted(tmp_path: Path, seed: int) -> None:
    """Found from outside: a name, an ID and a date in 12-pixel type, three noise levels above the uneven background
    of a 1024 x 1024 16-bit radiograph, were released: the window shows them faint, the local contrast stretch
    drowns them in the noise it amplifies, and a frame this large is not read at twice its size. The frame is also
    read without its background."""
    _require_ocr()
    fx.require_font()
    from PIL import Image, ImageDraw, ImageFont

    rows = cols = 1024
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols] / rows
    body = 0.25 + 0.3 * x + 0.35 * np.exp(-((x - 0.5) ** 2 / 0.08 + (y - 0.55) ** 2 / 0.15))
    noise = 0.02  # of the range
    mask = Image.new("L", (cols, rows), 0)
    drawn = ImageDraw.Draw(mask)
    font = ImageFont.truetype(str(fx.FONT), 16)  # (capitals 12 pixels high)
    for place, text in (((80, 120), "QUXWORTHY^MIRABEL"), ((640, 300), "FAKEID123"), ((300, 800), "1961-03-07")):
        drawn.text(place, text, fill=255, font=font)
    ink = np.asarray(mask) > 127
    values = body + rng.normal(0, noise, (rows, cols)) + 3 * noise * ink
    frame = (values.clip(0, 1) * 65535).astype(np.uint16)
    path = tmp_path / "in" / "cr.dcm"
    fx._save(fx._dataset(fx.CR_IMAGE, "CR", rows, cols, BitsAllocated=16, BitsStored=16, HighBit=15,
                         PatientName="QUXWORTHY^MIRABEL", PatientID="FAKEID123", PatientBirthDate="19610307"),
             frame[None], path)
    record = _run(tmp_path / "in", tmp_path / "out", tmp_path / "q", "phi")["cr.dcm"]
    if record["status"] == "quarantined":
        return  # held back: nothing released
    assert record["status"] == "written", record["reason"]
    out = _frames(_output(record))[0]
    lines = [(slice(110, 140), slice(70, 330)), (slice(290, 320), slice(630, 760)), (slice(790, 820), slice(290, 420))]
    assert sum(int(ink[down, across].sum()) for down, across in lines) == int(ink.sum())  # (each line whole)
    for down, across in lines:
        left = ink[down, across] & (out[down, across] == frame[down, across])
        assert not left.any(), f"{int(left.sum())} pixels of a line's ink left unchanged"


@pytest.mark.parametrize("text", ["4.2 cm", "GAIN 55", "TIS<0.4 MI=0.8 AO=100%", "+2:09:04", "LYMPH NODE",
                                  "DR 60", "FR 25Hz", "C5-1", "Depth 16 cm", "12:30:05", "PWR", "CINE 0118",
                                  "2D 60% C50 P Low HGen", "Gn 12 60dB FR 30Hz", "0.5 1.0 1.5 2.0"])
def test_labels_and_measurements_are_not_phi(text: str) -> None:
    assert not is_phi(text, (Needle("PatientName", b"fakedoe"), Needle("PatientID", b"fk83920471")))


def test_real_burned_in_ultrasound_from_deid_data(tmp_path: Path, independent: Any) -> None:
    """deid-data's greyscale ultrasound (BurnedInAnnotation YES): its own header values are not read after."""
    import deid_data

    source = Path(deid_data.__file__).parent / "data" / "ultrasounds" / "GREYSCALE_IMAGE.dcm"
    (tmp_path / "in").mkdir()
    shutil.copy(source, tmp_path / "in" / "us.dcm")
    record = _run(tmp_path / "in", tmp_path / "out", tmp_path / "q", "phi")["us.dcm"]
    assert record["pixels"]["boxes"]
    assert record["status"] == "written", record["reason"]
    patterns = needles(pydicom.dcmread(source, stop_before_pixels=True))
    values = [fold(n.data.decode("utf-8", "ignore")) for n in patterns]
    for text in _read_all(independent, _output(record)):
        assert not any(value in fold(text) for value in values)


def test_jpeg_2000_lossless_input_is_re_encoded_losslessly(tmp_path: Path) -> None:
    """pydicom's US1_J2KR (an ultrasound with text) keeps its syntax, or says it was written native."""
    _require_ocr()
    (tmp_path / "in").mkdir()
    shutil.copy(pydicom_file("US1_J2KR.dcm"), tmp_path / "in" / "us.dcm")
    record = _run(tmp_path / "in", tmp_path / "out", tmp_path / "q", "phi")["us.dcm"]
    assert record["status"] == "written", record["reason"]
    assert record["pixels"]["boxes"]
    out = pydicom.dcmread(_output(record))
    source = pydicom.dcmread(pydicom_file("US1_J2KR.dcm"))
    syntax = str(out.file_meta.TransferSyntaxUID)
    assert syntax == source.file_meta.TransferSyntaxUID or record["pixels"]["pixel_data"].endswith(
        "explicit VR little endian (was JPEG 2000 Image Compression (Lossless Only))")
    changed = np.any(out.pixel_array != source.pixel_array, axis=-1)
    inside = np.zeros_like(changed)
    for box in record["pixels"]["boxes"]:
        inside[box["y"]:box["y"] + box["height"], box["x"]:box["x"] + box["width"]] = True
    assert changed.any() and not (changed & ~inside).any()  # lossless: only the boxes differ


def test_cli_without_the_ocr_extra_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    fx.require_font()
    fx.control(tmp_path / "in" / "control.dcm")
    key = tmp_path / "key"
    key.write_bytes(KEY)
    ocr._engine.cache_clear()
    monkeypatch.setitem(__import__("sys").modules, "rapidocr", None)  # as if not installed
    try:
        status = main(["anonymize", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--level", "full",
                       "--key-file", str(key), "--clean-pixels"])
    finally:
        ocr._engine.cache_clear()
    assert status == 2
    assert "pip install 'neuroanon[ocr]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_overlay_bits_are_cleared_in_a_text_free_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fx.require_font()
    path = tmp_path / "in" / "xa.dcm"
    fx.xa16(path)
    monkeypatch.setattr(ocr, "read", lambda image, small_print=False: [])  # no text read: only the overlay bits change
    record = _run(tmp_path / "in", tmp_path / "out", tmp_path / "q", "all")["xa.dcm"]
    assert record["status"] == "written" and record["pixels"]["boxes"] == []
    # the engine clears the bits of an overlay the header names as it writes; the pixel stage finds none left
    assert record["pixels"]["pixel_data"] == "unchanged"
    assert {"tag": "(7FE0,0010)", "keyword": "PixelData", "action": "unused bits cleared (an overlay embedded in them)"
            } in record["changes"]
    source = np.frombuffer(pydicom.dcmread(path).PixelData, "<u2")
    out = np.frombuffer(pydicom.dcmread(_output(record)).PixelData, "<u2")
    assert np.array_equal(out, source & 0x0FFF)
    assert not (tmp_path / "q" / review.FOLDER).exists()  # nothing redacted: nothing to review


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_values_stored_above_bit_0_are_read_and_kept_where_they_lie(tmp_path: Path, signed: bool) -> None:
    """HighBit 15 with 12 bits stored: the values lie in bits 4 to 15. The stage read them as the low 12 bits and
    wrote those back, which lost the image (found from outside)."""
    _require_ocr()
    made = fx.xa16_shifted(tmp_path / "in" / "xa.dcm", signed)
    record = _run(tmp_path / "in", tmp_path / "out", tmp_path / "q", "all")["xa.dcm"]
    assert record["status"] == "written", record["reason"]
    assert record["pixels"]["boxes"]
    dtype = "<i2" if signed else "<u2"
    source = np.frombuffer(pydicom.dcmread(made.path).PixelData, dtype).reshape(256, 256)
    out = np.frombuffer(pydicom.dcmread(_output(record)).PixelData, dtype).reshape(256, 256)
    assert (source & 0xF).any() and not (out & 0xF).any()  # the bits below the stored ones are cleared
    # the text is gone and the picture stays: what no box touched keeps its stored values
    for _, x0, y0, x1, y1 in made.phi:
        assert not (out[y0:y1, x0:x1] == source[y0:y1, x0:x1].max()).any()
    assert np.array_equal(out[40:220] >> 4, source[40:220] >> 4)
    for _, x0, y0, x1, y1 in made.labels:
        assert np.array_equal(out[y0:y1, x0:x1] >> 4, source[y0:y1, x0:x1] >> 4)


def test_compressed_values_stored_above_bit_0_are_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = fx._dataset(fx.XA_IMAGE, "XA", 16, 16, BitsAllocated=16, BitsStored=16, HighBit=15)
    ds.compress(RLELossless, np.full((16, 16), 0x1230, dtype=np.uint16), generate_instance_uid=False)
    ds.BitsStored = 12  # (pydicom's encoder takes no such layout)
    assert "compressed pixel data stored from bit 4 (HighBit 15)" in _held_for(ds, tmp_path, monkeypatch, "all")


def _held_for(ds: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> str:
    """Why a file of `ds` is held with `--clean-pixels mode`, no text read in it."""
    path = tmp_path / "in" / "image.dcm"
    path.parent.mkdir(parents=True)
    ds.save_as(path, enforce_file_format=True)
    monkeypatch.setattr(ocr, "read", lambda image, small_print=False: [])
    record = _run(tmp_path / "in", tmp_path / "out", tmp_path / "q", mode)["image.dcm"]
    assert record["status"] == "quarantined"
    return str(record["reason"])


def test_clean_pixels_is_refused_below_full_and_with_an_unknown_mode(tmp_path: Path) -> None:
    fx.require_font()
    fx.control(tmp_path / "in" / "control.dcm")
    status = main(["anonymize", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--clean-pixels"])
    assert status == 2 and not (tmp_path / "out").exists()
    with pytest.raises(UsageError):
        pixels.in_scope(Dataset(), Options(level=Level.FULL, key=KEY, clean_pixels="everything"))


def test_lossy_jpeg_input_is_written_native_and_the_report_says_so(tmp_path: Path) -> None:
    _require_ocr()
    made = fx.sc_jpeg(tmp_path / "in" / "sc.dcm")
    record = _run(tmp_path / "in", tmp_path / "out", tmp_path / "q", "phi")["sc.dcm"]
    assert record["status"] == "written", record["reason"]
    assert record["pixels"]["pixel_data"] == "rewritten explicit VR little endian (was JPEG Baseline (Process 1))"
    out = pydicom.dcmread(_output(record))
    assert out.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert out.PhotometricInterpretation == "RGB" and out.LossyImageCompression == "01"
    source = pydicom.dcmread(made.path).pixel_array  # decoded to RGB by pydicom
    (frame, x0, y0, x1, y1), = made.phi
    assert np.abs(source[y0:y1, x0:x1].astype(int) - 255).sum(axis=-1).min() < 60  # the text was there
    assert (out.pixel_array[y0:y1, x0:x1].astype(int).sum(axis=-1) < 400).all()  # no near-white left
    outside = np.ones(source.shape[:2], dtype=bool)
    for box in record["pixels"]["boxes"]:
        outside[box["y"]:box["y"] + box["height"], box["x"]:box["x"] + box["width"]] = False
    assert np.array_equal(out.pixel_array[outside], source[outside])


@pytest.mark.parametrize("between_scans", [False, True], ids=["before-the-scan", "between-scans"])
def test_a_jpeg_with_a_thumbnail_is_written_again_without_it(tmp_path: Path, between_scans: bool) -> None:
    """A thumbnail of the name (Exif's before the first scan, or JFIF's between two scans of a progressive JPEG) is
    shown by no decoder of the frame: plain `full` holds the file even past the burned-in gate;
    `--clean-pixels` writes the frame again
    from the decoded image, without it, and releases it."""
    _require_ocr()
    picture = fx.jpeg_with_thumbnail(tmp_path / "in" / "sc.dcm", between_scans)
    allowed = Options(level=Level.FULL, key=KEY, allow_burned_in=True)  # (a secondary capture: past the gate)
    plain = anonymize_file(tmp_path / "in" / "sc.dcm", tmp_path / "plain", allowed)
    assert plain.status is Status.QUARANTINED and "bytes that no frame shows" in plain.reason, plain.reason
    record = _run(tmp_path / "in", tmp_path / "out", tmp_path / "q", "all")["sc.dcm"]
    assert record["status"] == "written", record["reason"]
    assert record["pixels"]["pixel_data"].startswith("rewritten"), record["pixels"]
    assert picture not in _output(record).read_bytes()


def test_two_workers_write_the_same_bytes(cleaned: dict[str, Any], tmp_path: Path) -> None:
    """Each worker process loads its own model; the outputs are those of one process, byte for byte."""
    inputs = cleaned["made"]["us.dcm"].path.parent
    options = Options(level=Level.FULL, key=KEY, clean_pixels="phi", quarantine=tmp_path / "q")
    summary = anonymize_tree([inputs], tmp_path / "out", options, workers=2)
    assert summary.exit_code == 0
    one = {p.relative_to(cleaned["out"]): p.read_bytes() for p in files_under(cleaned["out"])}
    two = {p.relative_to(tmp_path / "out"): p.read_bytes() for p in files_under(tmp_path / "out")}
    assert two == one and len(two) == 5
    assert (tmp_path / "q" / review.FOLDER / review.PAGE).is_file()


@pytest.mark.parametrize("maker", [fx.us_cine, fx.sc_rgb])
def test_rewritten_file_tells_the_residual_check_where_its_pixel_data_lies(
    maker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pixel values are not searched for header values (random bytes would match by chance): the span is given."""
    import io

    from neuroanon.apply import apply_level
    from neuroanon.read import read_header

    fx.require_font()
    made = maker(tmp_path / "in.dcm")
    read_once = iter([[ocr.TextBox(0, 0, 40, 12, "FAKEDOE^JANINE")]])
    monkeypatch.setattr(ocr, "read", lambda image, small_print=False: next(read_once, []))
    header = read_header(made.path)
    options = Options(level=Level.FULL, key=KEY, clean_pixels="phi")
    patterns = needles(header.dataset)
    dataset, changes = apply_level(header.dataset, options, patterns)
    cleaning = pixels.clean(made.path, header, dataset, changes, patterns, options)
    assert cleaning is not None and cleaning.write is not None and cleaning.held is None
    buffer = io.BytesIO()
    span = cleaning.write(buffer)
    data = buffer.getvalue()
    assert span is not None and span.end == len(data)
    assert data[span.start:span.start + 4] == b"\xe0\x7f\x10\x00"
    assert pydicom.dcmread(io.BytesIO(data)).PixelData == dataset.PixelData


def test_real_big_endian_palette_cine_from_pydicom(tmp_path: Path, independent: Any) -> None:
    """pydicom's OBXXXX1A_expb_2frame: ultrasound, PALETTE COLOR, two frames (the second is the first's indices
    inverted: near-black through the palette, its text faint but in the values), explicit VR big endian. The name,
    ID and date bar is redacted on both, the measurement labels stay, the file stays big endian."""
    from pydicom.pixels.processing import apply_color_lut

    (tmp_path / "in").mkdir()
    shutil.copy(pydicom_file("OBXXXX1A_expb_2frame.dcm"), tmp_path / "in" / "us.dcm")
    record = _run(tmp_path / "in", tmp_path / "out", tmp_path / "q", "phi")["us.dcm"]
    assert record["status"] == "written", record["reason"]
    assert {box["frame"] for box in record["pixels"]["boxes"]} == {0, 1}
    assert record["pixels"]["pixel_data"] == "rewritten native"
    source = pydicom.dcmread(pydicom_file("OBXXXX1A_expb_2frame.dcm"))
    out = pydicom.dcmread(_output(record))
    assert out.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID
    assert out.RedPaletteColorLookupTableData == source.RedPaletteColorLookupTableData
    before, after = apply_color_lut(source.pixel_array, source), apply_color_lut(out.pixel_array, out)
    outside = np.ones(before.shape[:3], dtype=bool)
    for box in record["pixels"]["boxes"]:
        outside[box["frame"], box["y"]:box["y"] + box["height"], box["x"]:box["x"] + box["width"]] = False
    assert np.array_equal(after[outside], before[outside])  # the palette and every other pixel kept
    values = [fold(n.data.decode("utf-8", "ignore")) for n in needles(source)]
    texts = [fold(t) for t in _read_all(independent, _output(record))]
    assert values and not any(value in text for value in values for text in texts)
    assert any("cm" in text for text in texts)  # the measurement label is still there


def test_text_free_image_said_to_carry_text_is_released_marked_no(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fx.require_font()
    made = fx.control(tmp_path / "in" / "control.dcm", BurnedInAnnotation="YES")
    monkeypatch.setattr(ocr, "read", lambda image, small_print=False: [])
    record = _run(tmp_path / "in", tmp_path / "out", tmp_path / "q", "phi")["control.dcm"]
    assert record["status"] == "written" and record["pixels"]["pixel_data"] == "unchanged"
    out = pydicom.dcmread(_output(record))
    assert out.BurnedInAnnotation == "NO" and out.PatientIdentityRemoved == "YES"
    assert out.PixelData == pydicom.dcmread(made.path).PixelData


def _text_image(path: Path, draw: Any) -> fx.Fixture:
    """A text-free-looking ultrasound image (speckle up to 180) with white text `draw(canvas)` puts in it."""
    frames = fx.speckle(np.random.default_rng(5), 256, 256, 180).astype(np.uint8)[None]
    canvas = fx.Canvas(frames)
    draw(canvas)
    ds = fx._dataset(fx.US_IMAGE, "US", 256, 256)
    fx._save(ds, frames, path)
    return fx.Fixture(path, canvas.phi, canvas.labels)


def _wrapped(canvas: fx.Canvas) -> None:
    canvas.text(0, (8, 6), "FAKE-", 255, size=18)  # a value wrapped in a narrow field
    canvas.text(0, (8, 28), "DOE", 255, size=18)


def _spaced(canvas: fx.Canvas) -> None:
    for i, letter in enumerate("FAKEDOE"):  # letters spaced apart, read a box each or with spaces
        canvas.text(0, (8 + 34 * i, 120), letter, 255, size=18)


def _turned(canvas: fx.Canvas) -> None:
    from PIL import Image, ImageDraw, ImageFont

    mask = Image.new("L", (200, 30), 0)
    ImageDraw.Draw(mask).text((2, 2), "FAKEDOE^JANINE", fill=255, font=ImageFont.truetype(str(fx.FONT), 18))
    ink = np.asarray(mask.rotate(90, expand=True)) > 110  # reading upwards, as a side label runs
    canvas.frames[0, 20:20 + ink.shape[0], 10:10 + ink.shape[1]][ink] = 255
    canvas.phi.append((0, 10, 20, 10 + ink.shape[1], 20 + ink.shape[0]))


@pytest.mark.parametrize("draw", [_wrapped, _spaced, _turned], ids=["wrapped", "spaced", "turned"])
def test_text_split_over_lines_spaced_apart_or_turned_is_redacted(tmp_path: Path, draw: Any) -> None:
    """Text the reader splits (a name wrapped over two lines, its letters spaced apart: neither part PHI alone) or
    reads turned a quarter turn: each was released whole (found from outside)."""
    _require_ocr()
    made = _text_image(tmp_path / "in" / "image.dcm", draw)
    record = _run(tmp_path / "in", tmp_path / "out", tmp_path / "q", "phi")["image.dcm"]
    assert record["status"] == "written", record["reason"]
    out = _frames(_output(record))
    for frame, x0, y0, x1, y1 in made.phi:
        assert not (out[frame, y0:y1, x0:x1] == 255).any(), "ink left where PHI was drawn"
        if draw is _turned:  # the margin is the line's: its width, not its length (found from outside: a band
            # of the image as wide as the line was long went with it)
            assert all(box["width"] <= 2 * (x1 - x0) and box["height"] <= (y1 - y0) + (x1 - x0)
                       for box in record["pixels"]["boxes"]), record["pixels"]["boxes"]


def _with_hidden_picture(path: Path, where: str) -> bytes:
    """A text-free JPEG secondary capture whose codestream also holds a picture of a name: an Exif thumbnail, or
    a second codestream after the first one's end."""
    import io

    from PIL import Image

    plain = io.BytesIO()
    Image.fromarray(fx.speckle(np.random.default_rng(9), 128, 128, 120).astype(np.uint8)).save(plain, "JPEG")
    frames = np.zeros((1, 40, 200), dtype=np.uint8)
    fx.Canvas(frames).text(0, (4, 8), "FAKEDOE^JANINE", 255, size=18)
    name = io.BytesIO()
    Image.fromarray(frames[0]).save(name, "JPEG")
    stream = plain.getvalue()
    if where == "thumbnail":
        exif = b"Exif\x00\x00" + name.getvalue()  # (a thumbnail's bytes as an APP1 segment carries them)
        stream = stream[:2] + b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif + stream[2:]
    elif where == "after":
        stream += name.getvalue()
    elif where == "raw after":  # (the picture's values as they are, no codestream)
        stream += frames[0].tobytes()
    elif where == "padded":  # (a byte or two a writer pads with)
        stream += b"\xff\xff"
    ds = fx._dataset(fx.SECONDARY_CAPTURE, "OT", 128, 128)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEGBaseline8Bit
    ds.PixelData = pydicom.encaps.encapsulate([stream])
    ds["PixelData"].VR = "OB"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return name.getvalue()


@pytest.mark.parametrize("where", ["thumbnail", "after", "none"])
def test_a_picture_no_decoder_shows_is_not_released(tmp_path: Path, where: str) -> None:
    """A JPEG's Exif thumbnail or a codestream after its end holds a picture no decoder of the frame shows: the
    pixel data was released byte for byte when the frame showed no text (found from outside). It is now written
    again from the decoded frame; a JPEG that holds only its image keeps its bytes."""
    _require_ocr()
    hidden = _with_hidden_picture(tmp_path / "in" / "sc.dcm", where)
    record = _run(tmp_path / "in", tmp_path / "out", tmp_path / "q", "phi")["sc.dcm"]
    assert record["status"] == "written", record["reason"]
    written = _output(record).read_bytes()
    if where == "none":
        assert record["pixels"]["pixel_data"] == "unchanged"
        assert pydicom.dcmread(tmp_path / "in" / "sc.dcm").PixelData in written
    else:
        assert record["pixels"]["pixel_data"] == "rewritten explicit VR little endian (was JPEG Baseline (Process 1))"
        assert hidden[100:140] not in written and b"\xff\xd8\xff" not in written
        assert {"tag": "(7FE0,0010)", "keyword": "PixelData", "action": "written without what no decoder shows (a "
                "thumbnail, another codestream)"} in record["changes"]


@pytest.mark.parametrize("where", ["after", "raw after", "padded", "none"])
def test_a_picture_after_the_codestream_holds_the_file_back_at_full(tmp_path: Path, where: str) -> None:
    """Without --clean-pixels nothing rewrites the pixel data: a codestream past the frames (here after the first
    one's end, holding a picture of the name), or the picture's raw values there, was released, its bytes searched
    for text only (found from outside). The file is held, as bytes after native frames are."""
    fx.require_font()
    _with_hidden_picture(tmp_path / "in" / "sc.dcm", where)
    options = Options(level=Level.FULL, key=KEY, allow_burned_in=True)
    record = anonymize_file(tmp_path / "in" / "sc.dcm", tmp_path / "out", options)
    held = where in ("after", "raw after")
    assert record.status is (Status.QUARANTINED if held else Status.WRITTEN), record.reason
    assert ("bytes that no frame shows" in record.reason) is held


@pytest.mark.parametrize("together", [False, True], ids=["a fragment each", "one fragment"])
def test_frames_of_their_own_codestreams_are_no_second_picture(tmp_path: Path, together: bool) -> None:
    """Two frames, two codestreams: written, whether each frame has its fragment or both share one."""
    import io

    from PIL import Image

    streams = []
    for seed in (1, 2):
        out = io.BytesIO()
        Image.fromarray(fx.speckle(np.random.default_rng(seed), 64, 64, 120).astype(np.uint8)).save(out, "JPEG")
        streams.append(out.getvalue())
    ds = fx._dataset(fx.SECONDARY_CAPTURE, "OT", 64, 64, NumberOfFrames=2)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEGBaseline8Bit
    ds.PixelData = pydicom.encaps.encapsulate([b"".join(streams)] if together else streams)
    ds["PixelData"].VR = "OB"
    source = tmp_path / "in" / "two.dcm"
    source.parent.mkdir(parents=True)
    ds.save_as(source, enforce_file_format=True)
    record = anonymize_file(source, tmp_path / "out", Options(level=Level.FULL, key=KEY, allow_burned_in=True))
    assert record.status is Status.WRITTEN, record.reason


def test_a_layout_not_cleaned_is_named_in_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Native YBR_FULL_422 is held back; the reason said only "(ValueError)" (found from outside)."""
    ds = fx._dataset(fx.US_IMAGE, "US", 16, 16, SamplesPerPixel=3, PhotometricInterpretation="YBR_FULL_422",
                     PlanarConfiguration=0)
    ds.PixelData = bytes(16 * 16 * 2)  # two samples a pixel, as 4:2:2 stores them
    assert "pixel data could not be read for cleaning (native YBR_FULL_422)" in _held_for(ds, tmp_path,
                                                                                          monkeypatch, "phi")


def test_a_large_or_long_image_is_also_read_in_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """The detector scales an image to 736 pixels on its shorter side and 2000 at most on its longer one: small
    print on a radiograph or a long strip shrank below what it finds (found from outside). Such an image is also
    read in overlapping tiles of at most 736 pixels a side that cover it all, each box put back in place; an
    image the detector scales by 0.7 or more (a 1024 x 768 ultrasound frame) is not, as it reads it whole."""
    for rows, cols, tiles in ((512, 512, 0), (768, 1024, 0), (1024, 1024, 0), (1400, 1400, 9), (200, 4000, 7),
                              (2200, 2800, 20)):
        image = np.zeros((rows, cols), dtype=np.uint8)
        covered = np.zeros((rows, cols), dtype=bool)
        calls: list[tuple[int, int, int, int]] = []

        def fake_read(part: np.ndarray[Any, Any], image: np.ndarray[Any, Any] = image,
                      covered: np.ndarray[Any, Any] = covered,
                      calls: list[tuple[int, int, int, int]] = calls) -> list[ocr.TextBox]:
            offset = part.__array_interface__["data"][0] - image.__array_interface__["data"][0]
            y, x = divmod(offset // image.itemsize, image.shape[1])  # (a view: where it starts in the image)
            calls.append((y, x, *part.shape[:2]))
            covered[y:y + part.shape[0], x:x + part.shape[1]] = True
            return [ocr.TextBox(1, 2, 3, 4, "x")]

        monkeypatch.setattr(ocr, "_read", fake_read)
        found = ocr.read(image)
        assert calls[0] == (0, 0, rows, cols) and len(calls) == 1 + tiles
        assert all(height <= 736 and width <= 736 for _, _, height, width in calls[1:])
        assert covered.all() if tiles else True
        assert sorted((b.x0, b.y0) for b in found) == sorted((1 + x, 2 + y) for y, x, _, _ in calls)


def test_small_print_on_a_large_radiograph_is_redacted(tmp_path: Path) -> None:
    """16-pixel text on a 1400 x 1400 radiograph was released (found from outside): the whole image, scaled down
    to the detector's size, showed it too small. Read in tiles, it is redacted."""
    _require_ocr()
    frames = np.full((1, 1400, 1400), 30, dtype=np.uint8)
    canvas = fx.Canvas(frames)
    canvas.text(0, (100, 100), "FAKEDOE JANINE", 255, size=16)
    ds = fx._dataset(fx.CR_IMAGE, "CR", 1400, 1400)
    fx._save(ds, frames, tmp_path / "in" / "cr.dcm")
    record = _run(tmp_path / "in", tmp_path / "out", tmp_path / "q", "phi")["cr.dcm"]
    assert record["status"] == "written", record["reason"]
    (frame, x0, y0, x1, y1), = canvas.phi
    assert not (_frames(_output(record))[frame, y0:y1, x0:x1] == 255).any(), "ink left where PHI was drawn"


@pytest.mark.parametrize(("rows", "cols", "grid"), [(512, 512, (21, 21)), (768, 1024, (42, 32)),
                                                     (3000, 3000, (38, 38)), (200, 6000, (214, 7))])
def test_the_local_contrast_of_a_large_frame_keeps_its_tables_bounded(rows: int, cols: int, grid: tuple[int, int],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The contrast stretch keeps a table of 65,536 values a tile: a 3000 x 3000 frame in tiles of 24 pixels took
    1.9 GB (found from outside). Tiles grow on a large frame, 1,536 tiles at most; a smaller one keeps its own."""
    import cv2

    made: list[tuple[int, int]] = []
    create = cv2.createCLAHE

    def recorded(clipLimit: float, tileGridSize: tuple[int, int]) -> Any:  # noqa: N803 (OpenCV's names)
        made.append(tileGridSize)
        return create(clipLimit=clipLimit, tileGridSize=tileGridSize)

    monkeypatch.setattr(cv2, "createCLAHE", recorded)
    frame = (np.arange(rows * cols, dtype=np.uint32).reshape(rows, cols) % 4096).astype(np.uint16)
    picture = pixels._local_contrast(frame, "MONOCHROME2")
    assert picture.shape == (rows, cols) and picture.dtype == np.uint8
    assert made == [grid] and grid[0] * grid[1] <= pixels.LOCAL_TILES


@pytest.mark.parametrize("place", [(5, 5), (3, 0), (150, 0), (150, 23), (3, 161), (150, 115), (60, 100)])
def test_small_print_is_read_again_larger(place: tuple[int, int]) -> None:
    """8-pixel text on a small ultrasound image was read "OXR RTH" and released (found from outside): the
    recogniser reads a line a few pixels high badly. Such a line's box is read again, three times larger."""
    _require_ocr()
    fx.require_font()
    from PIL import Image, ImageDraw, ImageFont

    rows, cols = 240, 320
    y, x = np.mgrid[0:rows, 0:cols]
    background = 30 + 60 * np.exp(-(((y - rows / 2) / (rows / 4)) ** 2 + ((x - cols / 2) / (cols / 4)) ** 2))
    background += np.random.default_rng(1).normal(0, 3, background.shape)
    picture = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    ImageDraw.Draw(picture).text(place, "QX771234 QUAXWORTH", font=ImageFont.truetype(str(fx.FONT), 8), fill=230)
    texts = [box.text for box in ocr.read(np.asarray(picture))]
    assert "QX771234 QUAXWORTH" in texts, texts


@pytest.mark.parametrize(("text", "found"), [("QUAXWORIZEHULON", True), ("UAXWORTH", True), ("QUAXWORT 55", True),
                                             ("QUAXWO", False), ("AXWORT", False), ("QUAKWORTM", False)])
def test_a_long_name_read_garbled_at_an_end_is_found(text: str, found: bool) -> None:
    """Faint red text, read "QUAXWORIZEHULON" for "QUAXWORTH ZEBULON", was released (found from outside): a name
    of eight letters or more is found by all its letters but two in a row."""
    assert is_phi(text, (Needle("PatientName", b"quaxworth"),)) is found


def _name(canvas: fx.Canvas) -> None:
    canvas.text(0, (8, 8), "FAKEDOE^JANINE", 255, size=16)


@pytest.mark.parametrize("how", ["no file meta", "class in the file meta only"])
def test_an_image_is_read_whatever_its_file_meta(tmp_path: Path, how: str) -> None:
    """Found from outside: an image stored without file meta (as old archives hold them) was held, "pixel data could
    not be read for cleaning (AttributeError)"; a secondary capture named only in the file meta was not read at
    the default scope (the gate then held it for its class)."""
    _require_ocr()
    made = _text_image(tmp_path / "in" / "image.dcm", _name)
    ds = pydicom.dcmread(made.path)
    if how == "no file meta":
        del ds.file_meta
        ds.save_as(made.path, implicit_vr=True, little_endian=True)
    else:
        ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.UID(fx.SECONDARY_CAPTURE)
        del ds.SOPClassUID
        ds.Modality = "MR"
        ds.save_as(made.path, enforce_file_format=True)
    record = _run(tmp_path / "in", tmp_path / "out", tmp_path / "q", "phi")["image.dcm"]
    assert record["status"] == "written", record["reason"]
    assert record["pixels"]["boxes"]
    written = pydicom.dcmread(_output(record), force=True)
    if how == "no file meta":  # (written as it came: without file meta, in implicit VR)
        assert "TransferSyntaxUID" not in written.file_meta
        written.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    out = written.pixel_array[None]
    for frame, x0, y0, x1, y1 in made.phi:
        assert not (out[frame, y0:y1, x0:x1] == 255).any()


def test_a_dry_run_writes_no_review_picture(tmp_path: Path) -> None:
    """The dry run writes nothing but its report: it wrote the review pictures of redacted images into the
    quarantine (found from outside)."""
    from neuroanon.pipeline import preview_tree

    _require_ocr()
    _text_image(tmp_path / "in" / "image.dcm", _name)
    options = Options(level=Level.FULL, key=KEY, clean_pixels="phi", quarantine=tmp_path / "q")
    summary = preview_tree([tmp_path / "in"], tmp_path / "out", options, report=tmp_path / "dry.jsonl")
    assert summary.counts.get("written") == 1
    (record,) = [json.loads(line) for line in (tmp_path / "dry.jsonl").read_text().splitlines() if '"input"' in line]
    assert record["pixels"]["boxes"]  # (redacted: a real run writes its review picture)
    assert not (tmp_path / "q").exists() or not any((tmp_path / "q").rglob("*"))
    assert not (tmp_path / "out").exists()
