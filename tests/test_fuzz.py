"""Hostile input: mutated real DICOM files, odd file types in a tree. Nothing hangs, crashes or blows up memory.

The hypothesis test takes a few small real files (pydicom's CT_small, MR_small, rtplan, JPEG2000 and the synthetic
study in explicit VR, implicit VR and RLE) and mutates their bytes: truncation, flipped and overwritten bytes,
huge or odd 4-byte length fields, a duplicated chunk, 200 nested undefined-length sequence items, a zero-length
file and a bare preamble + "DICM". Each mutant is anonymized at anonymize and at full under a 10 s alarm (a hang
fails the test) and must give a record (written, or skipped/failed/quarantined with a reason), an output pydicom
re-reads, and an unchanged input. Peak memory (ru_maxrss) may grow by less than 500 MB over the whole campaign.

Longer campaign: the number of examples comes from the environment, e.g.

    NEUROANON_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/test_fuzz.py -q -p no:warnings

(hypothesis's example database stays off so every run is independent; add `--hypothesis-seed=N` to replay a run.
The per-call time limit is NEUROANON_FUZZ_TIMEOUT seconds, 10 by default.)
"""

from __future__ import annotations

import os
import resource
import signal
import struct
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import FrameType
from typing import Any

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from neuroanon.options import Level, Options
from neuroanon.pipeline import anonymize_file, anonymize_tree
from neuroanon.report import Record, Status
from neuroanon.sample import make_study

KEY = b"fuzz-test-key-0123456789abcdef!!"
LEVELS = (Options(level=Level.ANONYMIZE), Options(level=Level.FULL, key=KEY))
EXAMPLES = int(os.environ.get("NEUROANON_FUZZ_EXAMPLES", "150"))
TIMEOUT = int(os.environ.get("NEUROANON_FUZZ_TIMEOUT", "10"))
MEMORY_BUDGET_KB = 500 * 1024  # ru_maxrss is in kilobytes on Linux
PYDICOM_SEEDS = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm")
SYNTHETIC_SEEDS = ("explicit_le", "implicit_le", "rle")
HUGE_LENGTHS = (0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFF0, 0xF0000000, 0x80000001, 0x7FFFFFFF, 0x10000001, 0x00FFFFFF,
                0x00000001, 0x00000003, 0x00000007, 0x0000FFFF)
_VRS = frozenset(
    b"AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ UC UN UR UT SV UV".split())


class Hang(BaseException):
    """Raised by the alarm. A BaseException, so that the pipeline's `except Exception` cannot swallow it."""


@contextmanager
def time_limit(seconds: int, what: str) -> Iterator[None]:
    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"{what} did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@cache
def seeds() -> dict[str, tuple[bytes, bool]]:
    """Seed name -> (file bytes, dataset is implicit VR)."""
    found: dict[str, tuple[bytes, bool]] = {}
    for name in PYDICOM_SEEDS:
        path = get_testdata_file(name)
        assert path is not None, f"pydicom test file {name} is missing"
        data = Path(path).read_bytes()
        found[name] = (data, _is_implicit(Path(path)))
    with tempfile.TemporaryDirectory() as tmp:
        for encoding in SYNTHETIC_SEEDS:
            made = make_study(Path(tmp) / encoding, n_series=1, n_instances=2, encoding=encoding)[0]
            found[f"synthetic-{encoding}"] = (made.read_bytes(), _is_implicit(made))
    return found


def _is_implicit(path: Path) -> bool:
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    return bool(ds.original_encoding[0])


def _length_offsets(data: bytes) -> list[int]:
    """Offsets of plausible explicit-VR 4-byte length fields (and of 4-byte words after plausible tags)."""
    offsets = []
    for i in range(0, len(data) - 12, 2):
        if data[i + 4:i + 6] in _LONG_VRS and data[i + 6:i + 8] == b"\0\0":
            offsets.append(i + 8)
        elif data[i + 1] in (0x00, 0x7F, 0xFF) and data[i] % 2 == 0 and data[i + 4:i + 6] not in _VRS:
            offsets.append(i + 4)  # implicit VR: tag (group even, high byte small) then a 4-byte length
    return offsets


