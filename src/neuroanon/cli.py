"""The command line: a thin layer over the pipeline. `main(argv) -> int` is the whole interface."""

from __future__ import annotations

import os

# Before anything imports NumPy (pydicom does): its OpenBLAS would start a thread a core, each spinning a while,
# for matrix work this program never asks of it (a tenth of a CPU-second a run, measured).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import contextlib
import functools
import io
import json
import logging
import secrets
import signal
import stat
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from . import __version__, compiled, ocr, stops
from .errors import NeuroanonError, RunStopped, Terminated, UsageError, os_cause
from .keys import (
    KEY_BYTES,
    check_mapping,
    create_key,
    default_key_exists,
    default_key_path,
    key_fingerprint,
    load_key,
    load_lookup,
    load_or_create_key,
    mapping_in_use,
)
from .options import PRESETS, Level, Options
from .pixels import MODES
from .profile import explain, render_rules
from .ps315 import BASIC_PROFILE_CODE
from .report import Record, RunInfo, Status, Summary, report_in_use, status_word, unicode_name
from .rules import Op
from .write import held_elsewhere, partial_zip

if TYPE_CHECKING:
    from .node import Node, NodeConfig

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool stopped by a closed pipe


class _Parser(argparse.ArgumentParser):
    """Says what is wrong with the command in one line (exit 2), pointing to the help, not above a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _path(text: str) -> Path:
    """A path given on the command line; an empty one is refused (found from outside: `-o ''`, an unset variable's
    value say, wrote into the current folder, and `anonymize ''` read all of it)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path (an unset variable?)")
    return Path(text)


def _text(text: str) -> str:
    """A value that may not be empty (found from outside: `--host ''` listened on every interface)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty value (an unset variable?)")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="neuroanon", description="De-identify DICOM data (NiDB levels).")
    build = "compiled" if compiled() else "pure Python"
    parser.add_argument("--version", action="version", version=f"neuroanon {__version__} ({build})")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("anonymize", help="anonymize files and folders into an output folder",
                              description="Anonymize DICOM files, folders and zip archives into an output folder "
                              "or zip archive,\nat a NiDB level. Every input ends in the summary (and the report) "
                              "with a status and a reason.",
                              epilog=ANONYMIZE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("inputs", nargs="+", type=_path, metavar="INPUT",
                     help="DICOM files, folders (read recursively) or zip archives; never modified")
    run.add_argument("--output", "-o", required=True, type=_path,
                     help="output folder, or a .zip archive (must not be inside an input)")
    _level_options(run)
    _release_options(run)
    run.add_argument("--workers", "-j", type=int,
                     help="processes to use (default: all cores); the output is the same for any number")
    run.add_argument("--dask-scheduler", metavar="ADDRESS",
                     help="prepare files on this Dask cluster (its workers must see the output at the same path; "
                          "not with --workers)")
    run.add_argument("--dicomdir", action="store_true",
                     help="write a fresh DICOMDIR for the output (its files linked under NADICOM/ with PS3.10 IDs)")
    run.add_argument("--quiet", "-q", action="store_true", help="print only the summary")
    run.add_argument("--dry-run", "-n", action="store_true",
                     help="say what would be written, skipped or held back, and why; write nothing (but --report)")
    run.add_argument("--dicom-only", action="store_true",
                     help="anonymize, original: do not copy non-DICOM files (default: copied unchanged; full never "
                          "copies them)")
    run.add_argument("--mapping", type=_path, metavar="FILE",
                     help="full: also write each original PatientID and its pseudonym to this CSV (mode 0600, for "
                          "the site's records; it identifies: keep it as you keep the key; usable as --lookup)")
    run.add_argument("--follow-symlinks", action="store_true",
                     help="follow symlinks inside the input folders (loops are not followed); without it they are "
                     "reported as skipped. Inputs named on the command line are always followed")
    run.add_argument("--force", action="store_true",
                     help="write into a non-empty output folder, or over an existing output archive, that no "
                          "neuroanon run began")

    check = commands.add_parser("verify", help="scan a tree that should be clean; exit 1 if anything is found")
    check.add_argument("paths", nargs="+", type=_path, metavar="PATH", help="files or folders to scan")
    check.add_argument("--against", nargs="+", type=_path, metavar="ORIGINALS",
                       help="the originals: their identifying values, UIDs and PatientIDs must not reappear, in "
                            "any file's bytes, path or archive. Without it, verify checks what the level removes "
                            "and empties, not the values kept elements hold: it cannot prove a tree clean alone")
    check.add_argument("--json", type=_path, help="also write the findings as JSON here")
    check.add_argument("--key-file", type=_path,
                       help="the key the output was made with: each DICOM file is checked against its own "
                            "original's values (not another patient's; without the key, against every original's)")
    check.add_argument("--lookup", type=_path,
                       help="full: the lookup file the output was made with: its new PatientIDs are no finding in "
                            "PatientName and PatientID (else only keyed pseudonyms are)")
    _level_options(check, default=None)  # inferred from the files' DeidentificationMethod unless given

    show = commands.add_parser("explain", help="print what a level does, tag by tag")
    _level_options(show)

    serve = commands.add_parser("serve", help="run a DICOM node: receive instances (C-STORE), anonymize them, "
                                "store them or forward them")
    serve.add_argument("--ae-title", default="NEUROANON", help="this node's AE title (default: NEUROANON)")
    serve.add_argument("--port", type=_port, required=True, help="TCP port to listen on (0: any free port)")
    serve.add_argument("--host", default="0.0.0.0", type=_text,
                       help="address to listen on (default: all interfaces; 127.0.0.1 for this machine only)")
    serve.add_argument("--output", "-o", required=True, type=_path,
                       help="folder for anonymized instances; with --forward, the outbox they wait in until the "
                            "destination has them")
    _level_options(serve)
    _release_options(serve, input_paths=False)
    serve.add_argument("--forward", metavar="AET@HOST:PORT", help="C-STORE every anonymized instance to this node")
    serve.add_argument("--forward-tls-ca", type=_path, metavar="FILE",
                       help="forward over TLS, trusting the destination's certificate if this CA signed it")
    serve.add_argument("--allow-calling", nargs="+", default=[], metavar="AET",
                       help="accept associations only from these calling AE titles (default: from any)")
    serve.add_argument("--tls-cert", type=_path, metavar="FILE", help="accept TLS only, with this certificate (PEM)")
    serve.add_argument("--tls-key", type=_path, metavar="FILE", help="the certificate's private key (PEM)")
    serve.add_argument("--tls-ca", type=_path, metavar="FILE",
                       help="with TLS: require senders to present a certificate this CA signed")
    serve.add_argument("--workers", "-j", type=int, default=os.cpu_count() or 1,
                       help="processes that anonymize received instances (default: all cores)")
    serve.add_argument("--max-associations", type=int, default=10, help="concurrent associations (default: 10)")
    serve.add_argument("--max-instance-size", type=_size, metavar="SIZE",
                       help="refuse bigger instances (bytes, or with K, M, G suffix)")
    serve.add_argument("--work", type=_path, metavar="DIR",
                       help="private folder for the spool and failed forwards (default: beside the output, "
                            "'.<output>.neuroanon-node')")
    serve.add_argument("--retry-base", type=float, metavar="SECONDS",
                       help="first wait before retrying the forward destination; doubles up to --retry-max "
                            "(default: 1)")
    serve.add_argument("--retry-max", type=float, metavar="SECONDS",
                       help="longest wait between retries of the forward destination (default: 60)")
    serve.add_argument("--max-attempts", type=int,
                       help="refusals by the destination before an instance moves to the failed folder (default: 10)")

    send = commands.add_parser("send", help="anonymize files and send them to a DICOM node (C-STORE)")
    send.add_argument("inputs", nargs="+", type=_path, metavar="INPUT",
                      help="DICOM files, folders (read recursively) or zip archives; never modified")
    send.add_argument("--to", required=True, metavar="AET@HOST:PORT", help="the destination")
    send.add_argument("--calling-ae", default="NEUROANON", help="our AE title (default: NEUROANON)")
    send.add_argument("--follow-symlinks", action="store_true",
                      help="follow symlinks inside the input folders (loops are not followed); without it they are "
                      "reported as skipped. Inputs named on the command line are always followed")
    _level_options(send)
    _release_options(send)
    send.add_argument("--tls-ca", type=_path, metavar="FILE",
                      help="send over TLS, trusting the destination's certificate if this CA signed it")
    send.add_argument("--tls-cert", type=_path, metavar="FILE", help="with --tls-ca: our client certificate (PEM)")
    send.add_argument("--tls-key", type=_path, metavar="FILE", help="the client certificate's private key (PEM)")

    keycmd = commands.add_parser("key", help="create the project key and print its fingerprint (never the key)")
    keycmd.add_argument("--key-file", type=_path,
                        help="where the key is (default: the per-user key, $XDG_CONFIG_HOME/neuroanon/key)")
    keycmd.add_argument("--show-fingerprint", action="store_true",
                        help="only print the fingerprint of the existing key (default: create a new key)")

    demo = commands.add_parser("demo", help="make a synthetic study with fake PHI, anonymize it at full, compare")
    demo.add_argument("--output", "-o", type=_path, help="folder for the demo files (default: a temporary one)")
    return parser


ANONYMIZE_EXAMPLES = """examples:
  neuroanon anonymize /data/incoming -o /data/share --level full --dry-run
      say what a run at full would write, skip or hold back, and why; write nothing
  neuroanon anonymize /data/incoming -o /data/share --level full --key-file project.key --report run.jsonl
      remove all PHI/PII; the same key gives the same pseudonyms and UIDs in later runs
  neuroanon anonymize scan1/ scan2/ -o mirrored/ --dicom-only
      the NiDB anonymize level; input trees mirrored, non-DICOM files left behind
  neuroanon anonymize study.zip -o share.zip --level full --quarantine held/ --mapping site-ids.csv
      a zip in, a zip out; files a check stops kept in held/; the site's ID-to-pseudonym list (0600)

