"""The command line: a thin layer over the pipeline. `main(argv) -> int` is the whole interface."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from . import __version__
from .errors import NeuroanonError, RunStopped, Terminated, UsageError
from .keys import load_key, load_lookup, load_or_create_key
from .options import Level, Options
from .profile import explain, render_rules
from .report import Record, Status

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neuroanon", description="De-identify DICOM data (NiDB levels).")
    parser.add_argument("--version", action="version", version=f"neuroanon {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("anonymize", help="anonymize files and folders into an output folder")
    run.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    run.add_argument("--output", "-o", required=True, type=Path,
                     help="output folder, or a .zip archive (must not be inside an input)")
    _level_options(run)
    _release_options(run)
    run.add_argument("--workers", "-j", type=int, default=os.cpu_count() or 1,
                     help="processes to use (default: all cores); the output is the same for any number")
    run.add_argument("--dask-scheduler", metavar="ADDRESS",
                     help="prepare files on this Dask cluster (its workers must see the output at the same path)")
    run.add_argument("--dicomdir", action="store_true",
                     help="write a fresh DICOMDIR for the output (its files linked under NADICOM/ with PS3.10 IDs)")
    run.add_argument("--quiet", "-q", action="store_true", help="print only the summary")
    run.add_argument("--follow-symlinks", action="store_true",
                     help="follow symlinks inside the input folders (loops are not followed); without it they are "
                     "reported as skipped. Inputs named on the command line are always followed")
    run.add_argument("--force", action="store_true",
                     help="write into a non-empty output folder that no neuroanon run began")

    check = commands.add_parser("verify", help="scan a tree that should be clean; exit 1 if anything is found")
    check.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    check.add_argument("--against", nargs="+", type=Path, metavar="ORIGINALS",
                       help="the originals: their identifying values, UIDs and PatientIDs must not reappear")
    check.add_argument("--json", type=Path, help="also write the findings as JSON here")
    check.add_argument("--key-file", type=Path,
                       help="the key the output was made with: each file is checked against its own original")
    _level_options(check)

    show = commands.add_parser("explain", help="print what a level does, tag by tag")
    _level_options(show)

    serve = commands.add_parser("serve", help="run a DICOM node: receive instances (C-STORE), anonymize them, "
                                "store them or forward them")
    serve.add_argument("--ae-title", default="NEUROANON", help="this node's AE title (default: NEUROANON)")
    serve.add_argument("--port", type=int, required=True, help="TCP port to listen on (0: any free port)")
    serve.add_argument("--host", default="0.0.0.0",
                       help="address to listen on (default: all interfaces; 127.0.0.1 for this machine only)")
    serve.add_argument("--output", "-o", required=True, type=Path,
                       help="folder for anonymized instances; with --forward, the outbox they wait in until the "
                            "destination has them")
    _level_options(serve)
    _release_options(serve)
    serve.add_argument("--forward", metavar="AET@HOST:PORT", help="C-STORE every anonymized instance to this node")
    serve.add_argument("--forward-tls-ca", type=Path, metavar="FILE",
                       help="forward over TLS, trusting the destination's certificate if this CA signed it")
    serve.add_argument("--allow-calling", nargs="+", default=[], metavar="AET",
                       help="accept associations only from these calling AE titles")
    serve.add_argument("--tls-cert", type=Path, metavar="FILE", help="accept TLS only, with this certificate (PEM)")
    serve.add_argument("--tls-key", type=Path, metavar="FILE", help="the certificate's private key (PEM)")
    serve.add_argument("--tls-ca", type=Path, metavar="FILE",
                       help="with TLS: require senders to present a certificate this CA signed")
    serve.add_argument("--max-associations", type=int, default=10, help="concurrent associations (default: 10)")
    serve.add_argument("--max-instance-size", type=_size, metavar="SIZE",
                       help="refuse bigger instances (bytes, or with K, M, G suffix)")
    serve.add_argument("--work", type=Path, metavar="DIR",
                       help="private folder for the spool and failed forwards (default: beside the output, "
                            "'.<output>.neuroanon-node')")
    serve.add_argument("--retry-base", type=float, default=1.0, metavar="SECONDS",
                       help="first wait before retrying the forward destination; doubles up to --retry-max")
    serve.add_argument("--retry-max", type=float, default=60.0, metavar="SECONDS")
    serve.add_argument("--max-attempts", type=int, default=10,
                       help="refusals by the destination before an instance moves to the failed folder")

    send = commands.add_parser("send", help="anonymize files and send them to a DICOM node (C-STORE)")
    send.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    send.add_argument("--to", required=True, metavar="AET@HOST:PORT", help="the destination")
    send.add_argument("--calling-ae", default="NEUROANON", help="our AE title (default: NEUROANON)")
    _level_options(send)
    _release_options(send)
    send.add_argument("--tls-ca", type=Path, metavar="FILE",
                      help="send over TLS, trusting the destination's certificate if this CA signed it")
    send.add_argument("--tls-cert", type=Path, metavar="FILE", help="with --tls-ca: our client certificate (PEM)")
    send.add_argument("--tls-key", type=Path, metavar="FILE", help="the client certificate's private key (PEM)")

    demo = commands.add_parser("demo", help="make a synthetic study with fake PHI, anonymize it at full, compare")
    demo.add_argument("--output", "-o", type=Path, help="folder for the demo files (default: a temporary one)")
    return parser


def _level_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--level", choices=[lvl.value for lvl in Level], default=Level.ANONYMIZE.value)
    p.add_argument("--shift-dates", action="store_true",
                   help="full: shift dates by a keyed per-subject offset (PS3.15 113107) instead of 10000101")
    p.add_argument("--clean-descriptors", action="store_true",
                   help="full: keep descriptions, cleaned of identifying values (PS3.15 113105)")
    p.add_argument("--retain-patient-characteristics", action="store_true",
                   help="full: keep age, sex, size, weight (PS3.15 113108)")
    p.add_argument("--retain-device-identity", action="store_true",
                   help="full: keep station name, device serial numbers (PS3.15 113109)")
    p.add_argument("--no-safe-private", action="store_true",
                   help="full: remove every private element, the technical allow-list too")


def _release_options(p: argparse.ArgumentParser) -> None:
    """Options of the commands that release files: key, lookup, report and the checks of level full."""
    p.add_argument("--key-file", type=Path, help="secret key for pseudonyms and UIDs (default: per-user key)")
    p.add_argument("--report", type=Path, help="write a JSON-lines report here")
    p.add_argument("--lookup", type=Path, help="CSV of original,new PatientIDs (full level)")
    p.add_argument("--quarantine", type=Path,
                   help="full: write files held back by a check here (default: they are not written)")
    p.add_argument("--no-residual-check", action="store_true",
                   help="full: do not search outputs for their inputs' identifying values")
    p.add_argument("--allow-burned-in", action="store_true",
                   help="full: release US/SC/OT/... images that may show burned-in text (after checking them)")


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


def _options(args: argparse.Namespace, key: bytes | None = None, lookup: dict[str, str] | None = None) -> Options:
    checks = {}
    if args.command in ("anonymize", "serve", "send"):
        checks = {"residual_check": not args.no_residual_check, "allow_burned_in": args.allow_burned_in,
                  "quarantine": args.quarantine}
    return Options(
        level=Level(args.level),
        key=key,
        lookup=lookup or {},
        shift_dates=args.shift_dates,
        clean_descriptors=args.clean_descriptors,
        retain_patient_characteristics=args.retain_patient_characteristics,
        retain_device_identity=args.retain_device_identity,
        retain_safe_private=not args.no_safe_private,
        **checks,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 all released, 1 some file not released, 2 usage error)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and EXIT_USAGE
    _quiet_pydicom()
    with contextlib.suppress(ValueError):  # only the main thread may set handlers (main may run elsewhere)
        signal.signal(signal.SIGTERM, _terminated)
    try:
        if args.command == "explain":
            print(render_rules(explain(Level(args.level), _options(args))))
            return 0
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(args.output or Path(tempfile.mkdtemp(prefix="neuroanon-demo-")))
        if args.command == "verify":
            return _verify(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "send":
            return _send(args)
        return _anonymize(args)
    except RunStopped as exc:
        print(f"neuroanon: {exc}", file=sys.stderr)
        return 1
    except NeuroanonError as exc:
        print(f"neuroanon: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated): the run stopped cleanly
        how = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        then = "; run the same command again to resume" if args.command == "anonymize" else ""
        print(f"neuroanon: stopped by {how}{then}", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
    finally:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _terminated(signum: int, frame: object) -> None:
    raise Terminated


def _release_settings(args: argparse.Namespace) -> Options:
    """The options of a command that releases files, with the key (created at full if missing)."""
    key = None
    if Level(args.level) is Level.FULL:
        key, path, created = load_or_create_key(args.key_file)
        if created:
            print(f"neuroanon: created a new key at {path} (mode 0600). Keep it secret and keep it: the same "
                  "key gives the same pseudonyms and UIDs in later runs.", file=sys.stderr)
    lookup = load_lookup(args.lookup) if args.lookup else None
    return _options(args, key, lookup)


def _anonymize(args: argparse.Namespace) -> int:
    from .pipeline import anonymize_tree

    options = _release_settings(args)

    if args.workers < 1:
        raise UsageError("--workers needs a number of at least 1")
    if args.dicomdir and args.output.suffix.lower() == ".zip":
        raise UsageError("--dicomdir needs a folder output, not a zip archive")
    progress = _progress(args.inputs) if not args.quiet and sys.stderr.isatty() else None

    files = 0

    def show(record: Record, size: int) -> None:
        nonlocal files
        files += 1
        if progress is not None:
            progress.set_postfix_str(f"{files} files", refresh=False)
            progress.update(size)
        if not args.quiet and record.status in (Status.FAILED, Status.QUARANTINED):
            line = f"{record.status}: {record.input}: {record.reason}"
            if progress is None:
                print(line, file=sys.stderr)
            else:
                progress.write(line, file=sys.stderr)

    try:
        summary = anonymize_tree(args.inputs, args.output, options, report=args.report, on_record=show,
                                 workers=args.workers, dask_scheduler=args.dask_scheduler,
                                 follow_symlinks=args.follow_symlinks, force=args.force)
    finally:
        if progress is not None:
            progress.close()
    print(summary.line())
    if args.dicomdir:
        from .dicomdir import index_files

        index = index_files(args.output)
        for relative, why in index.left_out:
            print(f"not in the DICOMDIR: {relative}: {why}", file=sys.stderr)
        print(f"DICOMDIR: {index.path} ({index.indexed} files indexed, {len(index.left_out)} left out)")
    if args.report:
        print(f"report: {args.report}")
    return summary.exit_code


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
    import threading

    from .node import Node, NodeConfig, Retry, client_tls, parse_peer, private_incoming, server_tls

    options = _release_settings(args)
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("TLS needs both --tls-cert and --tls-key")
    if args.tls_ca is not None and args.tls_cert is None:
        raise UsageError("--tls-ca needs --tls-cert and --tls-key")
    if args.max_attempts < 1 or args.retry_base <= 0 or args.retry_max <= 0:
        raise UsageError("--max-attempts, --retry-base and --retry-max must be positive")
    if args.forward_tls_ca is not None and args.forward is None:
        raise UsageError("--forward-tls-ca needs --forward")
    forward = parse_peer(args.forward) if args.forward else None
    config = NodeConfig(
        output=args.output, options=options, ae_title=args.ae_title, host=args.host, port=args.port,
        work=args.work, forward=forward,
        forward_tls=client_tls(args.forward_tls_ca) if args.forward_tls_ca else None,
        allow_calling=tuple(args.allow_calling),
        tls=server_tls(args.tls_cert, args.tls_key, args.tls_ca) if args.tls_cert else None,
        max_associations=args.max_associations, max_instance_size=args.max_instance_size,
        retry=Retry(args.retry_base, args.retry_max, args.max_attempts), report=args.report,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    _log_to_stderr("neuroanon.node")
    # This process is the node's own: pynetdicom writes arriving instances to the temporary folder, so that is
    # a private one in the work folder rather than the shared /tmp.
    tempfile.tempdir = str(private_incoming(config.work_dir))
    node = Node(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no library warning (they can quote values) reaches the terminal
        host, port = node.start()
        try:
            where = f"forwarding to {forward}" if forward else f"storing in {args.output}"
            tls = ", TLS only" if config.tls else ""
            print(f"neuroanon: listening as {config.ae_title} on {host}:{port} (level {options.level}, {where}"
                  f"{tls}); stop with SIGTERM or Ctrl-C", flush=True)
            stop.wait()
        finally:
            node.stop()
    print(f"neuroanon: stopped: {node.totals.line(forward is not None)}", flush=True)
    return 0


def _send(args: argparse.Namespace) -> int:
    from .node import check_ae_title, client_tls, parse_peer, send_tree

    peer = parse_peer(args.to)
    calling = check_ae_title(args.calling_ae)
    if args.tls_ca is None and (args.tls_cert or args.tls_key):
        raise UsageError("--tls-cert and --tls-key need --tls-ca")
    tls = client_tls(args.tls_ca, args.tls_cert, args.tls_key) if args.tls_ca else None
    options = _release_settings(args)

    def show(record: Record) -> None:
        if record.status in (Status.FAILED, Status.QUARANTINED):
            print(f"{record.status}: {record.input}: {record.reason}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = send_tree(args.inputs, peer, options, calling, tls, args.report, on_record=show)
    print(f"{summary.line()}; sent to {peer}: {summary.counts.get(Status.WRITTEN.value, 0)}")
    if args.report:
        print(f"report: {args.report}")
    return summary.exit_code


def _log_to_stderr(name: str) -> None:
    """Our own log lines (counts and AE titles, never values) on stderr, once."""
    logger = logging.getLogger(name)
    if not any(getattr(h, "_neuroanon", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler._neuroanon = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _verify(args: argparse.Namespace) -> int:
    from .verify import load_originals, verify

    for path in [*args.paths, *(args.against or [])]:
        if not path.exists():
            raise UsageError(f"not found: {path}")
    options = _options(args)
    key = load_key(args.key_file) if args.key_file else None
    originals = load_originals(args.against, options.level, key) if args.against else None
    results = list(verify(args.paths, options, originals))
    flagged = [r for r in results if r.findings]
    for result in flagged:
        for finding in result.findings:
            print(f"{result.path}\t{finding}")
    print(f"{len(results)} files checked at level {options.level}: "
          f"{len(flagged)} with findings, {len(results) - len(flagged)} clean")
    if args.json:
        args.json.write_text(json.dumps([r.as_dict() for r in results], indent=1) + "\n", encoding="utf-8")
    return 1 if flagged else 0


def _quiet_pydicom() -> None:
    """pydicom's log messages can quote element values; they never reach our terminal."""
    logging.getLogger("pydicom").propagate = False


def console() -> None:
    """Entry point for the `neuroanon` script."""
    sys.exit(main())


if __name__ == "__main__":
    console()
