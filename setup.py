"""The build: neuroanon's byte-level modules compiled with mypyc where a C compiler is at hand, else pure Python.

The compiled modules are the same source as the pure ones (mypyc compiles the type-annotated Python as it is): one
engine, two builds. Compiled, a file costs about a third less CPU. Without a C compiler (or with NEUROANON_PURE=1
set at build time) neuroanon installs and runs as pure Python. At run time NEUROANON_PURE=1 loads the pure modules
even where compiled ones are installed (`neuroanon/__init__.py`).
"""

import os

from setuptools import Extension, setup

# The modules that walk a file's bytes element by element (the engine and the rules it applies to each element).
COMPILED = ["engine", "rules", "tags", "allowlist", "csa"]


def compiled_modules() -> list[Extension]:
    if os.environ.get("NEUROANON_PURE"):
        return []
    from mypyc.build import mypycify

    modules = mypycify([f"src/neuroanon/{name}.py" for name in COMPILED], opt_level="3", group_name="neuroanon")
    for module in modules:
        module.optional = True  # a build without a C compiler installs the pure modules instead
    return modules


setup(ext_modules=compiled_modules())
