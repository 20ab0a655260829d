"""Finding the external validators and peers the tests talk to. In CI (CI=true) a missing tool fails."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest


def require_tool(name: str, beside_python: bool = True) -> str:
    """Path of an executable (searched beside this Python first, then on PATH, then in the sbin folders, where
    Debian puts daemons such as Orthanc). `beside_python=False` skips the virtual environment: pynetdicom installs
    its own `echoscu` and `storescu` there, and the tests want dcmtk's."""
    folders = [str(Path(sys.executable).parent)] if beside_python else []
    venv = str(Path(sys.executable).parent)
    folders += [f for f in os.environ.get("PATH", "").split(os.pathsep) if beside_python or f != venv]
    search = os.pathsep.join([*folders, "/usr/sbin", "/sbin"])
    found = shutil.which(name, path=search)
    if found:
        return found
    message = f"{name} is not installed (.ci/run installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
