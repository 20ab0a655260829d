#!/usr/bin/env python3
"""Benchmark neuroanon against `cp -r` (the disk's limit) and the peers a user would pick instead, in one run.

Makes a corpus full of fake PHI (single-frame 256x256 MR files and one 400-frame 512x512 multi-frame MR file),
then times each tool on it with a warm page cache and prints wall time, CPU time (user + system, all processes),
ratio to cp, files/s, MB/s and peak RSS. Peers are run when installed (pip install dicognito deid
dicom-anonymizer dcmanon; NiDB's own method needs dcmtk's dcmodify), each with its defaults.

    .venv/bin/python scripts/benchmark.py [--files 3000] [--frames 400] [--repeat 3] [--workdir DIR] [--json FILE]

The tools run in --repeat alternating rounds (a tool whose first run takes over 30 s runs in the first round
only), so a change in the machine's load touches every tool alike; each tool's median run is reported.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from neuroanon.sample import make_dataset, make_many

# Runs a command and prints its exit code, the peak RSS (KiB) of its largest process (all a child's rusage holds)
# and the CPU seconds (user + system) of it and every process it waited for.
PROBE = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
         "stderr=subprocess.DEVNULL); u = resource.getrusage(resource.RUSAGE_CHILDREN); "
         "print(r.returncode, u.ru_maxrss, u.ru_utime + u.ru_stime)")

# NiDB's own method (its code calls dcmtk's dcmodify on a copy, in place, with the spec's tags): one dcmodify
# process for a whole batch of files, after `cp -r`. The values are NiDB's dummies.
NIDB_ANONYMIZE = ["(0008,0090)=Anon", "(0008,1050)=Anon", "(0008,1070)=Anon", "(0010,0010)=Anon",
                  "(0010,0030)=10000101"]
NIDB_FULL = [*NIDB_ANONYMIZE, "(0008,0080)=Anon", "(0008,0081)=Anon", "(0008,1010)=Anon", "(0008,1030)=Anon",
             "(0008,0020)=10000101", "(0008,0021)=10000101", "(0008,0022)=10000101", "(0008,0023)=10000101",
             "(0008,0030)=000000.000000", "(0008,0031)=000000.000000", "(0008,0032)=000000.000000",
             "(0008,0033)=000000.000000", "(0010,0020)=Anon", "(0010,1000)=Anon"]


def _nidb(tags: list[str]) -> list[str]:
    modify = " ".join(f"-ma '{t}'" for t in tags)
    return ["sh", "-c", f'cp -r "$0" "$1" && find "$1" -type f -exec dcmodify -nb -imt -ie {modify} {{}} +',
            "IN", "OUT"]

DCMANON = """
import sys, pathlib
from dcmanon import Anonymizer
source, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
anonymizer = Anonymizer()
for path in sorted(p for p in source.rglob('*') if p.is_file()):
    target = out / path.relative_to(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(anonymizer.anonymize(str(path)))
"""

DEID = """
import sys, pathlib
from deid.dicom import get_files, replace_identifiers
source, out = sys.argv[1], sys.argv[2]
pathlib.Path(out).mkdir(parents=True, exist_ok=True)
replace_identifiers(dicom_files=list(get_files(source)), save=True, output_folder=out, overwrite=True)
"""


def make_corpus(root: Path, files: int, frames: int) -> int:
    """Write the corpus; return its size in bytes."""
    make_many(root, files, subject=1, rows=256, columns=256, per_folder=500)
    big = make_dataset(subject=1, series=9, rows=512, columns=512)
    big.SOPClassUID = big.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR
    big.NumberOfFrames = frames
    del big.PixelData
    for tag in [t for t in big.keys() if t > 0x7FE00010]:
        del big[tag]
    path = root / "enhanced" / "MF0001.dcm"
    path.parent.mkdir()
    big.save_as(path, enforce_file_format=True)
    frame = bytes(range(256)) * (512 * 512 * 2 // 256)
    with open(path, "ab") as f:
        f.write(struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OW", 0, frames * len(frame)))
        for _ in range(frames):
            f.write(frame)
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def tools(python: str, workers: int, key: Path) -> dict[str, list[str] | None]:
    """The command of each contender (None: not installed); IN and OUT are filled in per run."""
    neuroanon = [python, "-m", "neuroanon.cli", "anonymize", "IN", "-o", "OUT", "-q", "--workers", str(workers),
                 "--key-file", str(key)]
    have = {name: importlib.util.find_spec(name) is not None for name in ("dicognito", "deid", "dcmanon",
                                                                           "dicomanonymizer")}
    return {
        "cp -r": ["cp", "-r", "IN", "OUT"],
        "neuroanon original": [*neuroanon, "--level", "original"],
        "neuroanon anonymize": [*neuroanon, "--level", "anonymize"],
        "neuroanon full": [*neuroanon, "--level", "full"],
        "dcmanon (Rust)": [python, "-c", DCMANON, "IN", "OUT"] if have["dcmanon"] else None,
        "dicognito": [python, "-m", "dicognito", "-o", "OUT", "IN"] if have["dicognito"] else None,
        # dicom-anonymizer takes one flat folder at a time and needs its output folder to exist
        "dicom-anonymizer": ["sh", "-c", 'for d in "$1"/*/; do n=$(basename "$d"); mkdir -p "$2/$n"; '
                             '"$0" "$d" "$2/$n" || exit 1; done', str(Path(python).parent / "dicom-anonymizer"),
                             "IN", "OUT"] if have["dicomanonymizer"] else None,
        "deid": [python, "-c", DEID, "IN", "OUT"] if have["deid"] else None,
        "NiDB anonymize (dcmodify)": _nidb(NIDB_ANONYMIZE) if shutil.which("dcmodify") else None,
        "NiDB full (dcmodify)": _nidb(NIDB_FULL) if shutil.which("dcmodify") else None,
    }


SLOW = 30.0  # seconds: a tool slower than this is run once, not --repeat times


def clean_pixels(work: Path, frames: int, key: Path, workers: int) -> dict[str, object]:
    """Time `full --clean-pixels` on one multi-frame 512x512 ultrasound with fake PHI on every other frame; the
    report gives the seconds spent reading and redacting pixels, per frame read (frames with text are read twice)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    ds = make_dataset(subject=1, series=8, rows=512, columns=512)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"  # US multi-frame
    ds.Modality, ds.NumberOfFrames = "US", frames
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    for tag in [t for t in ds.keys() if t >= 0x60000000]:
        del ds[tag]
    rng = np.random.default_rng(0)
    font = ImageFont.load_default(size=16)
    stack = []
    for index in range(frames):
        image = Image.fromarray(rng.rayleigh(40, (512, 512)).clip(0, 255).astype(np.uint8))
        if index % 2 == 0:
            ImageDraw.Draw(image).text((10, 10), "FAKEPERSON^ALEX  ID 4711081501", fill=255, font=font)
        ImageDraw.Draw(image).text((420, 480), "4.2 cm", fill=255, font=font)
        stack.append(np.asarray(image))
    ds.PixelData = np.stack(stack).tobytes()
    ds["PixelData"].VR = "OB"
    corpus = work / "pixels"
    corpus.mkdir(parents=True, exist_ok=True)
    ds.save_as(corpus / "US0001.dcm", enforce_file_format=True)
    report, out = work / "pixels.jsonl", work / "pixels-out"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "neuroanon.cli", "anonymize", str(corpus), "-o", str(out), "-q",
                    "--level", "full", "--clean-pixels", "--key-file", str(key), "--workers", str(workers),
                    "--report", str(report)], check=False)
    seconds = time.perf_counter() - start
    record = next(json.loads(line) for line in report.read_text().splitlines() if '"input"' in line)
    shutil.rmtree(out, ignore_errors=True)
    return {"frames": frames, "wall_seconds": round(seconds, 2), "status": record["status"], **record["pixels"]}


