"""Review images for Clean Pixel Data: a PNG per frame with its boxes drawn, and one HTML page listing them.

Kept in the quarantine folder (`pixel-review/`), never in the release: a held-back frame may still show text.
Each file's images sit in a folder named by a hash of its output name; the page is rebuilt from those folders at
the end of a run, so it lists every file that a run, or an earlier interrupted one, cleaned or held back.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .pixels import Box, Cleaning

FOLDER = "pixel-review"
PAGE = "index.html"
if TYPE_CHECKING:
    import numpy as np

REDACTED, STILL_READ = (255, 0, 0), (255, 255, 0)


def save(cleaning: Cleaning, output: str, held: str | None, quarantine: Path) -> None:
    """Write the review images and the entry of one redacted or held-back file (a file held because its pixels
    could not be decoded has an entry and no image)."""
    if not cleaning.review and held is None:
        return
    from PIL import Image, ImageDraw

    folder = quarantine / FOLDER / hashlib.sha256(output.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index, frame in enumerate(cleaning.review):
        image = Image.fromarray(_rgb(frame))
        draw = ImageDraw.Draw(image)
        for boxes, colour in ((cleaning.boxes, REDACTED), (cleaning.still_read, STILL_READ)):
            for box in _of_frame(boxes, index):
                draw.rectangle((box.x0, box.y0, box.x1 - 1, box.y1 - 1), outline=colour, width=1)
        name = f"frame-{index + 1:04d}.png"
        _atomic(folder / name, lambda fp, im=image: im.save(fp, format="PNG"))
        names.append(name)
    entry = {"output": output, "held": held, "frames": names, "boxes": len(cleaning.boxes),
             "still_read": len(cleaning.still_read)}
    _atomic(folder / "entry.json", lambda fp: fp.write(json.dumps(entry).encode()))


def write_page(quarantine: Path | None) -> Path | None:
    """(Re)build the review page from the entries under `quarantine`; None when there is nothing to review."""
    if quarantine is None or not (quarantine / FOLDER).is_dir():
        return None
    root = quarantine / FOLDER
    rows = []
    for entry_file in sorted(root.glob("*/entry.json")):
        entry = json.loads(entry_file.read_text())
        state = f"held back: {entry['held']}" if entry["held"] else "released, redacted"
        images = "".join(
            f'<figure><img src="{html.escape(entry_file.parent.name)}/{html.escape(n)}" alt="frame {i + 1}">'
            f"<figcaption>frame {i + 1}</figcaption></figure>" for i, n in enumerate(entry["frames"]))
        rows.append(f"<section><h2>{html.escape(entry['output'])}</h2><p>{html.escape(state)}; "
                    f"{entry['boxes']} box(es) redacted (red), {entry['still_read']} still read (yellow)</p>"
                    f"{images}</section>")
    page = ("<!doctype html><html><head><meta charset=\"utf-8\"><title>neuroanon: pixel review</title>"
            "<style>figure{display:inline-block;margin:4px}img{max-width:512px;image-rendering:pixelated}h2{font-size:1em;word-break:break-all}</style>"
            f"</head><body><h1>Clean Pixel Data: {len(rows)} file(s) to review</h1><p id=\"status\"></p>"
            f"{''.join(rows)}<script>{_COUNT_IMAGES}</script></body></html>")
    _atomic(root / PAGE, lambda fp: fp.write(page.encode("utf-8")))
    return root / PAGE


# Says on the page (and in the DOM, for tests) how many images loaded: a missing one is seen, not skipped.
_COUNT_IMAGES = (
    "addEventListener('load',()=>{const i=[...document.images],ok=i.filter(e=>e.complete&&e.naturalWidth>0).length;"
    "document.body.dataset.loaded=ok;document.body.dataset.broken=i.length-ok;"
    "document.getElementById('status').textContent=ok+' image(s) loaded, '+(i.length-ok)+' missing';});"
)


def _of_frame(boxes: list[Box], index: int) -> list[Box]:
    return [b for b in boxes if b.frame == index]


def _rgb(frame: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    import numpy as np

    return frame if frame.ndim == 3 else np.repeat(frame[:, :, None], 3, axis=2)


def _atomic(path: Path, fill: Any) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(handle, "wb") as fp:
            fill(fp)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
