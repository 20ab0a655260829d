"""Reading text in images: RapidOCR (PP-OCR models shipped in its wheel, run by onnxruntime; no network).

An optional dependency (`pip install 'neuroanon[ocr]'`). The engine is loaded once per process, on first use,
with one thread per inference so that worker processes share the cores instead of fighting over them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

INSTALL_HINT = "--clean-pixels needs the ocr extra: pip install 'neuroanon[ocr]' (rapidocr, onnxruntime)"
MIN_CHARACTERS = 2  # a lone letter ("L", "R") is a label, and one-character reads are mostly noise: such a box
# is PHI only joined with the boxes beside it (`joined`)
# On text-free noisy images the detector may return one box over the whole image: a box taller than this part of
# the image is dropped unless it is shaped like a line of text (wider than tall, or for turned text taller than
# wide), as large print is.
MAX_HEIGHT_FRACTION = 1 / 8
MIN_LINE_ASPECT = 1.2


@dataclass(frozen=True)
class TextBox:
    """A line of text read in an image: its bounding rectangle in pixels (x0, y0 inclusive; x1, y1 exclusive)."""

    x0: int
    y0: int
    x1: int
    y1: int
    text: str
    score: float = 1.0  # the recogniser's confidence in `text`, 0 to 1

    @property
    def sure(self) -> bool:
        """Read with the confidence labels and measurements are read with: the text says what it is."""
        return self.score >= UNSURE

    @property
    def unsure(self) -> bool:
        """A line of a few characters the recogniser read with little confidence: it may say anything, a name
        among others (8-pixel text on noise read "GJATO PIEL FA/E1122" at 0.58 for a name and an ID, and
        released: found from outside)."""
        return not self.sure and characters(self) >= UNSURE_CHARACTERS

    @property
    def position(self) -> dict[str, int]:
        """Where the box is, without its text (what a report may say)."""
        return {"x": self.x0, "y": self.y0, "width": self.x1 - self.x0, "height": self.y1 - self.y0}


def require() -> None:
    """Raise a UsageError when the OCR engine cannot be loaded."""
    _engine()


def read(image: np.ndarray[Any, Any], small_print: bool = False) -> list[TextBox]:
    """The text lines in `image` (8-bit, rows x columns, grey or RGB) that pass the sanity filters.

    The detector scales an image to TILE pixels on its shorter side, then to MAX_SIDE at most on its longer one,
    and small print on a large or long image shrinks below what it finds (16-pixel text on a 1400-pixel
    radiograph, 11-pixel text on a 4000 x 200 strip): an image scaled by less than MIN_SCALE is also read in tiles
    of at most TILE pixels a side, overlapping by a quarter, each at its own scale. With `small_print`, an image
    that makes at most SMALL_PRINT_TILES tiles at twice its size is also read so (`_read_doubled`)."""
    rows, cols = image.shape[:2]
    found = _read(image)
    if min(TILE / min(rows, cols), MAX_SIDE / max(rows, cols)) < MIN_SCALE:
        found += _read_tiles(image)
    if small_print:
        found += _read_doubled(image)
    return found + _read_larger(image, [box for box in found if box.y1 - box.y0 < SMALL_LINE])


def _read_tiles(image: np.ndarray[Any, Any], scale: int = 1) -> list[TextBox]:
    """`image` read in tiles of at most TILE pixels a side, overlapping by a quarter; the boxes where they lie in
    the image `scale` times smaller."""
    rows, cols = image.shape[:2]
    high, wide = min(rows, TILE), min(cols, TILE)
    found = []
    for y in _starts(rows, high):
        for x in _starts(cols, wide):
            found += [TextBox((b.x0 + x) // scale, (b.y0 + y) // scale, -(-(b.x1 + x) // scale),
                              -(-(b.y1 + y) // scale), b.text, b.score)
                      for b in _read(image[y : y + high, x : x + wide])]
    return found


def _read_doubled(image: np.ndarray[Any, Any]) -> list[TextBox]:
    """`image` read at twice its size (cubic), in tiles at their own scale: 8-pixel text in thin strokes on a
    noisy ultrasound image was not found at the detector's scale of it (1.5: found from outside, in 9 of 16 such
    640 x 480 images at 2026-12-06; on the speckle of 960 x 720 ones, in about half), and was in each at twice.
    None for an image of more than SMALL_PRINT_TILES such tiles: each costs a reading (about 0.25 s)."""
    import cv2

    rows, cols = image.shape[:2]
    if len(_starts(2 * rows, min(2 * rows, TILE))) * len(_starts(2 * cols, min(2 * cols, TILE))) > SMALL_PRINT_TILES:
        return []
    return _read_tiles(cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC), scale=2)


SMALL_PRINT_TILES = 12  # (a 1024 x 768 frame makes 12, an 800 x 600 one 6)


UNSURE, UNSURE_CHARACTERS = 0.9, 3  # (labels and measurements were read at 0.92 and more, misread 8-pixel text at
# 0.5 to 0.88)
SMALL_LINE = 16  # a line's box fewer pixels high is read again, `LARGER` times larger
LARGER = 3


def _read_larger(image: np.ndarray[Any, Any], boxes: list[TextBox]) -> list[TextBox]:
    """The lines of `boxes` (small print) read again from the image scaled `LARGER` times (cubic): the recogniser
    misreads a line a few pixels high ("OXR RTH" for "QX771234 QUAXWORTH", 8-pixel text: found from outside). A
    box each whose second reading differs from the first, in the same place (the first stays: either may be the
    right one)."""
    import cv2
    import numpy as np

    if not boxes:
        return []
    rows, cols = image.shape[:2]
    crops = []
    for box in boxes:
        margin = max(2, (box.y1 - box.y0) // 4)
        crop = image[max(0, box.y0 - margin):min(rows, box.y1 + margin),
                     max(0, box.x0 - margin):min(cols, box.x1 + margin)]
        crop = cv2.resize(crop, None, fx=LARGER, fy=LARGER, interpolation=cv2.INTER_CUBIC)
        crops.append(np.ascontiguousarray(crop if crop.ndim == 3 else np.repeat(crop[:, :, None], 3, axis=2),
                                          dtype=np.uint8))
    read = _engine().recognize_txt(crops)
    texts, scores = read.txts or (), read.scores or ()
    return [TextBox(box.x0, box.y0, box.x1, box.y1, str(text), float(score))
            for box, text, score in zip(boxes, texts, scores, strict=False)
            if str(text).strip() and str(text) != box.text]


TILE, MAX_SIDE = 736, 2000  # the detector's scale (set in `_engine`: Det.limit_side_len with limit_type min,
# Global.max_side_len)
MIN_SCALE = 0.7  # scaled by less, small print is lost (16-pixel text read at 0.72, not at 0.53): read in tiles


def _starts(size: int, tile: int) -> tuple[int, ...]:
    """Where tiles of `tile` pixels start along `size` pixels, overlapping by a quarter, the last at the end."""
    return (*range(0, size - tile, tile - tile // 4), size - tile)


def _read(image: np.ndarray[Any, Any]) -> list[TextBox]:
    import numpy as np

    rgb = image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
    result = _engine()(np.ascontiguousarray(rgb, dtype=np.uint8))
    boxes = getattr(result, "boxes", None)
    texts = getattr(result, "txts", None)
    scores = getattr(result, "scores", None)
    if boxes is None or texts is None or scores is None:
        return []
    rows, cols = image.shape[:2]
    found = []
    for quad, text, score in zip(boxes, texts, scores, strict=True):
        xs, ys = np.asarray(quad)[:, 0], np.asarray(quad)[:, 1]
        box = TextBox(max(0, int(np.floor(xs.min()))), max(0, int(np.floor(ys.min()))),
                      min(cols, int(np.ceil(xs.max())) + 1), min(rows, int(np.ceil(ys.max())) + 1), str(text),
                      float(score))
        if _plausible(box, rows):
            found.append(box)
    return found


def joined(boxes: list[TextBox]) -> list[TextBox]:
    """Text the reader split, each as one box around its parts: the boxes of one line run together (letters
    spaced apart are read a box each: "Q U A X" as four), and a line run on into the line below it (a value
    wrapped in a narrow field: "QUAX-" over "WORTH"). Lines turned on end are left out: the gaps allowed are
    measured in heights, a turned line's height is its length (found from outside: four turned lines side by
    side were joined, and the whole frame was redacted)."""
    lines = _lines([box for box in boxes if characters(box) <= 1 or box.x1 - box.x0 >= box.y1 - box.y0])
    found = [line for line, parts in lines if parts > 1]
    for upper, _ in lines:
        for lower, _ in lines:
            height = upper.y1 - upper.y0
            below = lower is not upper and upper.y0 + height / 2 < lower.y0 <= upper.y1 + height
            aligned = (lower.x0 < upper.x1 and upper.x0 < lower.x1) or abs(lower.x0 - upper.x0) <= 2 * height
            if below and aligned:
                found.append(TextBox(min(upper.x0, lower.x0), upper.y0, max(upper.x1, lower.x1), lower.y1,
                                     upper.text.rstrip("-") + lower.text))
    return found


def _lines(boxes: list[TextBox]) -> list[tuple[TextBox, int]]:
    """The boxes of each line (beside one another, the gap between them at most three heights) as one box, and
    how many boxes it joins. Its text: the boxes' texts, single letters run together ("QUAX"), words apart."""
    lines: list[list[TextBox]] = []
    for box in sorted(boxes, key=lambda b: (b.x0, b.y0)):
        for line in lines:
            last, height = line[-1], max(line[-1].y1 - line[-1].y0, box.y1 - box.y0)
            overlap = min(last.y1, box.y1) - max(last.y0, box.y0)
            if overlap >= height / 2 and box.x0 - last.x1 <= 3 * height:
                line.append(box)
                break
        else:
            lines.append([box])
    joined = []
    for line in lines:
        text = line[0].text
        for before, box in zip(line, line[1:], strict=False):
            text += ("" if characters(before) == characters(box) == 1 else " ") + box.text
        joined.append((TextBox(min(b.x0 for b in line), min(b.y0 for b in line), max(b.x1 for b in line),
                               max(b.y1 for b in line), text), len(line)))
    return joined


