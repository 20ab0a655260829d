"""The two builds of one engine: compiled by mypyc from the same source where a C compiler was at hand (setup.py),
else pure Python. Both write the recorded bytes; a source changed after its compile runs as source."""

from __future__ import annotations

import importlib.machinery
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import neuroanon
from neuroanon import COMPILED, pure_names

ROOT = Path(__file__).resolve().parents[1]


def test_the_suite_runs_the_compiled_build_where_one_was_made() -> None:
    if not neuroanon.compiled():
        if os.environ.get("CI") == "true":
            pytest.fail("CI installs with a C compiler: the byte-level modules must be compiled")
        pytest.skip("installed without a C compiler: the pure build is the one under test")
    for name in COMPILED:
        module = __import__(f"neuroanon.{name}", fromlist=["_"])
        assert not str(module.__file__).endswith(".py"), name


def test_the_pure_build_writes_the_recorded_bytes() -> None:
    """The golden outputs and the engine's own tests, run again with NEUROANON_PURE=1 (the pure modules)."""
    env = {**os.environ, "NEUROANON_PURE": "1"}
    shown = subprocess.run([sys.executable, "-c", "import neuroanon; print(neuroanon.compiled())"],
                           env=env, capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "False"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_golden.py", "tests/test_engine.py"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:]


def _checkout(tmp: Path) -> Path:
    """A source checkout's package folder holding a "compiled" engine (an empty file is enough to be found)."""
    (tmp / "pyproject.toml").write_text("")
    folder = tmp / "src" / "neuroanon"
    folder.mkdir(parents=True)
    for name in COMPILED:
        (folder / f"{name}.py").write_text("")
    (folder / f"engine{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_text("")
    return folder


def test_a_source_changed_after_its_compile_runs_as_source(tmp_path: Path) -> None:
    folder = _checkout(tmp_path)
    compiled_at = (folder / f"engine{importlib.machinery.EXTENSION_SUFFIXES[0]}").stat().st_mtime
    for name in COMPILED:
        os.utime(folder / f"{name}.py", (compiled_at - 10, compiled_at - 10))
    assert pure_names(folder, pure=False) == set()
    assert pure_names(folder, pure=True) == set(COMPILED)
    os.utime(folder / "engine.py", (time.time() + 10, compiled_at + 10))  # edited after `pip install -e .`
    assert pure_names(folder, pure=False) == set(COMPILED)


def test_an_installed_package_is_never_second_guessed(tmp_path: Path) -> None:
    """Installed (not in a checkout's src folder), file times say nothing about which was built from which."""
    folder = _checkout(tmp_path)
    (tmp_path / "site-packages").mkdir()
    installed = folder.rename(tmp_path / "site-packages" / "neuroanon")
    os.utime(installed / "engine.py", (time.time() + 10, time.time() + 10))
    assert pure_names(installed, pure=False) == set()


# The distribution that provides each module neuroanon imports by name, where the two differ.
_DISTRIBUTIONS = {"ahocorasick_rs": "ahocorasick-rs"}


def test_every_module_imported_at_load_is_a_dependency_of_the_plain_install() -> None:
    """`pip install .` installs the base dependencies alone: a module imported at the top of a neuroanon module (not
    inside a function, as the ocr extra's are) must be one of them. Found from outside: the residual check imported
    NumPy, an ocr-extra package, and the README's first command, `bash scripts/demo.sh`, ended in a traceback."""
    import ast
    import re
    import tomllib

    declared = {re.split(r"[<>=~!\[ ;]", d)[0].lower() for d in
                tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    missing = set()
    for path in sorted((ROOT / "src" / "neuroanon").rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:  # (the module's own top level)
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "neuroanon":
                    continue
                if _DISTRIBUTIONS.get(top, top).lower() not in declared:
                    missing.add(f"{path.relative_to(ROOT)}: {top}")
    assert not missing, sorted(missing)
