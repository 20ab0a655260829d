#!/usr/bin/env python3
"""Benchmark neuroanon against `cp -r` (the disk's limit), the peers a user would pick instead and dcmtk's storescp.

Every corpus is made by the script, full of fake PHI, and read with a warm page cache. Three measurements:

- The comparison (the default): 256x256 MR files and one 400-frame 512x512 multi-frame MR file; `cp -r`,
  neuroanon at each level and every peer that is installed (pip install dicognito deid dicom-anonymizer dcmanon;
  NiDB's own method needs dcmtk's dcmodify), each with its defaults. Wall time, CPU time (user + system of every
  process), ratio to cp, files/s, MB/s and peak RSS.
- `--scaling`: how the cost grows. `cp -r` and neuroanon `anonymize` and `full` on corpora of several file counts
  of 256x256 files (`--counts`) and of several file sizes at one count (`--sizes`: square frames of that side, `:N`
  for N frames a file; `--size-files`). The same figures plus wall and CPU ms per file, a least-squares start-up
  and per-file cost over the counts, and a plot drawn by the script (`--svg`, default docs/scaling.svg).
- `--node`: the DICOM node's instances per second. `neuroanon serve` at `anonymize` and `full` and, as the
  no-anonymization baseline, dcmtk's `storescp`, each started on a free loopback port into an empty folder; dcmtk's
  `storescu` sends `--instances` 256x256 instances in one association and, separately, split over
  `--associations` concurrent ones. The clock runs from the first sender's start until every instance is stored.

`--scaling` and `--node` replace the comparison; give both to run both. `--quick` shrinks every corpus and runs one
round, a smoke test whose figures mean nothing (its plot goes to the temporary folder, not docs/).

    .venv/bin/python scripts/benchmark.py [--files 3000] [--frames 400] [--workers 2] [--repeat 3] [--json FILE]
    .venv/bin/python scripts/benchmark.py --scaling [--counts 250 1000 4000] [--sizes 64 256 512 512:8]
    .venv/bin/python scripts/benchmark.py --node [--instances 1000] [--associations 4]

The tools run in --repeat alternating rounds (in the comparison, a tool whose first run takes over 30 s runs in
the first round only), so a change in the machine's load touches every tool alike; each tool's median is reported.
Every run writes into a new folder and nothing is removed until the benchmark ends (see `fresh`): the disk needs
room for every run's output (about 16 GB for the comparison), checked before the first run.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import itertools
import json
import math
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from pydicom.uid import UID

import neuroanon
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


DROP_CACHES = Path("/proc/sys/vm/drop_caches")
CAN_DROP_CACHES = os.access(DROP_CACHES, os.W_OK)
_RUNS = itertools.count()  # numbers the folders of `fresh`
SLOW = 30.0  # seconds: in the comparison, a tool slower than this is run once, not --repeat times
COUNT_SIDE = 256  # the frame side of the --scaling corpora that vary in file count
SCALING_TOOLS = ("cp -r", "neuroanon anonymize", "neuroanon full")
LOOPBACK = "127.0.0.1"
NODE_AET = "BENCH"
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}  # else dcmtk waits for delayed TCP acknowledgements
STORE_TIMEOUT = 120.0  # seconds a receiver gets to store what its senders were told was stored

# --quick: the smallest corpora that still exercise every measurement
QUICK = {"files": 40, "frames": 4, "repeat": 1, "counts": [20, 60], "sizes": [(16, 1), (64, 1), (64, 4)],
         "size_files": 20, "instances": 24, "associations": 2,
         "svg": Path(tempfile.gettempdir()) / "neuroanon-scaling-quick.svg"}


class Run(NamedTuple):
    """One timed run of a command over a corpus."""

    seconds: float
    cpu: float
    rss_kib: int
    code: int
    written: int


class Point(NamedTuple):
    """One --scaling corpus: `files` files of `frames` square frames of `side` pixels."""

    files: int
    side: int
    frames: int

    @property
    def label(self) -> str:
        frames = f" × {self.frames} frames" if self.frames > 1 else ""
        return f"{self.files} files of {self.side}×{self.side}{frames}"


# 128 little endian words of 12 bits, as the header's BitsStored says (a bit above them holds a file back at full)
_WORDS = bytes(b if i % 2 == 0 else b % 16 for i, b in enumerate(range(256)))


def make_multiframe(path: Path, frames: int, side: int, instance: int = 0) -> None:
    """Write one Enhanced MR file of `frames` 16-bit frames; the pixel data is appended raw, never held whole."""
    big = make_dataset(subject=1, series=9, instance=instance, rows=side, columns=side)
    big.SOPClassUID = big.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.4.1")
    big.NumberOfFrames = frames
    del big.PixelData
    for tag in [t for t in big.keys() if t > 0x7FE00010]:
        del big[tag]
    path.parent.mkdir(parents=True, exist_ok=True)
    big.save_as(path, enforce_file_format=True)
    frame = (_WORDS * (side * side * 2 // 256 + 1))[: side * side * 2]
    with open(path, "ab") as f:
        f.write(struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OW", 0, frames * len(frame)))
        for _ in range(frames):
            f.write(frame)


def make_corpus(root: Path, files: int, frames: int) -> None:
    """The comparison's corpus: `files` 256x256 files and one multi-frame 512x512 file of `frames` frames."""
    make_many(root, files, subject=1, rows=256, columns=256, per_folder=500)
    make_multiframe(root / "enhanced" / "MF0001.dcm", frames, 512)