exit status: 0 every DICOM file released, 1 some DICOM file not released, 2 usage error
"""


def _level_options(p: argparse.ArgumentParser, default: str | None = Level.ANONYMIZE.value) -> None:
    """The level and its options; `default` None: the level the files name (verify)."""
    shown = default or "the level the files' DeidentificationMethod names, full when they name none"
    p.add_argument("--level", choices=[lvl.value for lvl in Level], default=default,
                   help="original: copy unchanged; anonymize: the NiDB five attributes lose their values; full: all "
                        f"PHI/PII removed, PS3.15 Basic Profile (default: {shown})")
    p.add_argument("--shift-dates", action="store_true",
                   help="full: shift dates by a keyed per-subject offset (PS3.15 113107) instead of 10000101")
    p.add_argument("--clean-descriptors", action="store_true",
                   help="full: keep descriptions, cleaned of identifying values (PS3.15 113105)")
    p.add_argument("--retain-patient-characteristics", action="store_true",
                   help="full: keep age, sex, size, weight, ethnic group, smoking and pregnancy status (PS3.15 113108)")
    p.add_argument("--retain-device-identity", action="store_true",
                   help="full: keep station name, device serial numbers (PS3.15 113109)")
    p.add_argument("--no-safe-private", action="store_true",
                   help="full: remove every private element, the technical allow-list too")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="bids: level full with --clean-descriptors --shift-dates --retain-patient-characteristics "
                        "and ages of 90 and over written as 090Y (for conversion to BIDS; see README)")


def _release_options(p: argparse.ArgumentParser, input_paths: bool = True) -> None:
    """Options of the commands that release files: key, lookup, report and the checks of level full.
    `input_paths`: the command reads files whose paths a report could name (not so the node)."""
    p.add_argument("--key-file", type=_path, help="secret key for pseudonyms and UIDs (default: per-user key)")
    p.add_argument("--report", type=_path,
                   help="write a JSON-lines report here: provenance, one line per input, summary (default: none)")
    p.add_argument("--lookup", type=_path,
                   help="full: CSV of original,new PatientIDs (default: every PatientID gets a keyed pseudonym)")
    p.add_argument("--quarantine", type=_path,
                   help="full: write files held back by a check here (default: they are not written)")
    p.add_argument("--no-residual-check", action="store_true",
                   help="full: do not search outputs for their inputs' identifying values")
    p.add_argument("--allow-burned-in", action="store_true",
                   help="full: release US/SC/OT/... images that may show burned-in text (after checking them)")
    if input_paths:
        p.add_argument("--report-paths", action="store_true",
                       help="full: name inputs in the report by their paths, which often hold names and IDs: such a "
                            "report is identifiable (default: a keyed token per input, as in the run journal)")
    p.add_argument("--clean-pixels", nargs="?", const="phi", default="", choices=MODES, metavar="MODE",
                   help="full: find burned-in text by OCR, redact PHI text (strict: all text; all: every image; "
                        "PS3.15 113101); needs the ocr extra (default: off; phi when given without a MODE)")


def _size(text: str) -> int:
    """A size in bytes: a number, optionally with a K, M or G suffix (powers of 1024)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    number, unit = text.strip().upper().rstrip("B"), ""
    if number[-1:] in units:
        number, unit = number[:-1], number[-1]
    try:
        value = int(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("a size must be positive")
    return value


def _port(text: str) -> int:
    """A TCP port to listen on: 1 to 65535, or 0 for any free port."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("port must be 0-65535 (0: any free port)")
    return port


def _options(args: argparse.Namespace, key: bytes | None = None, lookup: dict[str, str] | None = None) -> Options:
    checks = {}
    if args.command in ("anonymize", "serve", "send"):
        checks = {"residual_check": not args.no_residual_check, "allow_burned_in": args.allow_burned_in,
                  "quarantine": args.quarantine, "clean_pixels": args.clean_pixels}
        if args.clean_pixels:
            ocr.require()  # a missing extra is a usage error before any file is read
    return Options(
        level=Level(args.level),
        key=key,
        lookup=lookup or {},
        shift_dates=args.shift_dates,
        clean_descriptors=args.clean_descriptors,
        retain_patient_characteristics=args.retain_patient_characteristics,
        retain_device_identity=args.retain_device_identity,
        retain_safe_private=not args.no_safe_private,
        cap_ages=getattr(args, "cap_ages", False),
        **checks,
    )


# The options that mean something only at level full, by their argparse name.
# (found from outside: --key-file below full was taken and not read, a missing file or a folder too)
FULL_ONLY = ("key_file", "shift_dates", "clean_descriptors", "retain_patient_characteristics",
             "retain_device_identity", "no_safe_private", "lookup", "quarantine", "allow_burned_in",
             "no_residual_check", "report_paths", "mapping", "clean_pixels")


def _check_level(args: argparse.Namespace, inferred: bool = False) -> None:
    """Refuse an option of level full at another level: silently ignoring it would surprise.
    A level still to be read from the files (verify) is checked once it is known (`inferred`)."""
    if getattr(args, "level", Level.FULL.value) in (Level.FULL.value, None):
        if getattr(args, "dicom_only", False):
            raise UsageError("--dicom-only: only at --level anonymize or original (full never releases a file "
                             "that is not DICOM)")
        return
    given = [f"--{name.replace('_', '-')}" for name in FULL_ONLY if getattr(args, name, None) not in (None, False, "")]
    if given:
        now = f"the files name level {args.level}" if inferred else f"this run is at level {args.level}"
        raise UsageError(f"{', '.join(given)}: only at --level full ({now})")


def _check_writable(path: Path, what: str, folder: bool) -> None:
    """Refuse, before any work, an output, report or quarantine that cannot be written: name the path and why.

    Nothing is created: a probe file, made and removed at once in the nearest folder that exists, proves that
    folder takes files, whoever runs (permission bits do not bind root; a read-only mount binds everyone).
    """
    if folder and path.exists() and not path.is_dir():
        raise UsageError(f"the {what} {path} is an existing file, not a folder")
    if not folder and path.is_dir():
        raise UsageError(f"the {what} {path} is a folder, not a file")
    if not folder and path.exists():
        if stat.S_ISFIFO(path.stat().st_mode):  # (an open here would wait for a reader: its writer opens it)
            return
        if path.stat().st_nlink > 1:  # (found from outside: a hard link to an input or an output was written over)
            raise UsageError(f"the {what} {path} is a file with other hard links (another name of a file of the "
                             "run, maybe): name a new file")
        try:
            open(path, "a").close()  # appending nothing leaves the file as it is
        except OSError as exc:
            raise UsageError(f"cannot write the {what} {path}: {exc.strerror or type(exc).__name__}") from None
        return
    place = (path if folder else path.parent).absolute()
    existing = next(p for p in (place, *place.parents) if p.exists())
    if not existing.is_dir():
        raise UsageError(f"cannot write the {what} {path}: {existing} is a file, not a folder")
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        # (its path and the folder that refused: found from outside, "in /proc" alone for /proc/nope/r.jsonl)
        raise UsageError(f"cannot write the {what} {path}: {existing} takes no new file "
                         f"({exc.strerror or type(exc).__name__})") from None


def _resolve_preset(args: argparse.Namespace) -> None:
    """Turn `--preset NAME` into the level and switches it stands for (each added to what the user chose)."""
    preset = getattr(args, "preset", None)
    if not preset:
        return
    flags = (a.split("=", 1)[0] for a in getattr(args, "argv", []))
    chosen = any(f.startswith("--le") and "--level".startswith(f) for f in flags)  # argparse takes "--lev" too
    if chosen and Level(args.level) is not Level.FULL:  # the default level gives way; a level asked for does not
        raise UsageError(f"--preset {preset} is a preset of the full level, not of --level {args.level}")
    args.level = Level.FULL.value
    for name, on in PRESETS[preset].items():
        setattr(args, name, getattr(args, name, False) or on)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 all released, 1 some file not released, 2 usage error). Stops are
    handled from the first step (a Ctrl-C while the arguments are read is a KeyboardInterrupt raised to the
    caller: nothing was done), and the handlers before are put back at the end."""
    with contextlib.suppress(ValueError):  # only the main thread may set handlers (main may run elsewhere)
        stops.install()
    stdout, sys.stdout = sys.stdout, _NamedStdout(sys.stdout)
    try:
        return _command(argv)
    finally:
        sys.stdout = stdout
        with contextlib.suppress(ValueError):
            stops.uninstall()


def _command(argv: list[str] | None) -> int:
    try:
        args, unknown = _parser().parse_known_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and EXIT_USAGE
    if unknown:  # (found from outside: said by the top parser, which pointed to its own help, not the command's)
        command = f"neuroanon {args.command}"
        print(f"{command}: unrecognized arguments: {' '.join(unknown)} (see {command} --help)", file=sys.stderr)
        return EXIT_USAGE
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if _is_stdout(getattr(args, "report", None)):  # (main puts standard output back)
        sys.stdout = sys.stderr
    _quiet_pydicom()
    try:
        _resolve_preset(args)
        _check_level(args)
        code = _run(args)
        sys.stdout.flush()  # here, not at exit: a closed pipe must be met inside this handler
        return code
    except RunStopped as exc:
        print(_shown(f"neuroanon: {exc}"), file=sys.stderr)
        return 1
    except NeuroanonError as exc:
        print(_shown(f"neuroanon: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM or SIGHUP (Terminated): the run stopped cleanly
        signum = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
        with contextlib.suppress(OSError):  # (after SIGHUP the terminal may be gone)
            print(f"neuroanon: {_stopped(args, signum)}", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:
        # The reader went away (`neuroanon explain | head`): stop quietly, as other command-line tools do.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # the machine refused (disk, permissions): one line, the path and the cause
        where = f"{exc.filename}: " if exc.filename else ""
        if exc.filename == _STDOUT:
            _silence_stdout()
        print(_shown(f"neuroanon: {where}{exc.strerror or type(exc).__name__}"), file=sys.stderr)
        return 1


def _stopped(args: argparse.Namespace, signum: int) -> str:
    """What a command stopped by `signum` says: a run, that the same command resumes it; a dry run, that it wrote
    nothing (found from outside: it was told to resume, with nothing to resume)."""
    said = f"stopped by {signal.Signals(signum).name}"
    if getattr(args, "dry_run", False):
        return f"dry run {said}; nothing was written"
    return f"{said}; run the same command again to resume" if args.command == "anonymize" else said


_STDOUT = "standard output"


class _NamedStdout:
    """Standard output whose errors name it (a print names no file: `> /dev/full`, a full disk)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError as exc:
            exc.filename = _STDOUT
            raise

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as exc:
            exc.filename = _STDOUT
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _is_stdout(path: Path | None) -> bool:
    """Whether `path` names standard output's file (`--report /dev/stdout`): the report's lines are then all it
    gets, and what would be printed goes to standard error (found from outside: with standard output a file, the
    summary was written over the report's first lines)."""
    if path is None:
        return False
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (in-process tests)
        pass


def _run(args: argparse.Namespace) -> int:
    if args.command == "explain":
        print(render_rules(explain(Level(args.level), _options(args))))
        return 0
    if args.command == "demo":
        from .demo import run_demo

        if args.output is not None:
            _check_demo_folder(args.output)
        return run_demo(args.output or Path(tempfile.mkdtemp(prefix="neuroanon-demo-")))
    if args.command == "verify":
        return _verify(args)
    if args.command == "key":
        return _key(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "send":
        return _send(args)
    return _anonymize(args)


def _key(args: argparse.Namespace) -> int:
    """Create a key (never over an existing one), or show an existing key's fingerprint."""
    path = args.key_file or default_key_path()
    if args.show_fingerprint:
        print(f"{path}: fingerprint {key_fingerprint(load_key(path))}")
        return 0
    if path.exists():
        raise UsageError(f"the key file {path} exists already and is never overwritten; "
                         "see its fingerprint with --show-fingerprint")
    key = create_key(path)
    print(f"{path}: new key (mode 0600), fingerprint {key_fingerprint(key)}. Keep it secret and keep it: the same "
          "key gives the same pseudonyms and UIDs in later runs.")
    return 0


def _release_checks(args: argparse.Namespace) -> None:
    """The paths of a command that releases files do not clash; its report and quarantine can be written."""
    from .pipeline import check_name

    for what, written in (("report", args.report), ("mapping file", getattr(args, "mapping", None)),
                          ("quarantine", args.quarantine)):
        if written is not None:
            check_name(written, what)
    _check_run_paths(inputs=getattr(args, "inputs", []), output=getattr(args, "output", None), report=args.report,
                     mapping=getattr(args, "mapping", None), quarantine=args.quarantine,
                     key=args.key_file or default_key_path(), lookup=args.lookup)
    if args.report is not None:
        _check_writable(args.report, "report", folder=False)
    if args.quarantine is not None:
        _check_writable(args.quarantine, "quarantine", folder=True)


def _check_run_paths(inputs: list[Path], output: Path | None, report: Path | None, mapping: Path | None,
                     quarantine: Path | None, key: Path, lookup: Path | None) -> None:
    """Refuse a report or mapping that is another path of the run or lies inside one (symlinks resolved, hard
    links too): it would overwrite the key, the lookup file or an input, or be lost in the output, or (the
    mapping's original IDs) be released with it. A lookup that is also the mapping would change as the run goes,
    so that the run could not be resumed. The key file is the default one when none is given: any run could
    overwrite it. A key or lookup file inside an input would be read as one, and copied out below full."""
    from .journal import journal_path, work_path

    places: list[tuple[str, Path | None]] = [
        ("key file", key), ("lookup file", lookup), ("output", output), ("quarantine", quarantine),
        ("report", report), ("mapping", mapping), *(("input", given) for given in inputs)]
    if output is not None:  # (found from outside: a report written over the journal, a lost resume)
        places += [("run's journal", journal_path(_real(output))), ("run's work folder", work_path(_real(output)))]
    if output is not None and output.suffix.lower() == ".zip":
        places.append(("unfinished output", partial_zip(output)))
    for what, written in (("report", report), ("mapping", mapping)):
        if written is not None:
            _check_apart(what, written, places)
    for what, read in (("key file", key), ("lookup file", lookup)):  # (found from outside: a key copied out)
        if read is not None and _seen(read):
            _check_apart(what, read, [("input", given) for given in inputs])


def _seen(path: Path) -> bool:
    """Whether `path` exists as far as this user can tell: one in a folder it cannot enter cannot be read, as an
    input either (found from outside: the default key's folder, unreadable, failed a run that uses no key)."""
    try:
        return path.exists()
    except OSError:
        return False


def _check_apart(what: str, written: Path, places: list[tuple[str, Path | None]]) -> None:
    """Refuse a file to write (`what`) that is one of `places` or lies inside one."""
    for name, place in places:
        if place is None or place is written:
            continue
        if _real(written) == _real(place) or _same_file(written, place):
            raise UsageError(f"the {what} {written} is the {name} {place}; name another file")
        if _real(written).is_relative_to(_real(place)):
            raise UsageError(f"the {what} {written} is inside the {name} {place}; name a file outside it")


def _real(path: Path) -> Path:
    """`path` with its symlinks resolved (as far as it exists)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        raise UsageError(f"cannot follow the symlinks of {path}") from None


def _same_file(a: Path, b: Path) -> bool:
    """Whether two existing paths are hard links to one file."""
    try:
        return a.samefile(b)
    except OSError:  # one of them does not exist (yet)
        return False


def _run_info(args: argparse.Namespace, options: Options) -> RunInfo:
    """The command line for the report; at full (without --report-paths) the inputs' paths are left out."""
    clear = options.level is not Level.FULL or getattr(args, "report_paths", False)
    inputs = {Path(p) for p in getattr(args, "inputs", [])}
    command = ["neuroanon", *(a if clear or Path(a) not in inputs else "<input>" for a in args.argv)]
    return RunInfo(tuple(command), clear_paths=getattr(args, "report_paths", False))


def _release_settings(args: argparse.Namespace, create: bool = True) -> Options:
    """The options of a command that releases files, with the key (created at full if missing, unless not
    `create`: then a throwaway key stands in, and says so)."""
    lookup = _lookup(args.lookup) if args.lookup else None  # before a key is made: a bad table stops the run
    key = None
    if Level(args.level) is Level.FULL and not create and args.key_file is None and not default_key_exists():
        print("neuroanon: no key yet: this dry run uses a throwaway key, so the output names it shows will "
              "differ from a real run's", file=sys.stderr)
        key = secrets.token_bytes(KEY_BYTES)
    elif Level(args.level) is Level.FULL:
        key, path, created = load_or_create_key(args.key_file)
        if created:
            print(f"neuroanon: created a new key at {path} (mode 0600, fingerprint {key_fingerprint(key)}). Keep it "
                  "secret and keep it: the same key gives the same pseudonyms and UIDs in later runs.",
                  file=sys.stderr)
    return _options(args, key, lookup)


def _lookup(path: Path) -> dict[str, str]:
    """The lookup table; one line on the terminal when it gives one new ID to several originals."""
    shared: list[tuple[int, int]] = []
    table = load_lookup(path, on_shared=lambda first, line: shared.append((first, line)))
    if shared:
        lines = ", ".join(f"{a} and {b}" for a, b in shared[:5]) + (", ..." if len(shared) > 5 else "")
        print(f"neuroanon: the lookup file {path} gives one new ID to more than one original ID (lines {lines}): "
              "their files share one subject", file=sys.stderr)
    return table


def _anonymize(args: argparse.Namespace) -> int:
    from .pipeline import anonymize_tree, preview_tree

    _check_anonymize(args)
    options = replace(_release_settings(args, create=not args.dry_run), dicom_only=args.dicom_only)
    progress = _progress(args.inputs) if not args.quiet and sys.stderr.isatty() else None
    held_back = options.quarantine is None
    show = _Shown(args, progress, held_back)
    summary = Summary(options.level.value)
    try:
        if args.dry_run:
            preview_tree(args.inputs, args.output, options, report=args.report, on_record=show,
                         workers=args.workers, run=_run_info(args, options), follow_symlinks=args.follow_symlinks,
                         force=args.force, summary=summary)
        else:
            private = tuple(path for path in (args.key_file or default_key_path(), args.lookup) if path is not None)
            anonymize_tree(args.inputs, args.output, options, report=args.report, on_record=show,
                           workers=args.workers, dask_scheduler=args.dask_scheduler, run=_run_info(args, options),
                           mapping=args.mapping, follow_symlinks=args.follow_symlinks, force=args.force,
                           summary=summary, private=private)
    # A stop (SIGTERM too), or the terminal or a pipe gone (found from outside: with standard error's reader gone,
    # nothing was said on standard output): what was done before it, then why it stopped.
    except (RunStopped, KeyboardInterrupt, OSError):
        if progress is not None:
            progress.close()
        if summary.files:
            with contextlib.suppress(OSError):
                if args.dry_run:
                    print(f"dry run stopped: nothing was written to {args.output}; for the files it went through, "
                          "a run would give")
                print("\n".join(summary.lines(held_back)))
                if args.report:  # (found from outside: a stopped run did not say where its report was)
                    print(f"report: {args.report}")
                sys.stdout.flush()
        raise
    finally:
        if progress is not None:
            progress.close()  # (again after a stop: closing twice is harmless)
    _print_outcome(args, summary, held_back)
    if show.unlisted:
        print(_shown(f"neuroanon: {show.unlisted} file{'s' if show.unlisted > 1 else ''} written name a subject "
                     f"the lookup file {args.lookup} does not list: they got keyed pseudonyms"), file=sys.stderr)
    return _exit_code(summary, args.inputs)


def _exit_code(summary: Summary, inputs: list[Path]) -> int:
    """The run's exit status; 2, with a line, for inputs that held no file at all (found from outside: an empty
    folder, an unmounted share say, gave 0, "every DICOM file was released", as verify gives 2)."""
    if summary.files:
        return summary.exit_code
    print(_shown(f"neuroanon: no file found in {', '.join(str(p) for p in inputs)}"), file=sys.stderr)
    return 2


def _check_demo_folder(folder: Path) -> None:
    """A folder for the demo: new, empty, or one an earlier demo made (`demo_folder`)."""
    from .demo import demo_folder

    _check_writable(folder, "demo folder", folder=True)
    if not demo_folder(folder):
        raise UsageError(f"the demo folder {folder} is not empty and no demo made it; name a new or empty folder")


def _check_workers(workers: int) -> None:
    """Refuse a number of worker processes this machine cannot run: each holds some 50 to 130 MB, and more than
    four a core only wait on each other (a run of 100,000 asked for once forked until memory ran out)."""
    most = max_workers()
    if not 1 <= workers <= most:
        raise UsageError(f"--workers needs a number from 1 to {most} (four per CPU core, and 32 on a machine of "
                         "fewer than eight)")


def max_workers() -> int:
    return max(32, 4 * (os.cpu_count() or 1))


def _check_run_workers(args: argparse.Namespace) -> None:
    """--workers checked, and set to every core where not given; not with --dask-scheduler (found from outside: it
    was left unread, the cluster's workers preparing the files)."""
    if args.workers is not None and args.dask_scheduler:
        raise UsageError("--workers sets this machine's processes; with --dask-scheduler the cluster's workers "
                         "prepare the files: leave --workers out")
    args.workers = (os.cpu_count() or 1) if args.workers is None else args.workers
    _check_workers(args.workers)


def _check_anonymize(args: argparse.Namespace) -> None:
    """Refuse a combination of options, or an input or output, that the run could not honour."""
    from .journal import check_begun, check_no_node
    from .pipeline import check_paths

    _check_run_workers(args)
    zipped = args.output.suffix.lower() == ".zip"
    if args.dicomdir:
        _check_dicomdir(args.inputs, zipped, Level(args.level))
    if args.dry_run and (args.dicomdir or args.mapping or args.dask_scheduler):
        raise UsageError("--dry-run writes nothing: not with --dicomdir, --mapping or --dask-scheduler")
    check_paths(args.inputs, args.output, args.quarantine)
    _release_checks(args)
    _check_writable(args.output, "output", folder=not zipped)
    if zipped and args.output.exists() and not partial_zip(args.output).exists() and not args.force:
        # A folder no run began is refused (journal.py); so is a file in an archive's place, a finished archive too.
        raise UsageError(f"the output {args.output} exists and no unfinished neuroanon run is writing it; choose a "
                         "new name, or add --force to replace it")
    # What the run itself would refuse later, refused before a key or anything else is made (found from outside:
    # a key was made for a run then refused its output folder).
    check_no_node(args.output)
    if not zipped and not args.force:
        check_begun(args.output)
    if args.report is not None and held_elsewhere(args.report):
        raise UsageError(report_in_use(args.report))
    if args.mapping is not None:
        if held_elsewhere(args.mapping):
            raise UsageError(mapping_in_use(args.mapping))
        if args.mapping.exists():
            known = load_lookup(args.mapping, "mapping file")  # a table that cannot be extended stops the run unbegun
            if args.key_file is None and not default_key_exists():
                lookup = load_lookup(args.lookup) if args.lookup else {}
                check_mapping(args.mapping, known, lookup.get)  # the key this run would make made none of it
        _check_writable(args.mapping, "mapping", folder=False)


def _check_dicomdir(inputs: list[Path], zipped: bool, level: Level) -> None:
    if zipped:
        raise UsageError("--dicomdir needs a folder output, not a zip archive")
    copied = inputs[0] / "DICOMDIR" if len(inputs) == 1 else None  # (the one input's is mirrored to the output's)
    if level is Level.ORIGINAL and copied is not None and copied.is_file():
        # (found from outside: the copy was reported written, then replaced without a word)
        raise UsageError(f"--dicomdir would replace {copied}, which level original copies as it is; leave out "
                         "--dicomdir to keep it")


class _Shown:
    """What the terminal shows of each committed file: progress, and a line for each file not released (or, in
    a dry run, for every file)."""

    def __init__(self, args: argparse.Namespace, progress: Any, held_back: bool) -> None:
        self.args, self.progress, self.held_back, self.files = args, progress, held_back, 0
        self.unlisted = 0  # with --lookup: files written whose subject is not in it (a keyed pseudonym)

    def __call__(self, record: Record, size: int) -> None:
        self.files += 1
        if self.args.lookup and record.status is Status.WRITTEN and record.dicom:
            self.unlisted += any(c.keyword == "PatientID" and c.action == Op.PSEUDONYM.value for c in record.changes)
        if self.progress is not None:
            self.progress.set_postfix_str(f"{self.files} files", refresh=False)
            self.progress.update(size)
        if self.args.quiet:
            return
        if self.args.dry_run:
            _say(self.progress, _would(record, self.held_back), sys.stdout)
        elif record.status in (Status.FAILED, Status.QUARANTINED):
            line = f"{status_word(record.status, self.held_back)}: {record.input}: {record.reason}"
            _say(self.progress, line, sys.stderr)


def _print_outcome(args: argparse.Namespace, summary: Summary, held_back: bool) -> None:
    """The summary, and where the mapping, the DICOMDIR and the report went."""
    if args.dry_run:
        print(f"dry run: nothing was written to {args.output}; a run would give")
    print("\n".join(summary.lines(held_back)))
    if args.mapping is not None:
        print(f"mapping: {args.mapping}")
    if args.dicomdir:
        from .dicomdir import index_files

        index = index_files(args.output)
        for relative, why in index.left_out:
            print(_shown(f"not in the DICOMDIR: {relative}: {why}"), file=sys.stderr)
        print(f"DICOMDIR: {index.path} ({index.indexed} files indexed, {len(index.left_out)} left out)")
    if args.report:
        print(f"report: {args.report}")


def _say(progress: Any, line: str, stream: Any) -> None:
    """A line on `stream`, above the progress bar when there is one."""
    if progress is None:
        print(_shown(line), file=stream)
    else:
        progress.write(_shown(line), file=stream)


def _shown(line: str) -> str:
    """`line` with what a terminal would act on written as escapes: a file may be named with a newline or an
    escape sequence, which would break the line or reach the terminal."""
    if line.isprintable():
        return line
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in unicode_name(line))


def _would(record: Record, held_back: bool) -> str:
    """What a dry run says of one input."""
    if record.status is Status.WRITTEN:
        reason = f" ({record.reason})" if record.reason else ""
        return f"would write: {record.input} -> {record.output}{reason}"
    verb = {Status.SKIPPED: "skip", Status.FAILED: "fail",
            Status.QUARANTINED: "hold back" if held_back else "quarantine"}[record.status]
    return f"would {verb}: {record.input}: {record.reason}"


def _progress(inputs: list[Path]) -> Any:
    """A progress bar over the inputs' bytes (MB/s and ETA), counting files; only on a terminal."""
    from tqdm import tqdm

    total = 0
    for root in inputs:
        for folder, _, names in os.walk(root) if root.is_dir() else [(str(root.parent), [], [root.name])]:
            for name in names:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(folder, name)).st_size
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, dynamic_ncols=True,
                desc="anonymizing")


def _serve(args: argparse.Namespace) -> int:
    """Run the node until SIGTERM or SIGINT; then finish what is in flight and stop."""
    import signal

    from .journal import node_work_path
    from .node import Node, NodeConfig, Retry, client_tls, incoming, parse_peer, server_tls
    from .pipeline import check_name

    # (found from outside: a name too long for its file system ended in exit 1 with Python's words)
    check_name(args.output, "output")
    _check_writable(args.output, "output", folder=True)
    if args.work is None:
        check_name(node_work_path(args.output), "node's work folder (named after the output)")
    else:  # (found from outside: an existing file given ended in exit 1, "File exists")
        check_name(args.work, "node's work folder")
        _check_writable(args.work, "node's work folder", folder=True)
    _release_checks(args)
    options = _release_settings(args)
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("TLS needs both --tls-cert and --tls-key")
    if args.tls_ca is not None and args.tls_cert is None:
        raise UsageError("--tls-ca needs --tls-cert and --tls-key")
    _check_workers(args.workers)
    retry = Retry(*_retry_settings(args))
    if args.forward_tls_ca is not None and args.forward is None:
        raise UsageError("--forward-tls-ca needs --forward")
    # (found from outside: `--forward ''`, an unset variable's value say, stored instead of forwarding)
    forward = parse_peer(args.forward) if args.forward is not None else None
    config = NodeConfig(
        output=args.output, options=options, ae_title=args.ae_title, host=args.host, port=args.port,
        work=args.work, forward=forward,
        forward_tls=client_tls(args.forward_tls_ca, ca_option="--forward-tls-ca") if args.forward_tls_ca else None,
        allow_calling=tuple(args.allow_calling),
        tls=server_tls(args.tls_cert, args.tls_key, args.tls_ca) if args.tls_cert else None,
        max_associations=args.max_associations, max_instance_size=args.max_instance_size, workers=args.workers,
        retry=retry, report=args.report,
        run=_run_info(args, options),
    )
    _outside_node_folders(config, key=args.key_file or default_key_path(), lookup=args.lookup, report=args.report)
    stop = threading.Event()
    on_signal = _setting_once(stop)
    for signum in stops.STOPS:
        signal.signal(signum, on_signal)
    _log_to_stderr("neuroanon.node")
    # This process is the node's own: pynetdicom writes arriving instances to the temporary folder, so that is
    # a private one in the work folder rather than the shared /tmp (emptied by the node once it holds the lock).
    tempfile.tempdir = str(incoming(config.work_dir))
    node = Node(config, on_broken=stop.set)
    # (pynetdicom's threads, say, when the disk fills while an instance arrives)
    threading.excepthook = functools.partial(_thread_error, node)
    broken = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no library warning (they can quote values) reaches the terminal
        host, port = node.start()
        try:
            where = f"forwarding to {forward}" if forward else f"storing in {args.output}"
            tls = ", TLS only" if config.tls else ""
            print(f"neuroanon: listening as {config.ae_title} on {host}:{port} (level {options.level}, {where}"
                  f"{tls}, {config.workers} workers); stop with SIGTERM or Ctrl-C", flush=True)
            _until_set(stop)
            broken = node.broken  # why it stopped: a dead worker, not a signal (which may end the workers too)
        finally:
            node.stop()
    # (found from outside: it left out what the destination took, which the log line said)
    print(f"neuroanon: stopped: {node.summary_line()}", flush=True)
    if node.unreported:  # (found from outside: exit 0, and not a word, though the report lacked their lines)
        print(f"neuroanon: {args.report}: the lines of {node.unreported} instances are not in the report (its disk "
              "was full; the log names each)", file=sys.stderr)
    if broken:
        print("neuroanon: a worker process died (killed, or out of memory); start the node again", file=sys.stderr)
    return 1 if broken or node.unreported else 0


def _retry_settings(args: argparse.Namespace) -> tuple[float, float, int]:
    """--retry-base, --retry-max and --max-attempts, each positive, the base no longer than the maximum, and
    given only with --forward (found from outside: taken without a word, which they change nothing without)."""
    given = [option for option, value in (("--retry-base", args.retry_base), ("--retry-max", args.retry_max),
                                          ("--max-attempts", args.max_attempts)) if value is not None]
    if given and args.forward is None:
        raise UsageError(f"{' and '.join(given)} only apply with --forward")
    base = 1.0 if args.retry_base is None else args.retry_base
    longest = 60.0 if args.retry_max is None else args.retry_max
    attempts = 10 if args.max_attempts is None else args.max_attempts
    if attempts < 1 or base <= 0 or longest <= 0:
        raise UsageError("--max-attempts, --retry-base and --retry-max must be positive")
    if base > longest:
        raise UsageError("--retry-base must not be longer than --retry-max")
    return base, longest, attempts


def _setting_once(stop: threading.Event) -> Callable[..., None]:
    """A signal handler that sets `stop` the first time only: a second signal that comes while `Event.set` holds
    its lock runs the handler inside it, and another `set` would wait on that lock for ever."""
    asked: list[bool] = []

    def handler(*_: object) -> None:
        if not asked:  # (noted before the set)
            asked.append(True)
            stop.set()

    return handler


def _until_set(stop: threading.Event) -> None:
    """Wait for `stop`, waking twice a second: a signal the kernel gives another thread is handled in this one
    only when it wakes (found from outside: 1 burst of stop signals in 12 left serve waiting for ever)."""
    while not stop.wait(0.5):
        pass


def _outside_node_folders(config: NodeConfig, **paths: Path | None) -> None:
    """Refuse a key, lookup or report file inside the node's output (released, or sent when forwarding) or its
    work folder (private, partly emptied at start)."""
    for what, path in paths.items():
        if path is None:
            continue
        for name, folder in (("output", config.output), ("work folder", config.work_dir)):
            if _real(path).is_relative_to(_real(folder)):
                raise UsageError(f"the {what} file {path} is inside the node's {name} {folder}; keep it outside")


def _thread_error(node: Node, args: threading.ExceptHookArgs) -> None:
    """A thread that ends on an error (pynetdicom's, for an association) says so in one line, not a traceback
    (which could quote a value); the node ends that association."""
    exc = args.exc_value
    cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else args.exc_type.__name__
    logging.getLogger("neuroanon.node").error("an association ended on an error (%s); its sender gets no status "
                                              "for the instance in hand and keeps it", cause)
    node.reader_failed(args.thread, cause.lower())


def _send(args: argparse.Namespace) -> int:
    from .node import check_ae_title, client_tls, parse_peer, send_tree

    peer = parse_peer(args.to)
    calling = check_ae_title(args.calling_ae)
    if args.tls_ca is None and (args.tls_cert or args.tls_key):
        raise UsageError("--tls-cert and --tls-key need --tls-ca")
    tls = client_tls(args.tls_ca, args.tls_cert, args.tls_key) if args.tls_ca else None
    _release_checks(args)
    options = _release_settings(args)

    def show(record: Record) -> None:
        if record.status in (Status.FAILED, Status.QUARANTINED):
            _say(None, f"{status_word(record.status, options.quarantine is None)}: {record.input}: {record.reason}",
                 sys.stderr)

    summary = Summary(options.level.value)

    def said() -> None:
        print("\n".join(summary.lines(options.quarantine is None)))
        print(f"sent to {peer}: {summary.counts.get(Status.WRITTEN.value, 0)}")
        if args.report:
            print(f"report: {args.report}")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            send_tree(args.inputs, peer, options, calling, tls, args.report, on_record=show,
                      run=_run_info(args, options), follow_symlinks=args.follow_symlinks, summary=summary)
    except (KeyboardInterrupt, OSError):  # a stop, or the terminal or a pipe gone: what was done, then why
        if summary.files:
            with contextlib.suppress(OSError):
                said()
                sys.stdout.flush()
        raise
    said()
    return _exit_code(summary, args.inputs)


def _log_to_stderr(name: str) -> None:
    """Our own log lines (counts and AE titles, never values) on stderr, once."""
    logger = logging.getLogger(name)
    if not any(getattr(h, "_neuroanon", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler._neuroanon = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _check_verify(args: argparse.Namespace) -> None:
    """Refuse what verify could not honour, before the scan; read the level from the files when not given, and
    at full the options they declare when none is given (a run with `--preset bids` checks as the preset)."""
    from .discover import why_missing
    from .verify import infer_marks

    for path in [*args.paths, *(args.against or [])]:
        if not path.exists():  # (found from outside: a loop of symlinks, a link to nothing said "not found")
            raise UsageError(f"{why_missing(path)}: {path}")
    if args.key_file and not args.against:
        raise UsageError("--key-file: only with --against (the key ties each output to its own original)")
    if args.json:  # (found from outside: written over an original)
        _check_apart("JSON file", args.json, [*(("checked path", p) for p in args.paths),
                                              *(("original", p) for p in args.against or []),
                                              *((("lookup file", args.lookup),) if args.lookup else ())])
        _check_writable(args.json, "JSON file", folder=False)
    args.declared = ""
    args.inferred = args.level is None
    if args.level is None:
        level, codes = infer_marks(args.paths)
        args.level = level.value
        _check_level(args, inferred=True)
        if level is Level.FULL and BASIC_PROFILE_CODE[0] in codes and not any(
                getattr(args, name) for name in _DECLARED.values()):
            for code, name in _DECLARED.items():
                setattr(args, name, code in codes if name != "no_safe_private" else code not in codes)
            given = [f"--{name.replace('_', '-')}" for name in _DECLARED.values() if getattr(args, name)]
            args.declared = " ".join(given)


# The options verify reads from the PS3.15 codes the files declare, by their argparse name.
_DECLARED = {"113107": "shift_dates", "113105": "clean_descriptors", "113108": "retain_patient_characteristics",
             "113109": "retain_device_identity", "113111": "no_safe_private"}


def _verify(args: argparse.Namespace) -> int:
    from .verify import load_originals, summary, verify

    _check_verify(args)
    options = _options(args, lookup=load_lookup(args.lookup) if args.lookup else None)
    key = load_key(args.key_file) if args.key_file else None
    originals = load_originals(args.against, options.level, key) if args.against else None
    if originals is not None and not originals.read:
        raise UsageError("--against: no DICOM original could be read in " + ", ".join(str(p) for p in args.against))
    if originals is not None and originals.unread:
        print(f"neuroanon: --against: {originals.unread} of {originals.read + originals.unread} DICOM originals "
              "could not be read; what they alone hold is not looked for", file=sys.stderr)
    results = list(verify(args.paths, options, originals, inferred=args.inferred))
    if not any(r.dicom or r.unread for r in results):  # (what could not be read is listed: it may be DICOM)
        raise UsageError("no DICOM file found in " + ", ".join(str(p) for p in args.paths))
    flagged = [r for r in results if r.findings]
    for result in flagged:
        for finding in result.findings:
            print(f"{_shown(result.shown)}\t{finding}")
    declared = f" with {args.declared} (as the files declare)" if args.declared else ""
    print(f"{len(results)} files checked at level {options.level}{declared}: "
          f"{len(flagged)} with findings, {len(results) - len(flagged)} clean")
    for name, files in summary(results).items():
        print(f"  {name}: {files} file{'s' if files != 1 else ''}")
    if args.json:
        _write_json(args.json, [{**r.as_dict(), "file": unicode_name(r.shown)} for r in results])
    return 1 if flagged else 0


def _write_json(path: Path, listed: list[dict[str, object]]) -> None:
    """verify's findings written to `path`, its folders made as the report's are; a write the machine refuses (a
    full disk, /dev/full) is a usage error naming the file, as the report's is (found from outside: "No space left
    on device" of no file, and exit 1, which says findings)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(listed, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the JSON file {path}: {os_cause(exc)}") from None


def _quiet_pydicom() -> None:
    """pydicom's log messages can quote element values; they never reach our terminal."""
    logging.getLogger("pydicom").propagate = False


if __name__ == "__main__":  # (`python -m neuroanon.cli`: the command, as `neuroanon` and `python -m neuroanon` run it)
    from neuroanon.__main__ import console

    console()
