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
MIN_CHARACTERS = 2  # a lone letter ("L", "R") is a label, and one-character reads are mostly noise
# On text-free noisy images the detector may return one box over the whole image: a box taller than this part of
# the image is dropped unless it is shaped like a line of text (wider than tall), as large print is.
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

    @property
    def position(self) -> dict[str, int]:
        """Where the box is, without its text (what a report may say)."""
        return {"x": self.x0, "y": self.y0, "width": self.x1 - self.x0, "height": self.y1 - self.y0}


def require() -> None:
    """Raise a UsageError when the OCR engine cannot be loaded."""
    _engine()


def read(image: np.ndarray[Any, Any]) -> list[TextBox]:
    """The text lines in `image` (8-bit, rows x columns, grey or RGB) that pass the sanity filters."""
    import numpy as np

    rgb = image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
    result = _engine()(np.ascontiguousarray(rgb, dtype=np.uint8))
    boxes = getattr(result, "boxes", None)
    texts = getattr(result, "txts", None)
    if boxes is None or texts is None:
        return []
    rows, cols = image.shape[:2]
    found = []
    for quad, text in zip(boxes, texts, strict=True):
        xs, ys = np.asarray(quad)[:, 0], np.asarray(quad)[:, 1]
        box = TextBox(max(0, int(np.floor(xs.min()))), max(0, int(np.floor(ys.min()))),
                      min(cols, int(np.ceil(xs.max())) + 1), min(rows, int(np.ceil(ys.max())) + 1), str(text))
        if _plausible(box, rows):
            found.append(box)
    return found


def _plausible(box: TextBox, rows: int) -> bool:
    height, width = box.y1 - box.y0, box.x1 - box.x0
    characters = sum(1 for c in box.text if not c.isspace())
    line_shaped = height <= rows * MAX_HEIGHT_FRACTION or width >= MIN_LINE_ASPECT * height
    return height > 0 and width > 0 and line_shaped and characters >= MIN_CHARACTERS


@lru_cache(maxsize=1)
def _engine() -> Any:
    try:
        import rapidocr
        from rapidocr import RapidOCR
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    models = Path(rapidocr.__file__).parent / "models"
    detection, recognition = models / "PP-OCRv6_det_small.onnx", models / "PP-OCRv6_rec_small.onnx"
    if not (detection.is_file() and recognition.is_file()):
        # Other versions fetch models at first use; nothing may be downloaded at run time.
        raise UsageError(f"{INSTALL_HINT}: this rapidocr version does not ship its models")
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    return RapidOCR(params={
        "Global.use_cls": False,  # text in medical images is upright
        "Global.log_level": "error",
        "Det.model_path": str(detection),
        "Rec.model_path": str(recognition),
        "EngineConfig.onnxruntime.intra_op_num_threads": 1,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    })