def make_point(root: Path, point: Point) -> None:
    """Write one --scaling corpus, 500 files a folder."""
    if point.frames == 1:
        make_many(root, point.files, subject=1, rows=point.side, columns=point.side, per_folder=500)
        return
    for i in range(point.files):
        make_multiframe(root / f"part{i // 500:03d}" / f"MF{i:05d}.dcm", point.frames, point.side, instance=i)


def tree_stats(root: Path) -> tuple[int, int]:
    """(files, bytes) under root."""
    sizes = [p.stat().st_size for p in root.rglob("*") if p.is_file()]
    return len(sizes), sum(sizes)


def settled(*corpora: Path, drop: bool) -> None:
    """Before a run: what earlier runs wrote on disk, the page cache emptied where the benchmark may (Linux, as
    root), and the corpora read into it. On this machine a page cache holding earlier runs' outputs made every
    tool's file writes cost 2-3x the kernel time (cp -r 0.35 s after a drop, 1.2 s before), by how much it held:
    so each run begins alike."""
    os.sync()
    if drop:
        DROP_CACHES.write_text("1")
    for corpus in corpora:
        warm(corpus)


def warm(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                while f.read(1 << 22):
                    pass


def median(values: Iterable[Any]) -> Any:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def tools(python: str, workers: int, key: Path) -> dict[str, list[str] | None]:
    """The command of each contender (None: not installed); IN and OUT are filled in per run."""
    neuroanon = [python, "-m", "neuroanon.cli", "anonymize", "IN", "-o", "OUT", "-q", "--workers", str(workers)]
    have = {name: importlib.util.find_spec(name) is not None for name in ("dicognito", "deid", "dcmanon",
                                                                           "dicomanonymizer")}
    return {
        "cp -r": ["cp", "-r", "IN", "OUT"],
        "neuroanon original": [*neuroanon, "--level", "original"],
        "neuroanon anonymize": [*neuroanon, "--level", "anonymize"],
        "neuroanon full": [*neuroanon, "--level", "full", "--key-file", str(key)],
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



def fill(command: list[str], **values: Path | int) -> list[str]:
    """The command with its placeholders (IN, OUT, PORT) replaced by `values`."""
    return [str(values[a]) if a in values else a for a in command]


def _timed(argv: list[str], out: Path, corpus: Path, drop: bool) -> Run:
    """One run into the new folder `out`, the disk and page cache `settled`."""
    settled(corpus, drop=drop)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    code, rss, cpu = done.stdout.split()
    written = tree_stats(out)[0] if out.exists() else 0
    return Run(seconds, float(cpu), int(rss), int(code), written)


def fresh(work: Path, name: str) -> Path:
    """A new folder's path in `work/runs`, where nothing is removed before the benchmark ends: ext4 without a
    journal (this machine's disk) passes over every inode freed in the last minute, or six minutes once the
    inode table is being written, each time it creates a file, so a run after a removal pays for it in the
    kernel (measured: up to half of `anonymize`'s CPU time, and more for the tool that creates files from two
    processes). So every run meets a disk where nothing was freed."""
    (work / "runs").mkdir(exist_ok=True)
    return work / "runs" / f"{name}-{next(_RUNS)}"


def byte_compiled() -> None:
    """neuroanon's modules byte-compiled, as an installed package's are (pip compiles them): an editable install
    where Python may not write bytecode (PYTHONDONTWRITEBYTECODE) compiles every module again at each start."""
    import neuroanon

    compileall.compile_dir(Path(neuroanon.__file__).parent, quiet=1)


def leftovers_removed(work: Path, settle: float) -> None:
    """Remove what an interrupted benchmark left in `work/runs`, write everything back and wait `settle` seconds."""
    shutil.rmtree(work / "runs", ignore_errors=True)
    os.sync()
    time.sleep(settle)


def room_for(work: Path, corpus_bytes: int, runs: int) -> None:
    """Stop, before any run, if the disk cannot keep `runs` outputs of the corpus."""
    needed, free = corpus_bytes * runs * 1.05, shutil.disk_usage(work).free
    if needed > free:
        raise SystemExit(f"benchmark: {runs} runs need {needed / 1e9:.1f} GB in {work}, {free / 1e9:.1f} GB free")


def alternate(commands: dict[str, list[str]], work: Path, corpus: Path, repeat: int, drop: bool,
              once_over: float = math.inf) -> dict[str, list[Run]]:
    """Run every command `repeat` times over corpus, in alternating rounds, each into a new folder (`fresh`); a
    command whose first run took over `once_over` seconds runs in the first round only."""
    room_for(work, tree_stats(corpus)[1], len(commands) * repeat)
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    for round_ in range(repeat):
        for i, (name, command) in enumerate(commands.items()):
            if round_ and runs[name][0].seconds > once_over:
                continue  # far from any target: one run tells
            out = fresh(work, f"out-{round_}-{i}")
            runs[name].append(_timed(fill(command, IN=corpus, OUT=out), out, corpus, drop))
    return runs


def summarize(runs: dict[str, list[Run]], files: int, size: int) -> list[dict[str, Any]]:
    """One row per tool: its median run by wall time, the median CPU time, and ratios to `cp -r`'s median."""
    cp_seconds = median(runs["cp -r"]).seconds
    rows = []
    for name, done in runs.items():
        run, cpu = median(done), median(r.cpu for r in done)
        rows.append({"tool": name, "files": files, "mb": round(size / 1e6, 1), "seconds": round(run.seconds, 2),
                     "x_cp": round(run.seconds / cp_seconds, 2), "cpu_s": round(cpu, 2),
                     "ms_per_file": round(1000 * run.seconds / files, 3),
                     "cpu_ms_per_file": round(1000 * cpu / files, 3),
                     "files_per_s": round(files / run.seconds, 1), "mb_per_s": round(size / 1e6 / run.seconds, 1),
                     "peak_rss_mb": round(run.rss_kib / 1024), "exit": run.code, "files_out": run.written,
                     "runs": [[round(r.seconds, 2), round(r.cpu, 2)] for r in done]})
    return rows


def print_table(rows: list[dict[str, Any]], columns: dict[str, str]) -> None:
    """A Markdown table of `rows`: one column per (header, key) of `columns`, the first left-aligned."""
    print("| " + " | ".join(columns) + " |")
    print("| --- |" + " ---: |" * (len(columns) - 1))
    for row in rows:
        print("| " + " | ".join(str(row[key]) for key in columns.values()) + " |")
    print()


def machine(drop: bool) -> str:
    cache = ("page cache dropped before each run" if drop else "page cache as earlier runs left it" if CAN_DROP_CACHES
             else "page cache as earlier runs left it (dropping it needs root)")
    build = "compiled" if neuroanon.compiled() else "pure Python"
    return (f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; {cache}; "
            f"neuroanon {build}")


# ---- the comparison

COMPARISON_COLUMNS = {"tool": "tool", "wall s": "seconds", "× cp": "x_cp", "CPU s": "cpu_s",
                      "files/s": "files_per_s", "MB/s": "mb_per_s", "peak RSS MB": "peak_rss_mb",
                      "files out": "files_out", "exit": "exit"}


def compare(args: argparse.Namespace, work: Path, key: Path) -> list[dict[str, Any]]:
    """Every installed tool on the comparison's corpus (kept in --workdir between runs)."""
    corpus = work / "corpus"
    if not corpus.exists():
        make_corpus(corpus, args.files, args.frames)
    files, size = tree_stats(corpus)
    print(f"corpus: {files} files, {size / 1e6:.0f} MB; {machine(args.drop)}; neuroanon workers: {args.workers}\n")
    commands: dict[str, list[str]] = {}
    for name, command in tools(sys.executable, args.workers, key).items():
        if command is None:
            print(f"{name}: not installed, skipped")
        else:
            commands[name] = command
    rows = summarize(alternate(commands, work, corpus, args.repeat, args.drop, once_over=SLOW), files, size)
    print_table(rows, COMPARISON_COLUMNS)
    if args.clean_pixels_frames:
        pixels = clean_pixels(work, args.clean_pixels_frames, key, args.workers)
        print(f"clean-pixels: {pixels['seconds_per_frame']} s per frame read ({pixels['frames_read']} reads of "
              f"{pixels['frames']} frames, {len(pixels['boxes'])} boxes, {pixels['status']}); "
              f"{pixels['wall_seconds']} s wall with start-up")
        rows.append({"tool": "neuroanon full --clean-pixels", **pixels, "boxes": len(pixels["boxes"])})
    return rows


# ---- --scaling

SCALING_COLUMNS = {"corpus": "point", "tool": "tool", "MB": "mb", "wall s": "seconds", "× cp": "x_cp",
                   "CPU s": "cpu_s", "wall ms/file": "ms_per_file", "CPU ms/file": "cpu_ms_per_file",
                   "MB/s": "mb_per_s", "peak RSS MB": "peak_rss_mb", "files out": "files_out",
                   "exit": "exit"}
COST_COLUMNS = {"tool": "tool", "start-up s": "start_s", "wall ms/file": "ms_per_file", "CPU start-up s": "cpu_start_s",
                "CPU ms/file": "cpu_ms_per_file"}


def scaling_points(args: argparse.Namespace) -> list[Point]:
    """The corpora, each once: the counts at COUNT_SIDE single-frame, then the sizes at --size-files."""
    points = [Point(n, COUNT_SIDE, 1) for n in args.counts]
    points += [Point(args.size_files, side, frames) for side, frames in args.sizes]
    return list(dict.fromkeys(points))


def scaling(args: argparse.Namespace, work: Path, key: Path) -> dict[str, list[dict[str, Any]]]:
    """`cp -r`, `anonymize` and `full` on each scaling corpus in turn (made and timed; removed at the end)."""
    print(f"scaling: {machine(args.drop)}; neuroanon workers: {args.workers}\n")
    commands = {name: command for name, command in tools(sys.executable, args.workers, key).items()
                if name in SCALING_TOOLS and command is not None}
    rows = []
    for point in scaling_points(args):
        corpus = fresh(work, "scaling")
        make_point(corpus, point)
        files, size = tree_stats(corpus)
        for row in summarize(alternate(commands, work, corpus, args.repeat, args.drop), files, size):
            rows.append({"point": point.label, "side": point.side, "frames": point.frames,
                         "mb_per_file": size / 1e6 / files, **row})
    print_table(rows, SCALING_COLUMNS)
    by_count = [r for r in rows if (r["side"], r["frames"]) == (COUNT_SIDE, 1) and r["files"] in args.counts]
    by_size = [r for r in rows if r["files"] == args.size_files and (r["side"], r["frames"]) in args.sizes]
    fitted = costs(by_count)
    if fitted:
        print("start-up and per-file cost (least squares over the file counts):\n")
        print_table(fitted, COST_COLUMNS)
    args.svg.parent.mkdir(parents=True, exist_ok=True)
    args.svg.write_text(plot(by_count, by_size, args.size_files), encoding="utf-8")
    print(f"plot: {args.svg}")
    return {"points": rows, "costs": fitted}


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """The least-squares line through points: (intercept, slope)."""
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0
    return mean_y - slope * mean_x, slope


def costs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each tool's fixed (start-up) and per-file cost: lines through its wall and CPU times by file count."""
    fitted = []
    for tool in SCALING_TOOLS:
        mine = [(r["files"], r["seconds"], r["cpu_s"]) for r in rows if r["tool"] == tool]
        if len({files for files, _, _ in mine}) < 2:
            continue
        start, per_file = fit([(files, wall) for files, wall, _ in mine])
        cpu_start, cpu_per_file = fit([(files, cpu) for files, _, cpu in mine])
        fitted.append({"tool": tool, "start_s": round(start, 2), "ms_per_file": round(1000 * per_file, 3),
                       "cpu_start_s": round(cpu_start, 2), "cpu_ms_per_file": round(1000 * cpu_per_file, 3)})
    return fitted


# ---- the plot: a small SVG, written out by hand

COLORS = {"cp -r": "#7f7f7f", "neuroanon anonymize": "#1f77b4", "neuroanon full": "#d62728"}
WIDTH, HEIGHT, PANEL_W, PANEL_H, TOP = 800, 330, 300, 200, 50


@dataclass(frozen=True)
class Axis:
    """An axis over [low, high], linear from 0 or logarithmic over whole decades, with its tick values."""

    label: str
    low: float
    high: float
    log: bool
    ticks: tuple[float, ...]

    @classmethod
    def linear(cls, label: str, values: list[float]) -> Axis:
        rough = max(max(values), 1e-9) / 5
        decade = 10 ** math.floor(math.log10(rough))
        step = decade * next(m for m in (1, 2, 5, 10) if m * decade >= rough)
        count = math.ceil(max(values) / step)
        return cls(label, 0.0, count * step, False, tuple(i * step for i in range(count + 1)))

    @classmethod
    def decades(cls, label: str, values: list[float]) -> Axis:
        low = math.floor(math.log10(min(values)))
        high = max(math.ceil(math.log10(max(values))), low + 1)
        return cls(label, 10.0**low, 10.0**high, True, tuple(10.0**e for e in range(low, high + 1)))

    def fraction(self, value: float) -> float:
        """Where value lies on the axis, 0 at low and 1 at high."""
        if self.log:
            return math.log10(value / self.low) / math.log10(self.high / self.low)
        return (value - self.low) / (self.high - self.low)


def _at(left: float, x_axis: Axis, y_axis: Axis, x: float, y: float) -> tuple[float, float]:
    return left + PANEL_W * x_axis.fraction(x), TOP + PANEL_H * (1 - y_axis.fraction(y))


def _frame(left: float, title: str, x_axis: Axis, y_axis: Axis) -> list[str]:
    """A panel's title, box, grid lines with tick labels and axis labels."""
    bottom, middle = TOP + PANEL_H, left + PANEL_W / 2
    out = [f'<text x="{middle}" y="{TOP - 14}" text-anchor="middle" font-weight="bold">{title}</text>',
           f'<rect x="{left}" y="{TOP}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#999"/>',
           f'<text x="{middle}" y="{bottom + 34}" text-anchor="middle">{x_axis.label}</text>',
           f'<text transform="translate({left - 42} {TOP + PANEL_H / 2}) rotate(-90)" '
           f'text-anchor="middle">{y_axis.label}</text>']
    for tick in x_axis.ticks:
        x, _ = _at(left, x_axis, y_axis, tick, y_axis.high)
        out += [f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{bottom}" stroke="#e5e5e5"/>',
                f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{tick:g}</text>']
    for tick in y_axis.ticks:
        _, y = _at(left, x_axis, y_axis, x_axis.high, tick)
        out += [f'<line x1="{left}" y1="{y:.1f}" x2="{left + PANEL_W}" y2="{y:.1f}" stroke="#e5e5e5"/>',
                f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>']
    return out


def _panel(left: float, title: str, rows: list[dict[str, Any]], x: str, y: str, labels: tuple[str, str],
           log: bool) -> list[str]:
    """One panel: rows[y] against rows[x], a line and dots per tool."""
    make = Axis.decades if log else Axis.linear
    x_axis, y_axis = make(labels[0], [r[x] for r in rows]), make(labels[1], [r[y] for r in rows])
    out = _frame(left, title, x_axis, y_axis)
    for tool, color in COLORS.items():
        points = sorted((r[x], r[y]) for r in rows if r["tool"] == tool)
        xy = [_at(left, x_axis, y_axis, px, py) for px, py in points]
        out.append(f'<polyline points="{" ".join(f"{px:.1f},{py:.1f}" for px, py in xy)}" fill="none" '
                   f'stroke="{color}" stroke-width="2"/>')
        out += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{color}"/>' for px, py in xy]
    return out


def plot(by_count: list[dict[str, Any]], by_size: list[dict[str, Any]], size_files: int) -> str:
    """The scaling plot: wall time by file count, and wall time a file by file size (log-log)."""
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>']
    if by_count:
        out += _panel(80, f"Wall time by file count ({COUNT_SIDE}×{COUNT_SIDE} files)", by_count, "files",
                      "seconds", ("files", "wall seconds"), log=False)
    if by_size:
        out += _panel(470, f"Wall time a file by file size ({size_files} files)", by_size, "mb_per_file",
                      "ms_per_file", ("MB a file", "wall ms a file"), log=True)
    for i, (tool, color) in enumerate(COLORS.items()):
        x = 80 + i * 200
        out += [f'<line x1="{x}" y1="{HEIGHT - 14}" x2="{x + 24}" y2="{HEIGHT - 14}" stroke="{color}" '
                f'stroke-width="2"/>', f'<text x="{x + 30}" y="{HEIGHT - 10}">{tool}</text>']
    return "\n".join([*out, "</svg>"]) + "\n"


# ---- --node

NODE_COLUMNS = {"receiver": "receiver", "associations": "associations", "instances": "instances",
                "stored": "stored", "seconds": "seconds", "instances/s": "instances_per_s", "MB/s": "mb_per_s",
                "× storescp": "x_storescp", "senders' exit": "exit"}


class Delivery(NamedTuple):
    """One timed transfer: seconds until all were stored (or the receiver gave up), how many, the worst sender exit."""

    seconds: float
    stored: int
    code: int


def receivers(python: str, key: Path) -> dict[str, list[str]]:
    """The command of each receiver; PORT, OUT and WORK are filled in per run. storescp forks a process an
    association, so it takes concurrent associations as the node does."""
    serve = [python, "-m", "neuroanon.cli", "serve", "--host", LOOPBACK, "--port", "PORT", "--output", "OUT",
             "--ae-title", NODE_AET, "--work", "WORK"]
    return {
        "storescp (dcmtk, no anonymization)": ["storescp", "--fork", "-aet", NODE_AET, "-od", "OUT", "-fe", ".dcm",
                                               "PORT"],
        "neuroanon serve anonymize": [*serve, "--level", "anonymize"],
        "neuroanon serve full": [*serve, "--level", "full", "--key-file", str(key)],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def wait_until_answering(port: int, receiver: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the receiver answers a C-ECHO."""
    deadline = time.monotonic() + 60
    echo = ["echoscu", "-aec", NODE_AET, LOOPBACK, str(port)]
    while subprocess.run(echo, env=DCMTK_ENV, capture_output=True).returncode:
        if receiver.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the receiver did not start; see {log}")
        time.sleep(0.1)


def stored(out: Path) -> int:
    return sum(1 for p in out.rglob("*.dcm") if not p.name.startswith("."))


def send(port: int, inputs: list[Path], out: Path, expected: int) -> Delivery:
    """storescu, one association per input folder, all at once; then wait until the receiver has stored them all."""
    start = time.perf_counter()
    senders = [subprocess.Popen(["storescu", "-aet", f"SENDER{i}", "-aec", NODE_AET, "+sd", "+r", LOOPBACK, str(port),
                                 str(folder)], env=DCMTK_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for i, folder in enumerate(inputs)]
    code = max(sender.wait() for sender in senders)
    deadline = time.monotonic() + (STORE_TIMEOUT if code == 0 else 0.0)  # a sender failed: count what arrived
    while (count := stored(out)) < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return Delivery(time.perf_counter() - start, count, code)


def deliver(command: list[str], inputs: list[Path], work: Path, expected: int, drop: bool) -> Delivery:
    """Start the receiver into a new folder (`fresh`), time one transfer to it and stop it (SIGTERM)."""
    out, node_work, log = fresh(work, "node-out"), fresh(work, "node-work"), work / "receiver.log"
    out.mkdir(parents=True)
    port = free_port()
    settled(*inputs, drop=drop)
    with open(log, "ab") as sink:
        receiver = subprocess.Popen(fill(command, PORT=port, OUT=out, WORK=node_work), stdout=sink, stderr=sink,
                                    env=DCMTK_ENV)
    try:
        wait_until_answering(port, receiver, log)
        return send(port, inputs, out, expected)
    finally:
        receiver.terminate()
        receiver.wait(timeout=STORE_TIMEOUT)


def node(args: argparse.Namespace, work: Path, key: Path) -> list[dict[str, Any]]:
    """Each receiver, fed by one association and by --associations at once, in alternating rounds."""
    corpus = fresh(work, "node-corpus")
    make_many(corpus, args.instances, subject=1, rows=256, columns=256,
              per_folder=math.ceil(args.instances / args.associations))
    files, size = tree_stats(corpus)
    print(f"node: {files} instances, {size / 1e6:.0f} MB; {machine(args.drop)}\n")
    splits = {1: [corpus], args.associations: sorted(corpus.iterdir())}  # associations -> a folder each
    commands = receivers(sys.executable, key)
    room_for(work, size, len(commands) * len(splits) * args.repeat)
    runs: dict[tuple[str, int], list[Delivery]] = {}
    for _ in range(args.repeat):
        for associations, inputs in splits.items():
            for name, command in commands.items():
                runs.setdefault((name, associations), []).append(deliver(command, inputs, work, files, args.drop))
    rows = node_rows(runs, files, size)
    print_table(rows, NODE_COLUMNS)
    return rows


def node_rows(runs: dict[tuple[str, int], list[Delivery]], files: int, size: int) -> list[dict[str, Any]]:
    """One row per receiver and association count: its median transfer; ratios to storescp's at that count."""
    baseline = {associations: median(done).seconds for (name, associations), done in runs.items()
                if name.startswith("storescp")}
    rows = []
    for (name, associations), done in runs.items():
        run = median(done)
        rows.append({"receiver": name, "associations": associations, "instances": files, "stored": run.stored,
                     "seconds": round(run.seconds, 2), "instances_per_s": round(files / run.seconds, 1),
                     "mb_per_s": round(size / 1e6 / run.seconds, 1),
                     "x_storescp": round(run.seconds / baseline[associations], 2), "exit": run.code,
                     "runs": [round(r.seconds, 2) for r in done]})
    return rows


# ---- --clean-pixels-frames

def clean_pixels(work: Path, frames: int, key: Path, workers: int) -> dict[str, Any]:
    """Time `full --clean-pixels` on one multi-frame 512x512 ultrasound with fake PHI on every other frame; the
    report gives the seconds spent reading and redacting pixels, per frame read (frames with text are read twice)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    ds = make_dataset(subject=1, series=8, rows=512, columns=512)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.3.1")  # US multi-frame
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


def frame_spec(text: str) -> tuple[int, int]:
    """`SIDE` or `SIDE:FRAMES` as (side, frames)."""
    side, _, frames = text.partition(":")
    return int(side), int(frames or 1)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; the median is reported")
    parser.add_argument("--workdir", type=Path, help="work here and keep the comparison's corpus (default: a "
                        "temporary folder, removed)")
    parser.add_argument("--json", type=Path, help="also write the results here, by measurement")
    parser.add_argument("--quick", action="store_true", help="tiny corpora, one round: a smoke run")
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds to wait, after removing what an interrupted benchmark left, before the first "
                             "run (on ext4 without a journal, 360 after removing many files)")
    parser.add_argument("--keep-cache", dest="drop", action="store_false", default=CAN_DROP_CACHES,
                        help="leave the page cache as earlier runs left it (default: dropped before each run "
                             "where the benchmark may, as root on Linux)")
    comparison = parser.add_argument_group("the comparison (the default)")
    comparison.add_argument("--files", type=int, default=3000)
    comparison.add_argument("--frames", type=int, default=400)
    comparison.add_argument("--clean-pixels-frames", type=int, default=0,
                            help="also time --clean-pixels on this many 512x512 ultrasound frames (needs the ocr "
                                 "extra)")
    scale = parser.add_argument_group("--scaling")
    scale.add_argument("--scaling", action="store_true", help="how the cost grows with file count and file size")
    scale.add_argument("--counts", type=int, nargs="+", default=[250, 1000, 4000],
                       help=f"file counts of {COUNT_SIDE}x{COUNT_SIDE} files")
    scale.add_argument("--sizes", type=frame_spec, nargs="+", default=[(64, 1), (256, 1), (512, 1), (512, 8)],
                       metavar="SIDE[:FRAMES]", help="file sizes: square frames of SIDE pixels, FRAMES a file")
    scale.add_argument("--size-files", type=int, default=250, help="files of each size")
    scale.add_argument("--svg", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "scaling.svg",
                       help="where the plot goes")
    serve = parser.add_argument_group("--node")
    serve.add_argument("--node", action="store_true", help="the DICOM node's instances per second")
    serve.add_argument("--instances", type=int, default=1000, help="256x256 instances sent")
    serve.add_argument("--associations", type=int, default=4, help="concurrent associations of the second transfer")
    args = parser.parse_args(argv)
    if args.quick:  # what was not given takes its --quick value
        for name, value in QUICK.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="neuroanon-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    key = work / "key"
    key.write_text("42" * 32)
    measurements: dict[str, Callable[[argparse.Namespace, Path, Path], object]] = {
        "comparison": compare, "scaling": scaling, "node": node}
    chosen = [name for name in ("scaling", "node") if getattr(args, name)] or ["comparison"]
    leftovers_removed(work, args.settle)
    byte_compiled()
    try:
        results = {name: measurements[name](args, work, key) for name in chosen}
    finally:
        shutil.rmtree(work / "runs", ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(args.drop), **results}, indent=1) + "\n")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
