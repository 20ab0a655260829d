"""Instructions a worker executes per file, counted by valgrind's callgrind: repeatable where the clock is not.

    python scripts/instructions.py CORPUS [--level full] [--step 30] [--key-file KEY]

Runs `pipeline.prepare` (a worker's whole work on a file: read, anonymize, stage, check) twice under callgrind:
over every STEP-th file of CORPUS up to 10 MB and over every (STEP/2)-th, each file once. The difference, divided by the
files it adds, is the cost of a file with the caches a run keeps (the series' needles, UIDs) as warm as in a
real run, without the start-up. Python's hash seed is fixed (with a random one the count varies by about 2%).
Needs valgrind. The benchmark corpus is made by `scripts/benchmark.py`
(`--workdir`, then `<workdir>/corpus`).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def prepare_every(corpus: Path, level: str, step: int, key: Path | None) -> int:
    """Prepare every `step`-th file of `corpus` in this process; the number of files."""
    from neuroanon.context import RunContext
    from neuroanon.discover import discover
    from neuroanon.keys import load_key
    from neuroanon.options import Level, Options
    from neuroanon.pipeline import prepare

    options = Options(level=Level(level), key=load_key(key) if key is not None else b"\x5a" * 32)
    run = RunContext.of(options)
    # files up to 10 MB: a sample holding the benchmark corpus's one 400-frame file would be about that file
    items = [item for item in discover([corpus]) if item.size <= 10 << 20][::step]
    with tempfile.TemporaryDirectory() as stage:
        for item in items:
            prepare(item, item.relative, Path(stage), run)
    return len(items)


def counted(args: argparse.Namespace, step: int) -> tuple[int, int]:
    """(instructions, files) of a run over every `step`-th file, under callgrind."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
               str(args.corpus), "--level", args.level, "--step", str(step), "--inner"]
    if args.key_file is not None:
        command += ["--key-file", str(args.key_file)]
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONHASHSEED": "0"})
    instructions = re.search(r"Collected : (\d+)", done.stderr)
    files = re.search(r"^files (\d+)$", done.stdout, re.MULTILINE)
    if instructions is None or files is None:
        raise SystemExit(f"instructions: no count from callgrind:\n{done.stderr[-2000:]}")
    return int(instructions.group(1)), int(files.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--level", default="full", choices=("anonymize", "full"))
    parser.add_argument("--step", type=int, default=30, help="every STEP-th file, then every STEP/2-th (even)")
    parser.add_argument("--key-file", type=Path)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        print(f"files {prepare_every(args.corpus, args.level, args.step, args.key_file)}")
        return
    if args.step < 2 or args.step % 2:
        parser.error("--step must be even")
    fewer, few_files = counted(args, args.step)
    more, more_files = counted(args, args.step // 2)
    print(f"{args.level}: {(more - fewer) / (more_files - few_files) / 1e6:.2f} M instructions a file "
          f"({more_files - few_files} files; {fewer:,} and {more:,} instructions in all)")


if __name__ == "__main__":
    main()
