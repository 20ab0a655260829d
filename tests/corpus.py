"""Real DICOM test files from installed packages: pydicom, pydicom-data, nibabel and deid-data."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def corpus_files() -> list[Path]:
    """Every data file the test-data packages ship (DICOM or not: the pipeline must cope with each)."""
    sources = [
        ("pydicom", "data/test_files"),
        ("data_store", "data"),  # pydicom-data
        ("nibabel", "nicom/tests/data"),
        ("nibabel", "tests/data"),
        ("deid_data", "data"),
    ]
    files: list[Path] = []
    for package, sub in sources:
        base = _package_dir(package)
        if base is None:
            continue
        for path in sorted((base / sub).rglob("*")):
            if not path.is_file() or path.suffix in (".py", ".pyc", ".gz", ".zip", ".txt", ".bin", ".md"):
                continue
            if package == "nibabel" and sub == "tests/data" and path.suffix != ".dcm":
                continue
            files.append(path)
    return files


def pydicom_file(name: str) -> Path:
    """One of pydicom's test files, by name."""
    path = get_testdata_file(name)
    if not isinstance(path, str):
        pytest.fail(f"pydicom's test file {name} is missing")
    return Path(path)


def nibabel_siemens(tmp: Path) -> list[Path]:
    """nibabel's Siemens MR test files (DWI mosaics and slices), unpacked from .gz where needed."""
    base = _package_dir("nibabel")
    if base is None:
        pytest.fail("nibabel is not installed (it is a test dependency)")
    data = base / "nicom/tests/data"
    out = []
    for path in sorted(data.iterdir()):
        if path.name.endswith(".dcm.gz"):
            target = tmp / path.name[:-3]
            target.write_bytes(gzip.decompress(path.read_bytes()))
            out.append(target)
        elif path.suffix == ".dcm":
            out.append(path)
    return out