def _nesting(depth: int, implicit: bool, terminated: bool) -> bytes:
    """A (FFFA,FFFA) sequence (after pixel data in tag order) holding `depth` nested undefined-length items."""
    undefined = b"\xff\xff\xff\xff"
    sq_head = b"\xfa\xff\xfa\xff" + (undefined if implicit else b"SQ\0\0" + undefined)
    item = b"\xfe\xff\x00\xe0" + undefined
    inner_sq = b"\x08\x00\x15\x11" + (undefined if implicit else b"SQ\0\0" + undefined)  # ReferencedSeriesSequence
    item_end = b"\xfe\xff\x0d\xe0\0\0\0\0"
    seq_end = b"\xfe\xff\xdd\xe0\0\0\0\0"
    body = sq_head + (item + inner_sq) * depth + item
    if terminated:
        body += item_end + (seq_end + item_end) * depth + seq_end
    return body


# One mutation: (kind, a, b, c) with a, b, c in [0, 1) scaled to the data, or small ints for the choice.
MUTATION = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0.0), st.integers(0, 0)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("overwrite"), st.floats(0, 1), st.floats(0, 1), st.integers(0, 255)),
    st.tuples(st.just("length"), st.floats(0, 1), st.floats(0, 1), st.integers(0, len(HUGE_LENGTHS) - 1)),
    st.tuples(st.just("duplicate"), st.floats(0, 1), st.floats(0, 1), st.integers(1, 4096)),
    st.tuples(st.just("nest"), st.floats(0, 1), st.booleans().map(float), st.integers(1, 300)),
)


def mutate(data: bytes, implicit: bool, mutation: tuple[str, float, float, int]) -> bytes:
    kind, a, b, c = mutation
    size = len(data)
    at = min(int(a * size), max(size - 1, 0))
    buf = bytearray(data)
    if kind == "truncate":
        return data[:at]
    if kind in ("flip", "overwrite") and size:
        for i in range(1 + int(b * 8)):
            pos = (at + i * 7919) % size
            buf[pos] = buf[pos] ^ c if kind == "flip" else c
        return bytes(buf)
    if kind == "length":
        offsets = _length_offsets(data) or [at]
        pos = offsets[int(b * len(offsets)) % len(offsets)] if b < 0.8 else at
        value = struct.pack("<L", HUGE_LENGTHS[c])
        buf[pos:pos + 4] = value
        return bytes(buf[:max(size, pos + 4)])
    if kind == "duplicate":
        chunk = data[at:at + c]
        where = int(b * size)
        return data[:where] + chunk + data[where:]
    if kind == "nest":
        nested = _nesting(200 if c < 200 else c, implicit, terminated=b >= 0.5)
        if a < 0.7:
            return data + nested  # after the last element (pixel data): in tag order
        return data[:at] + nested + data[at:]
    return data


SPECIAL = st.sampled_from(["empty", "preamble-only", "preamble-only-padded"])
CASE: st.SearchStrategy[tuple[str, list[Any]]] = st.one_of(
    st.tuples(st.sampled_from(sorted(PYDICOM_SEEDS + tuple(f"synthetic-{e}" for e in SYNTHETIC_SEEDS))),
              st.lists(MUTATION, min_size=1, max_size=3)),
    st.tuples(SPECIAL, st.just([])),
)


def build_case(name: str, mutations: list[tuple[str, float, float, int]]) -> bytes:
    if name == "empty":
        return b""
    if name == "preamble-only":
        return b"\0" * 128 + b"DICM"
    if name == "preamble-only-padded":
        return b"\0" * 128 + b"DICM" + b"\0" * 8
    data, implicit = seeds()[name]
    for mutation in mutations:
        data = mutate(data, implicit, mutation)
    return data


