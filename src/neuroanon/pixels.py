"""Clean Pixel Data (PS3.15 113101): burned-in text found by OCR, PHI text redacted, the result read again.

Only at full, with `--clean-pixels`. Which images: those of a class or modality that may carry burned-in text
(the burned-in gate's list, whatever BurnedInAnnotation says), or every image with mode `all`. Every frame is
decoded (native, RLE, JPEG, JPEG-LS, JPEG 2000 through pydicom's plugins), shown to the OCR in pictures made for
detection only (as a viewer shows it; with a local contrast stretch; deeper grey values also without their
background), and each PHI box (every box in `strict` mode) plus a margin is set to the background around it in
the stored representation. Overlay bits above BitsStored are cleared too.

Native pixel data stays native; compressed data is re-encoded losslessly in its transfer syntax when pydicom has
an encoder for it (RLE Lossless always), else written explicit VR little endian (the report says so). The
redacted frames are read again; a file is released only when nothing PHI-like is read, and then carries
BurnedInAnnotation NO and the 113101 code. An image without text keeps its pixel data byte for byte, unless
that holds more than its frames show (`_holds_more`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from . import ocr
from .apply import changed_top_level
from .burnedin import burned_in_risk
from .errors import UsageError
from .identifiers import Needle
from .options import Level, Options
from .pixeltext import holds_value, is_phi
from .read import Header, PixelSpan
from .rules import Change
from .write import write_instance

if TYPE_CHECKING:  # numpy comes with the ocr extra: imported where pixels are decoded, not by the pipeline
    import numpy as np

MODES = ("phi", "strict", "all", "all-strict")  # which boxes (phi or every one), which images (risky or all)
CLEAN_PIXEL_CODE = ("113101", "Clean Pixel Data Option")
PIXEL_DATA = 0x7FE00010
LOCAL_TILE = 24  # pixels: a tile about as high as a line of burned-in text
LOCAL_TILES = 1536  # at most (a 1024 x 768 frame takes 1,344 tiles of 24 pixels)
LOCAL_CLIP = 40.0  # high: within a tile, text and its background are stretched apart almost fully
FLAT_SMOOTH, FLAT_BACKGROUND = 0.7, 10.0  # pixels (Gaussian sigma): noise smoothed, background blurred away
ROUNDS = 2  # redact, read again, redact what is still read, read again: then release or hold
# Lossless syntaxes pydicom can encode (RLE natively; the others when their encoder plugin is installed).
_REENCODE = (RLELossless, JPEG2000Lossless, JPEGLSLossless)


@dataclass(frozen=True)
class Box:
    """A redacted rectangle: the frame (0-based) and the pixels (x0, y0 inclusive; x1, y1 exclusive)."""

    frame: int
    x0: int
    y0: int
    x1: int
    y1: int

    def as_dict(self) -> dict[str, int]:
        return {"frame": self.frame, "x": self.x0, "y": self.y0, "width": self.x1 - self.x0,
                "height": self.y1 - self.y0}


@dataclass
class Cleaning:
    """What Clean Pixel Data did to one file: the report entry, why it is held (if it is), how to write it."""

    frames: int = 0
    frames_read: int = 0
    boxes: list[Box] = field(default_factory=list)
    still_read: list[Box] = field(default_factory=list)  # PHI-like text read after the last redaction
    held: str | None = None
    encoding: str = "unchanged"
    seconds: float = 0.0
    write: Callable[[BinaryIO], PixelSpan | None] | None = None  # None: the pipeline's own writer (pixels kept)
    review: list[np.ndarray[Any, Any]] = field(default_factory=list)  # the frames to show a reviewer (8-bit)

    def report(self) -> dict[str, object]:
        """The report entry: counts and positions, never text."""
        return {"frames": self.frames, "frames_read": self.frames_read,
                "boxes": [b.as_dict() for b in self.boxes], "still_read": [b.as_dict() for b in self.still_read],
                "pixel_data": self.encoding, "seconds": round(self.seconds, 3),
                "seconds_per_frame": round(self.seconds / self.frames_read, 3) if self.frames_read else 0.0}


def in_scope(ds: Dataset, options: Options) -> bool:
    """True when `ds` (an original header) is an image whose pixels this run must read."""
    if options.clean_pixels and options.clean_pixels not in MODES:
        raise UsageError(f"clean_pixels must be one of {', '.join(MODES)}")
    if not options.clean_pixels or options.level is not Level.FULL or "Rows" not in ds:
        return False
    if options.clean_pixels.startswith("all"):
        return True
    unsure = Dataset()
    unsure.update({tag: ds.get_item(tag) for tag in ds.keys() if tag != 0x00280301})  # a NO is not believed
    if (meta := getattr(ds, "file_meta", None)) is not None:
        unsure.file_meta = meta  # (the gate reads the class there when the dataset names none)
    return burned_in_risk(unsure) is not None or burned_in_risk(ds) is not None  # (a YES is: found from outside)


def clean(source: Path, header: Header, dataset: Dataset, changes: list[Change], patterns: tuple[Needle, ...],
          options: Options, original: Dataset | None = None) -> Cleaning | None:
    """Read and redact the pixels of `source` for `dataset` (the level applied; updated in place with the new
    pixel data and the marks; `changes` extended). None when the file is out of scope: that of `original`, the
    source's original header when `source` is already anonymized (the engine's output), else `header`'s."""
    if not in_scope(header.dataset if original is None else original, options):
        return None
    started = time.perf_counter()
    cleaning = Cleaning()
    try:
        _clean(source, header, dataset, changes, patterns, options, cleaning)
    except UsageError:
        raise  # the ocr extra is missing: the run stops, no file is blamed
    except Exception as exc:  # no decoder, a corrupt stream, an unusual layout: fail closed
        why = str(exc) if isinstance(exc, _Unsupported) else type(exc).__name__  # (another's text may quote a path)
        cleaning.held = f"pixel data could not be read for cleaning ({why})"
        cleaning.write = None
    cleaning.seconds = time.perf_counter() - started
    return cleaning


