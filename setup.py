"""The build: neuroanon's byte-level modules compiled with mypyc where a C compiler is at hand, else pure Python.

The compiled modules are the same source as the pure ones (mypyc compiles the type-annotated Python as it is): one
engine, two builds; the compiled one spends less CPU on a file (README, Performance). Without a C compiler (or with
NEUROANON_PURE=1 set at build time) neuroanon installs and runs as pure Python. At run time NEUROANON_PURE=1 loads
the pure modules even where compiled ones are installed (`neuroanon/__init__.py`).
"""

import ast
import os
import sys
from pathlib import Path

from setuptools import Extension, setup


def compiled_names() -> list[str]:
    """`COMPILED` as src/neuroanon/__init__.py lists it (read, not imported: the package is not built yet)."""
    tree = ast.parse(Path("src/neuroanon/__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "COMPILED" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise RuntimeError("src/neuroanon/__init__.py lists no COMPILED modules")


def compiled_modules() -> list[Extension]:
    if os.environ.get("NEUROANON_PURE"):
        return []
    try:
        from mypyc.build import mypycify

        modules = mypycify([f"src/neuroanon/{name}.py" for name in compiled_names()], opt_level="3",
                           group_name="neuroanon")
    except (Exception, SystemExit) as exc:  # mypyc exits on a type error (say, a new pydicom's annotations)
        print(f"neuroanon: not compiled ({type(exc).__name__}: {exc}); installing pure Python", file=sys.stderr)
        return []
    for module in modules:
        module.optional = True  # a build without a C compiler installs the pure modules instead
    return modules


setup(ext_modules=compiled_modules())