def check_mutant(data: bytes, label: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in" / "mutant.dcm"
        source.parent.mkdir()
        source.write_bytes(data)
        for options in LEVELS:
            out = Path(tmp) / f"out-{options.level}"
            what = f"{label} at {options.level}"
            try:
                with time_limit(TIMEOUT, what):
                    record = anonymize_file(source, out, options)
            except Hang:
                pytest.fail(f"hang: {what}")
            except Exception as exc:  # the type alone: an exception's text may quote element values
                pytest.fail(f"{type(exc).__name__} escaped anonymize_file: {what}")
            assert source.read_bytes() == data, f"the input was modified: {what}"
            check_record(record, out, data, what)


def check_record(record: Record, out: Path, data: bytes, what: str) -> None:
    # Quarantined: held back by a check (burned-in annotation risk at full), with a reason, like skipped/failed.
    allowed = (Status.WRITTEN, Status.SKIPPED, Status.FAILED, Status.QUARANTINED)
    assert record.status in allowed, f"status {record.status}: {what}"
    if record.status is not Status.WRITTEN:
        assert record.reason, f"{record.status} without a reason: {what}"
        return
    assert record.output is not None, f"written without an output path: {what}"
    written = out / record.output
    assert written.is_file(), f"written output missing: {what}"
    if not record.dicom:
        assert written.read_bytes() == data, f"non-DICOM must be copied unchanged: {what}"
        return
    try:
        with time_limit(TIMEOUT, f"re-reading the output of {what}"):
            pydicom.dcmread(written, force=True)
    except Hang:
        pytest.fail(f"hang re-reading the output: {what}")
    except Exception as exc:
        pytest.fail(f"the written output does not re-read ({type(exc).__name__}): {what}")


def test_mutated_real_files_never_crash_hang_or_balloon() -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=CASE)
    def fuzz(case: tuple[str, list[tuple[str, float, float, int]]]) -> None:
        name, mutations = case
        label = f"{name} + {[m[0] for m in mutations]}"
        check_mutant(build_case(name, mutations), label)

    seeds()  # built before the memory baseline
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fuzz()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < MEMORY_BUDGET_KB, f"peak memory grew by {grown // 1024} MB"