class _Unsupported(ValueError):
    """Pixel data of a layout this stage does not clean; its message names the layout (never a value)."""


def _clean(source: Path, header: Header, dataset: Dataset, changes: list[Change], patterns: tuple[Needle, ...],
           options: Options, cleaning: Cleaning) -> None:
    import numpy as np
    from pydicom.pixels.utils import pixel_array

    whole = dcmread(source, force=True)
    if "PixelData" not in whole:
        raise _Unsupported("no PixelData: float, double or none")  # not handled here
    syntax = _syntax(whole, header)
    native = not syntax.is_compressed
    raw = native or syntax == RLELossless  # the stored values; other decoders give RGB for YBR colour
    low, high = _stored_bits(whole, native)
    words = pixel_array(whole, raw=raw, correct_unused_bits=False)  # each pixel's allocated bits, as they lie
    photometric = str(whole.PhotometricInterpretation)
    samples = int(whole.get("SamplesPerPixel", 1))
    if photometric == "YBR_FULL_422" and native:
        raise _Unsupported("native YBR_FULL_422")  # subsampled in the file, not in the decoded array
    if not raw and samples == 3:
        photometric = "RGB"
    count = int(whole.get("NumberOfFrames", 1) or 1)
    words = words.reshape((count, int(whole.Rows), int(whole.Columns), *((samples,) if samples > 1 else ())))
    frames = _values(words, low, high)  # read and redacted: bits outside the stored ones (overlays) are dropped
    cleaning.frames = count
    _redact(frames, photometric, whole, patterns, options.clean_pixels.endswith("strict"), cleaning)
    cleaned = _words(frames, low)
    changed = bool(cleaning.boxes) or not np.array_equal(cleaned, words)
    if native:  # (and any difference in the bytes: padding, say)
        changed = changed or _native_bytes(cleaned, whole, header.little_endian) != bytes(whole.PixelData)
    hidden = not native and syntax != RLELossless and _holds_more(whole, count)
    if changed or hidden:
        _rewrite(dataset, header, cleaned, whole, photometric, cleaning)
        done = "redacted" if cleaning.boxes else "overlay bits cleared" if changed else "written without what no " \
            "decoder shows (a thumbnail, another codestream)"
        changes.append(Change("(7FE0,0010)", "PixelData", done))
    if cleaning.boxes or cleaning.held:
        cleaning.review = [_display(frames[i], photometric, whole) for i in range(count)]
    if cleaning.held is None:
        _mark(dataset, changes)
    if cleaning.write is None:  # the pixel data is kept: streamed from the source, the marks encoded anew
        cleaning.write = partial(write_instance, dataset, header, source, changed=changed_top_level(changes))