def _timed(argv: list[str], work: Path, corpus: Path) -> tuple[float, float, int, int, int]:
    """One run into an empty output, with a warm page cache and nothing left to write back from earlier runs.

    Returns (wall seconds, CPU seconds, peak RSS KiB, exit code, files written)."""
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    (work / ".out.neuroanon-journal").unlink(missing_ok=True)
    warm(corpus)
    os.sync()  # the previous run's writes go to disk now, not during this run
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    code, rss, cpu = done.stdout.split()
    written = sum(1 for p in out.rglob("*") if p.is_file()) if out.exists() else 0
    shutil.rmtree(out, ignore_errors=True)
    return seconds, float(cpu), int(rss), int(code), written


def warm(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                while f.read(1 << 22):
                    pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; the median is reported")
    parser.add_argument("--clean-pixels-frames", type=int, default=0,
                        help="also time --clean-pixels on this many 512x512 ultrasound frames (needs the ocr extra)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="neuroanon-bench-"))
    corpus = work / "corpus"
    if not corpus.exists():
        size = make_corpus(corpus, args.files, args.frames)
    else:
        size = sum(p.stat().st_size for p in corpus.rglob("*") if p.is_file())
    count = args.files + 1
    key = work / "key"
    key.write_text("42" * 32)
    print(f"corpus: {count} files, {size / 1e6:.0f} MB; machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; neuroanon workers: {args.workers}\n")
    commands: dict[str, list[str]] = {}
    for name, command in tools(sys.executable, args.workers, key).items():
        if command is None:
            print(f"{name}: not installed, skipped")
        else:
            commands[name] = [str(corpus) if a == "IN" else str(work / "out") if a == "OUT" else a for a in command]
    runs: dict[str, list[tuple[float, float, int, int, int]]] = {name: [] for name in commands}
    for round_ in range(args.repeat):
        for name, argv in commands.items():
            if round_ and runs[name][0][0] > SLOW:
                continue  # far from any target: one run tells
            runs[name].append(_timed(argv, work, corpus))
    rows = []
    cp_seconds = None
    for name, done in runs.items():
        seconds, cpu, rss, code, written = sorted(done)[len(done) // 2]  # the median run by wall time
        cpu = sorted(r[1] for r in done)[len(done) // 2]  # and the median CPU time
        cp_seconds = cp_seconds or seconds
        rows.append({"tool": name, "seconds": round(seconds, 2), "x_cp": round(seconds / cp_seconds, 2),
                     "cpu_s": round(cpu, 2), "files_per_s": round(count / seconds, 1),
                     "mb_per_s": round(size / 1e6 / seconds, 1), "peak_rss_mb": round(rss / 1024), "exit": code,
                     "files_out": written, "runs": [[round(r[0], 2), round(r[1], 2)] for r in done]})
    print("| tool | wall s | × cp | CPU s | files/s | MB/s | peak RSS MB | files out | exit |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['tool']} | {r['seconds']} | {r['x_cp']} | {r['cpu_s']} | {r['files_per_s']} | "
              f"{r['mb_per_s']} | {r['peak_rss_mb']} | {r['files_out']} | {r['exit']} |")
    if args.clean_pixels_frames:
        pixels = clean_pixels(work, args.clean_pixels_frames, key, args.workers)
        print(f"\nclean-pixels: {pixels['seconds_per_frame']} s per frame read ({pixels['frames_read']} reads of "
              f"{pixels['frames']} frames, {len(pixels['boxes'])} boxes, {pixels['status']}); "
              f"{pixels['wall_seconds']} s wall with start-up")
        rows.append({"tool": "neuroanon full --clean-pixels", **pixels, "boxes": len(pixels["boxes"])})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
