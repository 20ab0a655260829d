"""Zip archives: every member of an input archive accounted for, and a zip output equal to a folder output."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from neuroanon.cli import main
from neuroanon.options import Level, Options
from neuroanon.pipeline import anonymize_tree
from neuroanon.sample import make_study, planted_values

from .helpers import files_under

KEY = b"zip-test-key-0123456789abcdefgh!"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A study as a folder and the same study zipped, plus a note and a member that tries to climb out."""
    root = tmp_path_factory.mktemp("zip")
    folder = root / "study"
    files = make_study(folder, subject=6, n_series=2, n_instances=3)
    (folder / "notes.txt").write_text("fake notes")
    zipped = root / "study.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files_under(folder):
            zf.write(path, path.relative_to(folder).as_posix())
        zf.writestr("../escape.dcm", files[0].read_bytes())
    return folder, zipped


def _records(report: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in report.read_text().splitlines()][:-1]


@pytest.mark.parametrize("level", [Level.ANONYMIZE, Level.FULL])
def test_zip_input_gives_what_the_folder_gives_and_reports_every_member(
    archive: tuple[Path, Path], tmp_path: Path, level: Level
) -> None:
    folder, zipped = archive
    anonymize_tree([folder], tmp_path / "a", Options(level=level, key=KEY), report=tmp_path / "a.jsonl")
    summary = anonymize_tree([zipped], tmp_path / "b", Options(level=level, key=KEY), report=tmp_path / "b.jsonl",
                             workers=2)
    assert summary.exit_code == 1  # the member that climbs out
    from_folder = {str(p.relative_to(tmp_path / "a")): p.read_bytes() for p in files_under(tmp_path / "a")}
    from_zip = {str(p.relative_to(tmp_path / "b")): p.read_bytes() for p in files_under(tmp_path / "b")}
    assert from_zip == from_folder and len(from_zip) >= 6
    records = {r["input"]: r for r in _records(tmp_path / "b.jsonl")}
    with zipfile.ZipFile(zipped) as zf:
        assert set(records) == {i.filename for i in zf.infolist()}
    assert records["../escape.dcm"]["status"] == "failed" and not (tmp_path / "escape.dcm").exists()


def test_zip_output_holds_the_same_files_and_is_stable(archive: tuple[Path, Path], tmp_path: Path) -> None:
    folder, _ = archive
    key = tmp_path / "key"
    key.write_text("12" * 32)
    args = ["anonymize", str(folder), "--level", "full", "--key-file", str(key), "-q"]
    assert main([*args, "-o", str(tmp_path / "out")]) == 0
    assert main([*args, "-o", str(tmp_path / "one.zip")]) == 0
    assert main([*args, "-o", str(tmp_path / "two.zip"), "--workers", "1"]) == 0
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()
    expected = {str(p.relative_to(tmp_path / "out")): p.read_bytes() for p in files_under(tmp_path / "out")}
    with zipfile.ZipFile(tmp_path / "one.zip") as zf:
        assert {name: zf.read(name) for name in zf.namelist()} == expected
        names = " ".join(zf.namelist())
    for name, value in planted_values(6).items():
        assert value.lower() not in names.lower(), f"{name} in a member name"
    leftovers = {p.name for p in tmp_path.iterdir() if "neuroanon" in p.name or p.name.endswith(".partial")}
    assert leftovers == {".out.neuroanon-journal"}, "a zip output leaves no work folder, journal or partial file"


def test_verify_reads_a_zip_release(archive: tuple[Path, Path], tmp_path: Path) -> None:
    folder, zipped = archive
    key = tmp_path / "key"
    key.write_text("34" * 32)
    out = tmp_path / "release.zip"
    assert main(["anonymize", str(folder), "-o", str(out), "--level", "full", "--key-file", str(key), "-q"]) == 0
    assert main(["verify", str(out), "--level", "full", "--against", str(folder), "--key-file", str(key)]) == 0
    assert main(["verify", str(zipped), "--level", "full"]) == 1