def _holds_more(ds: Dataset, count: int) -> bool:
    """Whether encapsulated pixel data holds more than the images its frames decode to, where another picture may
    hide: a segment an application or a comment fills (an Exif or JFIF thumbnail), bytes after a codestream's end
    marker (a second codestream, a fragment after the frame's), a container around the codestream. Such pixel
    data is not kept byte for byte: it is written again from the decoded frames."""
    from pydicom.encaps import generate_frames

    for frame in generate_frames(ds.PixelData, number_of_frames=count):
        if frame[:2] == b"\xff\xd8":  # JPEG, JPEG-LS
            start = _scan_start(frame)
            if start is None:
                return True
        elif frame[:4] == b"\xff\x4f\xff\x51":  # a JPEG 2000 codestream: no marker of FF90 or above in its data
            start = 4
        else:
            return True
        end = frame.find(b"\xff\xd9", start)  # EOI, EOC
        if end < 0 or frame[end + 2 :].strip(b"\x00") or _FILLED_SEGMENT.search(frame, start, end):
            return True
    return False


# An application or comment segment between scans: no coded data holds 0xFF before these (JPEG stuffs 0x00 after
# 0xFF, JPEG-LS a bit below 0x80, JPEG 2000 has nothing above 0x8F there)
_FILLED_SEGMENT = re.compile(rb"\xff[\xe0-\xef\xfe]")


def _scan_start(frame: bytes) -> int | None:
    """Where a JPEG codestream's first scan starts, or None when a segment before it may hold a picture or text
    (an application segment other than a bare JFIF or Adobe one, a comment) or the markers do not parse."""
    pos = 2
    while pos + 4 <= len(frame) and frame[pos] == 0xFF:
        marker, length = frame[pos + 1], int.from_bytes(frame[pos + 2 : pos + 4], "big")
        if marker == 0xFF:  # fill
            pos += 1
            continue
        bare = (marker == 0xE0 and length <= 16) or (marker == 0xEE and length <= 14)
        if (0xE0 <= marker <= 0xEF and not bare) or marker == 0xFE:
            return None
        if marker == 0xDA:  # start of scan
            return pos
        pos += 2 + length
    return None


def _rewrite(dataset: Dataset, header: Header, frames: np.ndarray[Any, Any], whole: Dataset, photometric: str,
             cleaning: Cleaning) -> None:
    """Put the cleaned `frames` into `dataset`: native data stays native, in the source's own syntax (big endian
    too: its other binary values keep their order); compressed data is encoded again or written native."""
    syntax = UID(whole.file_meta.TransferSyntaxUID)
    implicit, little = header.implicit_vr, header.little_endian
    if not syntax.is_compressed:
        cleaning.encoding = "rewritten native"
        _set_native(dataset, frames, whole, little)
    else:
        implicit, little = False, True
        cleaning.encoding = _encode(dataset, frames, syntax, photometric, whole)
    cleaning.write = _writer(dataset, replace(header, pixels=None, implicit_vr=implicit, little_endian=little))


