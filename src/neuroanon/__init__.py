"""neuroanon: de-identify DICOM data for research sharing (the NiDB anonymization levels).

Where a C compiler was at hand at install time, the byte-level modules are compiled by mypyc from the same source
(setup.py). The pure modules are loaded instead when NEUROANON_PURE=1 is set, and in a source checkout for any
module whose source changed after it was compiled (until `pip install -e .` compiles it again).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

__version__ = "0.1.0"

# The modules that walk a file's bytes element by element: the engine and the rules it applies (setup.py reads this).
COMPILED = ("engine", "rules", "tags", "allowlist", "csa")


class _PureModules(importlib.abc.MetaPathFinder):
    """Finds `neuroanon.<name>` for the names given as its source file, before the compiled module is found."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: object = None, target: object = None,
                  ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in self.names:
            return None
        return importlib.util.spec_from_file_location(fullname, Path(__file__).parent / f"{name}.py")


def _compiled_at(folder: Path, name: str) -> float | None:
    """When the compiled module `name` in `folder` was built, or None if there is none."""
    times = [p.stat().st_mtime for suffix in importlib.machinery.EXTENSION_SUFFIXES
             if (p := folder / f"{name}{suffix}").is_file()]
    return max(times) if times else None


def pure_names(folder: Path, pure: bool) -> set[str]:
    """The compiled modules of the package in `folder` to load from their source instead (all if `pure`)."""
    if pure:
        return set(COMPILED)
    if folder.parent.name != "src" or not (folder.parent.parent / "pyproject.toml").is_file():
        return set()  # an installed package: its compiled modules were built from the sources beside them
    built = {name: _compiled_at(folder, name) for name in COMPILED}
    if any(at is not None and (folder / f"{name}.py").stat().st_mtime > at for name, at in built.items()):
        return set(COMPILED)  # one changed: all pure, since compiled modules call each other directly
    return set()


if _pure := pure_names(Path(__file__).parent, bool(os.environ.get("NEUROANON_PURE"))):
    sys.meta_path.insert(0, _PureModules(_pure))


def compiled() -> bool:
    """Whether the byte-level modules run compiled (else as pure Python)."""
    from . import engine

    return not engine.__file__.endswith(".py")