@pytest.mark.parametrize("name", sorted(PYDICOM_SEEDS + tuple(f"synthetic-{e}" for e in SYNTHETIC_SEEDS)))
@pytest.mark.parametrize("length", [0xFFFFFFFF - 1, 0xFFFFFFF0, 0x7FFFFFFF], ids=hex)
def test_every_huge_length_field(name: str, length: int) -> None:
    """Each plausible length field of each seed set to ~2-4 GB, one at a time (a sample of at most 40)."""
    data, _ = seeds()[name]
    offsets = _length_offsets(data)
    step = max(1, len(offsets) // 40)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for pos in offsets[::step]:
        mutant = data[:pos] + struct.pack("<L", length) + data[pos + 4:]
        check_mutant(mutant, f"{name} with a huge length at byte {pos}")
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < MEMORY_BUDGET_KB, f"peak memory grew by {grown // 1024} MB"


@pytest.mark.parametrize("terminated", [True, False], ids=["delimited", "unterminated"])
@pytest.mark.parametrize("name", ["MR_small.dcm", "rtplan.dcm", "synthetic-implicit_le"])
def test_deep_nesting(name: str, terminated: bool) -> None:
    data, implicit = seeds()[name]
    for depth in (200, 2000):
        check_mutant(data + _nesting(depth, implicit, terminated), f"{name} + {depth} nested items")


@pytest.mark.parametrize("level", LEVELS, ids=lambda o: str(o.level))
def test_pixel_data_shorter_than_declared_fails_as_truncated(level: Options, tmp_path: Path) -> None:
    data, _ = seeds()["MR_small.dcm"]
    source = tmp_path / "in" / "short.dcm"
    source.parent.mkdir()
    source.write_bytes(data[:-1000])  # pixel data is the last element: its declared length now overruns the file
    with time_limit(TIMEOUT, "short pixel data"):
        record = anonymize_file(source, tmp_path / "out", level)
    assert record.status is Status.FAILED
    assert "truncated" in record.reason
    assert not any((tmp_path / "out").rglob("*")), "nothing is written for a failed file"


def _outside_dicom(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "target.dcm"
    target.write_bytes(seeds()["MR_small.dcm"][0])
    return target


def _run_tree(tree: Path, out: Path, options: Options) -> tuple[list[Record], int]:
    records: list[Record] = []
    with time_limit(TIMEOUT * 3, "anonymize_tree"):
        try:
            summary = anonymize_tree([tree], out, options, on_record=lambda record, _: records.append(record))
        except Hang:
            pytest.fail("anonymize_tree blocked")
    return records, summary.files


def test_zero_byte_file_in_a_tree_is_skipped_at_full_and_the_run_goes_on(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a_empty.dcm").write_bytes(b"")
    (tree / "b_image.dcm").write_bytes(seeds()["MR_small.dcm"][0])
    (tree / "c_empty").write_bytes(b"")
    records, files = _run_tree(tree, tmp_path / "out", LEVELS[1])
    by_name = {r.input: r for r in records}
    assert files == 3 and set(by_name) == {"a_empty.dcm", "b_image.dcm", "c_empty"}
    for name in ("a_empty.dcm", "c_empty"):
        assert by_name[name].status is Status.SKIPPED and by_name[name].reason, name
        assert by_name[name].output is None, name
    assert by_name["b_image.dcm"].status is Status.WRITTEN


@pytest.mark.parametrize("level", LEVELS, ids=lambda o: str(o.level))
def test_symlink_out_of_the_tree_and_fifo_are_skipped_without_blocking(level: Options, tmp_path: Path) -> None:
    target = _outside_dicom(tmp_path)
    outside_fifo = tmp_path / "outside" / "pipe"
    os.mkfifo(outside_fifo)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "image.dcm").write_bytes(seeds()["CT_small.dcm"][0])
    (tree / "link.dcm").symlink_to(target)
    (tree / "link_to_fifo.dcm").symlink_to(outside_fifo)  # following it would block: a read of the target
    (tree / "link_dir").symlink_to(target.parent, target_is_directory=True)
    os.mkfifo(tree / "fifo.dcm")
    out = tmp_path / "out"
    target_bytes = target.read_bytes()
    records, files = _run_tree(tree, out, level)
    by_name = {r.input: r for r in records}
    for name in ("link.dcm", "link_to_fifo.dcm", "fifo.dcm", "link_dir"):
        assert name in by_name, f"{name} not reported"
        assert by_name[name].status is Status.SKIPPED, name
        assert by_name[name].reason, name
        assert by_name[name].output is None, name
    assert not any(r.input.startswith("link_dir/") for r in records), "a symlinked folder was followed"
    assert by_name["sub/image.dcm"].status is Status.WRITTEN
    assert files == len(records) == 5
    assert target.read_bytes() == target_bytes
    outputs = [p for p in out.rglob("*") if p.is_file() or p.is_symlink()]
    assert len(outputs) == 1, "only the regular file is released"
    assert not any(p.is_symlink() for p in out.rglob("*")), "a symlink was copied into the output"
    # The outside target's distinctive bytes (its SOP instance UID) appear in no output.
    marker = str(pydicom.dcmread(target, stop_before_pixels=True).SOPInstanceUID).encode()
    assert all(marker not in p.read_bytes() for p in outputs), "the symlink's target reached the output"


def test_fifo_given_directly_to_anonymize_file_is_skipped(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.dcm"
    os.mkfifo(fifo)
    with time_limit(TIMEOUT, "a FIFO as input"):
        record = anonymize_file(fifo, tmp_path / "out", LEVELS[0])
    assert record.status is Status.SKIPPED and record.reason


def test_fifo_given_directly_to_anonymize_tree_is_reported(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.dcm"
    os.mkfifo(fifo)
    records, files = _run_tree(fifo, tmp_path / "out", LEVELS[1])
    assert files == 1 and records[0].status is Status.SKIPPED and records[0].reason


def test_a_hang_is_detected_by_the_alarm() -> None:
    """The guard itself works: a blocking call is interrupted and reported, not waited on forever."""
    event = threading.Event()
    with pytest.raises(Hang), time_limit(1, "waiting"):
        while not event.wait(0.05):
            pass