def characters(box: TextBox) -> int:
    return sum(1 for c in box.text if not c.isspace())


def _plausible(box: TextBox, rows: int) -> bool:
    """A box of text: not empty, and a line (across or, as rotated text runs, down) unless it is small."""
    height, width = box.y1 - box.y0, box.x1 - box.x0
    line_shaped = (height <= rows * MAX_HEIGHT_FRACTION or width >= MIN_LINE_ASPECT * height
                   or height >= MIN_LINE_ASPECT * width)
    return height > 0 and width > 0 and line_shaped and characters(box) >= 1


@lru_cache(maxsize=1)
def _engine() -> Any:
    try:
        import rapidocr
        from rapidocr import RapidOCR
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    models = Path(rapidocr.__file__).parent / "models"
    detection, recognition = models / "PP-OCRv6_det_small.onnx", models / "PP-OCRv6_rec_small.onnx"
    classifier = models / "ch_ppocr_mobile_v2.0_cls_mobile.onnx"
    if not (detection.is_file() and recognition.is_file() and classifier.is_file()):
        # Other versions fetch models at first use; nothing may be downloaded at run time.
        raise UsageError(f"{INSTALL_HINT}: this rapidocr version does not ship its models")
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    return RapidOCR(params={
        # Text turned half a turn is read turned back (the recogniser reads a line standing on end turned a
        # quarter turn: with this, either way up); the classifier ships in the wheel.
        "Global.use_cls": True,
        "Global.log_level": "error",
        "Global.max_side_len": MAX_SIDE,
        "Det.limit_side_len": TILE,
        "Det.limit_type": "min",
        "Cls.model_path": str(classifier),
        "Det.model_path": str(detection),
        "Rec.model_path": str(recognition),
        "EngineConfig.onnxruntime.intra_op_num_threads": 1,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    })