def _redact(frames: np.ndarray[Any, Any], photometric: str, ds: Dataset, patterns: tuple[Needle, ...],
            strict: bool, cleaning: Cleaning) -> None:
    """Read every frame, redact its PHI boxes in place; read the redacted frames again, up to ROUNDS times.

    Text still read after the last round holds the file back. Identical frames (a frozen cine) are read once."""
    todo = list(range(len(frames)))
    seen: dict[bytes, list[tuple[int, int, int, int]]] = {}
    for round_ in range(ROUNDS + 1):
        found: dict[int, list[tuple[int, int, int, int]]] = {}
        for index in todo:
            key = hashlib.blake2b(frames[index].tobytes(), digest_size=16).digest()
            if key not in seen or round_:
                pictures = _renderings(frames[index], photometric, ds)  # (small print: in the first)
                boxes = _text([ocr.read(image, small_print=not k) for k, image in enumerate(pictures)], patterns,
                              strict)
                cleaning.frames_read += 1
                seen[key] = _merged([(b.x0, b.y0, b.x1, b.y1) for b in boxes])
            if seen[key]:
                found[index] = seen[key]
        if not found:
            return
        if round_ == ROUNDS:
            cleaning.still_read = [Box(i, *r) for i, rects in found.items() for r in rects]
            cleaning.held = f"text still read after redaction in {len(found)} frame(s); check the review images"
            return
        for index, rects in found.items():
            for x0, y0, x1, y1 in rects:
                # Detection boxes hug the glyphs: a margin takes in ascenders, descenders and edge letters, in
                # proportion to the line's thickness: its height, or its width when it is turned a quarter turn.
                thick = min(y1 - y0, x1 - x0)
                across, along = max(2, thick // 3), max(3, thick // 2)
                dy, dx = (across, along) if x1 - x0 >= y1 - y0 else (along, across)
                box = Box(index, max(0, x0 - dx), max(0, y0 - dy), min(frames.shape[2], x1 + dx),
                          min(frames.shape[1], y1 + dy))
                frames[index, box.y0:box.y1, box.x0:box.x1] = _background(frames[index], box)
                cleaning.boxes.append(box)
        todo = sorted(found)


def _text(reads: list[list[ocr.TextBox]], patterns: tuple[Needle, ...], strict: bool) -> list[ocr.TextBox]:
    """The boxes of text to redact in a frame, from what was read in each of its pictures: each that is PHI (every
    one of two characters or more when `strict`); each read unsure (`TextBox.unsure`) that no sure reading covers
    (a label read "42Ccm" in one picture and "4.2 cm" in the other says what it is); and what is PHI only when
    boxes are joined (spaced letters, a value wrapped over two lines)."""
    sure = [b for read in reads for b in read if b.sure]
    found = []
    for read in reads:
        found += [b for b in read if (strict and ocr.characters(b) >= ocr.MIN_CHARACTERS)
                  or is_phi(b.text, patterns) or b.unsure and not any(_covers(s, b) for s in sure)]
        # a joined value's parts, not the rectangle around them (found from outside: lines joined one below the
        # other, of different lengths and places, were redacted as one band across the frame)
        found += [part for b in ocr.joined(read) if holds_value(b.text, patterns) for part in read if _within(part, b)]
    return list(dict.fromkeys(found))


def _within(part: ocr.TextBox, box: ocr.TextBox) -> bool:
    return box.x0 <= part.x0 and part.x1 <= box.x1 and box.y0 <= part.y0 and part.y1 <= box.y1


def _covers(sure: ocr.TextBox, box: ocr.TextBox) -> bool:
    """Whether `sure` lies over most of `box` (`_COVERED` of its area): a reading of the same text."""
    across = min(sure.x1, box.x1) - max(sure.x0, box.x0)
    down = min(sure.y1, box.y1) - max(sure.y0, box.y0)
    return across > 0 and down > 0 and across * down >= _COVERED * (box.x1 - box.x0) * (box.y1 - box.y0)


_COVERED = 0.7


def _merged(rects: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """The rectangles, those that overlap (the same text read in two pictures) joined into one."""
    merged: list[tuple[int, int, int, int]] = []
    for rect in sorted(rects):
        for i, (x0, y0, x1, y1) in enumerate(merged):
            if rect[0] < x1 and x0 < rect[2] and rect[1] < y1 and y0 < rect[3]:
                merged[i] = (min(x0, rect[0]), min(y0, rect[1]), max(x1, rect[2]), max(y1, rect[3]))
                break
        else:
            merged.append(rect)
    return merged


def _syntax(ds: Dataset, header: Header) -> UID:
    """The transfer syntax of `ds`, read from `header`'s file: its file meta's, else (a dataset without file meta,
    as old archives hold) the native one its elements are in, set in `ds`'s file meta for the decoder."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID"):
        return UID(meta.TransferSyntaxUID)
    syntax = (ImplicitVRLittleEndian if header.implicit_vr else ExplicitVRLittleEndian if header.little_endian
              else ExplicitVRBigEndian)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    return syntax


def _stored_bits(ds: Dataset, native: bool) -> tuple[int, int]:
    """The lowest and the highest bit of a pixel's stored value within its allocated bits (PS3.5 8.1.1: HighBit is
    the highest, BitsStored bits down from it), in a layout this stage cleans."""
    allocated, stored, high = int(ds.BitsAllocated), int(ds.BitsStored), int(ds.HighBit)
    low = high - stored + 1
    if allocated not in (8, 16, 32):
        raise _Unsupported(f"BitsAllocated {allocated}")
    if not 0 <= low <= high < allocated:
        raise _Unsupported(f"{allocated} bits allocated, {stored} stored, high bit {high}")
    if low and not native:
        raise _Unsupported(f"compressed pixel data stored from bit {low} (HighBit {high})")  # no codec stores so
    return low, high


def _values(words: np.ndarray[Any, Any], low: int, high: int) -> np.ndarray[Any, Any]:
    """The stored values of `words` (pixels in their allocated bits): the bits from `low` to `high`, sign-extended
    when the array is signed (PixelRepresentation 1). The bits outside them, where the retired overlays were
    embedded, are dropped."""
    values = words.copy()
    values <<= values.dtype.itemsize * 8 - 1 - high  # the high bit to the top ...
    values >>= values.dtype.itemsize * 8 - 1 - high + low  # ... and back down to bit 0: arithmetic when signed
    return values


def _words(values: np.ndarray[Any, Any], low: int) -> np.ndarray[Any, Any]:
    """`values` back in their allocated bits, from bit `low`; the bits below cleared, those above the high bit
    zero, or the sign when signed (as a decoder reads them)."""
    words = values.copy()
    words <<= low
    return words


def _renderings(frame: np.ndarray[Any, Any], photometric: str, ds: Dataset) -> list[np.ndarray[Any, Any]]:
    """The pictures of a frame that the OCR reads: as a viewer shows it (a window fitted to the frame, or the
    palette), and the stored values with a local contrast stretch, in which text that the window or the palette
    renders faint (a dark bar's labels, a palette's near-black frame) reads too. Noise the stretch amplifies can
    hide text that the first picture shows: both are read. An 8-bit grey frame is also read as its values are (as a
    viewer without a window shows it), where the window differs, and first: a window fitted to bright speckle
    whitens text drawn on it together with the speckle (found from outside: 8-pixel text on an ultrasound fan,
    released). A grey frame of more than 8 bits is also read without its background (`_flattened`), first. The
    first picture is the one read for small print too (`ocr.read`)."""
    import numpy as np

    pictures = [_display(frame, photometric, ds), _local_contrast(frame, photometric)]
    if frame.ndim == 2 and frame.dtype == np.uint8:
        stored = 255 - frame if photometric == "MONOCHROME1" else frame
        if not np.array_equal(stored, pictures[0]):
            pictures.insert(0, stored)
    elif frame.ndim == 2:  # (first: small print too, which the window gives a few levels of 256)
        pictures.insert(0, _flattened(frame, photometric))
    return pictures


def _flattened(frame: np.ndarray[Any, Any], photometric: str) -> np.ndarray[Any, Any]:
    """The grey values less their background (a blur some text lines wide), lightly smoothed, stretched between
    their 0.5th and 99.8th percentiles: text a few noise levels brighter or darker than an uneven, noisy background
    (a radiograph's body) stands out, which a window shows faint and the local contrast stretch drowns in the noise
    it amplifies (found from outside: 12-pixel text three noise levels above a 16-bit radiograph's background was
    released)."""
    import cv2
    import numpy as np

    values = cv2.GaussianBlur(frame.astype(np.float32), (0, 0), FLAT_SMOOTH)
    detail = values - cv2.GaussianBlur(values, (0, 0), FLAT_BACKGROUND)
    low, high = np.percentile(detail, (0.5, 99.8))
    image = np.clip((detail - low) * (255 / max(float(high - low), 1e-6)), 0, 255).astype(np.uint8)
    return np.asarray(255 - image if photometric == "MONOCHROME1" else image)


def _local_contrast(frame: np.ndarray[Any, Any], photometric: str) -> np.ndarray[Any, Any]:
    """Adaptive histogram equalisation (CLAHE) over tiles about a text line high, per colour sample."""
    import cv2
    import numpy as np

    values = frame.astype(np.float64)
    if frame.ndim == 3 and photometric.startswith("YBR_FULL"):
        from pydicom.pixels.processing import convert_color_space

        values = convert_color_space(frame, photometric, "RGB").astype(np.float64)
    low, high = float(values.min()), float(values.max())
    scaled = ((values - low) * 65535 / max(high - low, 1.0)).astype(np.uint16)
    rows, cols = frame.shape[:2]
    # A tile keeps a table of 65,536 values: on a large image tiles grow, so that their tables take 200 MB at most
    # (found from outside: a 3000 x 3000 frame in tiles of 24 pixels took 1.9 GB).
    tile = max(LOCAL_TILE, math.ceil(math.sqrt(rows * cols / LOCAL_TILES)))
    # OpenCV's clip limit is relative to the bin count: 16-bit input has 256 times as many bins as 8-bit.
    equaliser = cv2.createCLAHE(clipLimit=LOCAL_CLIP * 256, tileGridSize=(max(1, cols // tile), max(1, rows // tile)))
    planes = [scaled] if scaled.ndim == 2 else [scaled[:, :, i] for i in range(scaled.shape[2])]
    out = [(np.asarray(equaliser.apply(np.ascontiguousarray(p)), dtype=np.uint16) >> 8).astype(np.uint8)
           for p in planes]
    image = out[0] if len(out) == 1 else np.stack(out, axis=2)
    return np.asarray(255 - image if photometric == "MONOCHROME1" else image)


def _display(frame: np.ndarray[Any, Any], photometric: str, ds: Dataset) -> np.ndarray[Any, Any]:
    """The frame as an 8-bit picture for the OCR and the reviewer (a window fitted to the frame)."""
    import numpy as np
    from pydicom.pixels.processing import apply_color_lut, convert_color_space

    if photometric == "PALETTE COLOR":
        # The colours a viewer shows; a palette pydicom cannot expand is shown by its indices, windowed.
        with contextlib.suppress(Exception):
            frame = apply_color_lut(frame, ds)
    if frame.ndim == 3:
        rgb = frame
        if photometric.startswith("YBR_FULL"):
            rgb = convert_color_space(frame, photometric, "RGB")
        if rgb.dtype != np.uint8:
            rgb = (rgb.astype(np.float64) * 255 / max(1, int(rgb.max()))).astype(np.uint8)
        return np.asarray(rgb, dtype=np.uint8)
    values = frame.astype(np.float64)
    low, high = np.percentile(values, (0.5, 99.9))
    if high <= low:
        low, high = float(values.min()), float(values.max())
    scaled = np.clip((values - low) * 255 / max(high - low, 1e-9), 0, 255).astype(np.uint8)
    return np.asarray(255 - scaled if photometric == "MONOCHROME1" else scaled)


def _background(frame: np.ndarray[Any, Any], box: Box) -> np.ndarray[Any, Any]:
    """What lies behind the text: the median of a thin ring around the box (per sample for colour).

    Local, because the most frequent value of a noisy image may be the text's own ink."""
    import numpy as np

    rows, cols = frame.shape[:2]
    y0, y1, x0, x1 = max(0, box.y0 - 2), min(rows, box.y1 + 2), max(0, box.x0 - 2), min(cols, box.x1 + 2)
    ring = np.ones((y1 - y0, x1 - x0), dtype=bool)
    ring[box.y0 - y0 : box.y1 - y0, box.x0 - x0 : box.x1 - x0] = False
    around = frame[y0:y1, x0:x1][ring] if ring.any() else frame.reshape(-1, *frame.shape[2:])
    return np.asarray(np.median(around, axis=0)).round().astype(frame.dtype)


def _native_bytes(frames: np.ndarray[Any, Any], ds: Dataset, little: bool = True) -> bytes:
    """`frames` as native pixel data laid out like the source's (planar configuration), padded to even length."""
    if frames.ndim == 4 and int(ds.get("PlanarConfiguration", 0)) == 1:
        frames = frames.transpose(0, 3, 1, 2)
    data = frames.astype(frames.dtype.newbyteorder("<" if little else ">"), copy=False).tobytes()
    return data + b"\0" if len(data) % 2 else data


def _set_native(dataset: Dataset, frames: np.ndarray[Any, Any], ds: Dataset, little: bool = True) -> None:
    """Put `frames` into `dataset` as native pixel data in the given byte order."""
    dataset.PixelData = _native_bytes(frames, ds, little)
    dataset["PixelData"].VR = "OB" if int(ds.BitsAllocated) == 8 else "OW"


def _encode(dataset: Dataset, frames: np.ndarray[Any, Any], syntax: UID, photometric: str, ds: Dataset) -> str:
    """Compress `frames` (in `photometric`) into `dataset` in `syntax` when lossless and encodable; else write
    them native. Says which."""
    arr = frames if frames.shape[0] > 1 else frames[0]
    if syntax in _REENCODE:
        # JPEG 2000's YBR_RCT/YBR_ICT name the encoder's own colour transform of RGB input: kept.
        if str(ds.PhotometricInterpretation) not in ("YBR_RCT", "YBR_ICT"):
            dataset.PhotometricInterpretation = photometric
        try:
            dataset.compress(syntax, arr, generate_instance_uid=False)
            return f"rewritten, re-encoded {syntax.name}"
        except Exception:  # no encoder plugin for this syntax: written native below
            pass
    for tag in (0x7FE00010, 0x00280006):
        if tag in dataset:
            del dataset[tag]
    dataset.PhotometricInterpretation = photometric  # as decoded (RGB from a YBR JPEG)
    if frames.ndim == 4:
        dataset.PlanarConfiguration = 0
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    _set_native(dataset, frames, dataset)
    return f"rewritten explicit VR little endian (was {syntax.name})"


def _writer(dataset: Dataset, header: Header) -> Callable[[BinaryIO], PixelSpan | None]:
    """Write `dataset` whole (its pixel data included); return where the pixel data lies, for the residual check."""
    def write(out: BinaryIO) -> PixelSpan | None:
        buffer = io.BytesIO()
        write_instance(dataset, header, Path(), buffer, frozenset())
        data = buffer.getvalue()
        element = DicomBytesIO()
        element.is_implicit_VR, element.is_little_endian = header.implicit_vr, header.little_endian
        write_data_element(element, dataset["PixelData"])
        pixels = element.getvalue()
        out.write(data)
        out.flush()
        # Pixel data is the last element at full (signatures and padding are removed); else the whole file is
        # searched, which can only hold back more.
        return PixelSpan(PIXEL_DATA, len(data) - len(pixels), len(data)) if data.endswith(pixels) else None
    return write


def _mark(dataset: Dataset, changes: list[Change]) -> None:
    """The marks of a file whose pixels were read and proven free of PHI text."""
    dataset.BurnedInAnnotation = "NO"
    dataset.PatientIdentityRemoved = "YES"
    items = [item for item in dataset.get("DeidentificationMethodCodeSequence", [])
             if str(item.get("CodeValue", "")) != CLEAN_PIXEL_CODE[0]]
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = CLEAN_PIXEL_CODE[0], "DCM", CLEAN_PIXEL_CODE[1]
    items.append(item)
    dataset.DeidentificationMethodCodeSequence = Sequence(sorted(items, key=lambda i: str(i.CodeValue)))
    changes += [Change("(0028,0301)", "BurnedInAnnotation", "set NO: pixels cleaned"),
                Change("(0012,0062)", "PatientIdentityRemoved", "set YES: pixels cleaned"),
                Change("(0012,0064)", "DeidentificationMethodCodeSequence", "added 113101")]
