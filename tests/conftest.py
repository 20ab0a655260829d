"""Test-wide settings (pydicom's validation messages quote element values, so they stay out of test output) and
shared fixtures."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import config

config.settings.reading_validation_mode = config.IGNORE
logging.getLogger("pydicom").propagate = False


@pytest.fixture
def small_disk(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A 6 MB tmpfs, or of the size a test gives it (`indirect` parametrization), as root (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs the suite as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    size = getattr(request, "param", "6m")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)
