"""The DICOM node with real peers on loopback: dcmtk's echoscu and storescu, pynetdicom, and the CLI as a process.

What the node stores must be what `anonymize` writes for the same files, level and key; nothing identifying may
reach a log; every instance is stored once whatever the concurrency; the gates (allow-list, TLS, limits) hold.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import UID, ExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, MRImageStorage, Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from neuroanon import pipeline
from neuroanon.context import RunContext
from neuroanon.discover import InputFile
from neuroanon.keys import key_fingerprint
from neuroanon.node import Node, NodeConfig, Peer, Retry, client_tls, scp, server_tls
from neuroanon.node.peer import MAX_CONTROL_PDU_BYTES, MAX_PDU_BYTES
from neuroanon.node.scu import UNREACHABLE, Outcome, send_files
from neuroanon.options import Level, Options
from neuroanon.pipeline import Prepared, anonymize_tree
from neuroanon.sample import make_dataset, planted_values

from .helpers import files_under, searchable_bytes
from .peers import (
    DCMTK_ENV,
    LOOPBACK,
    NODE_AET,
    TIMEOUT,
    Serve,
    by_sop_instance,
    dataset_bytes,
    echoscu,
    many,
    storescu,
    storescu_args,
    study,
    wait_until,
)
from .tools import require_tool

KEY = b"node-test-key-0123456789abcdef!!"
META_OF_THE_WRITER = {0x00020000, 0x00020012, 0x00020013, 0x00020016}  # group length, implementation, source AE


@contextmanager
def running(output: Path, **settings: object) -> Iterator[Node]:
    settings.setdefault("options", Options(level=Level.ANONYMIZE, key=KEY))
    node = Node(NodeConfig(output=output, host=LOOPBACK, port=0, **settings))  # type: ignore[arg-type]
    node.start()
    try:
        yield node
    finally:
        node.stop(grace=10)


def _work(output: Path) -> Path:
    return output.parent / f".{output.name}.neuroanon-node"


def _planted_in(text: str, subjects: list[int]) -> list[str]:
    return [name for s in subjects for name, value in planted_values(s).items() if value.lower() in text.lower()]


def _children(pid: int) -> set[int]:
    """The processes whose parent is `pid` (Linux /proc), the finished but unreaped ones included."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        except (OSError, IndexError):
            continue  # ended while listed
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _scu(calling: str = "TESTSCU", tls: object = None) -> AE:
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    ae.add_requested_context(MRImageStorage, [ExplicitVRLittleEndian])
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = 30
    return ae


def _store(port: int, *datasets: Path | pydicom.Dataset, calling: str = "TESTSCU") -> list[int]:
    """C-STORE each dataset (or file, sent raw) in one association; their statuses."""
    assoc = _scu(calling).associate(LOOPBACK, port, ae_title=NODE_AET)
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


def _archive(store: Callable[[evt.Event], int]) -> ThreadedAssociationServer:
    """A pynetdicom peer on a free loopback port, AE title ARCHIVE, that takes MR images with `store`."""
    ae = AE(ae_title="ARCHIVE")
    ae.add_supported_context(MRImageStorage, [ExplicitVRLittleEndian])
    server = ae.start_server((LOOPBACK, 0), block=False, evt_handlers=[(evt.EVT_C_STORE, store)])
    assert server is not None
    return server


def _leave_free(disk: Path, free: int) -> None:
    """Fill `disk` but for `free` bytes."""
    space = os.statvfs(disk)
    (disk / "filler").write_bytes(b"\0" * (space.f_bavail * space.f_frsize - free))


def _records(report: Path) -> list[dict[str, object]]:
    """The report's records of instances (between each run's provenance and summary)."""
    return [r for r in _lines(report) if "provenance" not in r and "summary" not in r]


def _lines(report: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in report.read_text().splitlines()]


@pytest.mark.parametrize("level", [Level.ORIGINAL, Level.ANONYMIZE, Level.FULL])
def test_a_study_from_storescu_is_stored_as_anonymize_writes_it(
    tmp_path: Path, level: Level, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    inputs = tmp_path / "in"
    sources = study(inputs, subject=3)
    options = Options(level=level, key=KEY)
    out = tmp_path / "out"
    with running(out, options=options) as node:
        port = node.address[1]
        assert echoscu(port).returncode == 0
        sent = storescu(port, inputs)
        assert sent.returncode == 0, sent.stderr
        assert node.totals.stored == len(sources) and node.totals.failed == 0
    assert not any(_work(out).joinpath("spool").iterdir()), "an identifiable copy was left in the spool"

    reference = tmp_path / "reference"
    assert anonymize_tree([inputs], reference, options).exit_code == 0
    stored, expected = by_sop_instance(out), by_sop_instance(reference)
    assert len(stored) == len(sources) and stored.keys() == expected.keys()
    for uid, path in stored.items():
        twin = expected[uid]
        assert dataset_bytes(path) == dataset_bytes(twin), "the node wrote other bytes than anonymize"
        ours, theirs = pydicom.dcmread(path).file_meta, pydicom.dcmread(twin).file_meta
        assert {t: ours[t].value for t in ours.keys() if t not in META_OF_THE_WRITER} == {
            t: theirs[t].value for t in theirs.keys() if t not in META_OF_THE_WRITER}
        relative = path.relative_to(out).as_posix()
        if level is Level.FULL:
            assert relative == twin.relative_to(reference).as_posix()
            data = searchable_bytes(path)
            assert not [n for n, v in planted_values(3).items() if v.encode() in data]
            assert not _planted_in(relative, [3])
        else:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            assert relative == f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{uid}.dcm"
    assert not _planted_in(caplog.text, [3]), "an original value reached a log"
    assert "ECHOSCU (127.0.0.1" in caplog.text
    assert "STORESCU (127.0.0.1" in caplog.text and f"released: {len(sources)} received, {len(sources)} stored" \
        in caplog.text


def test_the_same_instance_twice_is_stored_once_and_acknowledged_each_time(tmp_path: Path) -> None:
    source = study(tmp_path / "in", subject=4, n_series=1, n_instances=2)[0]
    out, report = tmp_path / "out", tmp_path / "node.jsonl"
    with running(out, report=report) as node:
        port = node.address[1]
        assert _store(port, source, source) == [0x0000, 0x0000]
        assert _store(port, pydicom.dcmread(source)) == [0x0000]
        assert (node.totals.stored, node.totals.duplicate) == (1, 2)
    assert len(files_under(out)) == 1
    records = _records(report)
    assert [r["status"] for r in records] == ["written", "skipped", "skipped"]
    assert all(str(r["reason"]).startswith("duplicate instance") for r in records[1:])


def test_concurrent_senders_store_every_instance_exactly_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    inputs = tmp_path / "in"
    sources = many(inputs, 320, per_folder=80, subject=5)
    folders = sorted(p for p in inputs.iterdir())
    assert len(folders) == 4
    out = tmp_path / "out"
    with running(out, max_associations=8) as node:
        port = node.address[1]
        # four senders with a folder each, and a fifth sending the first folder again at the same time
        senders = [subprocess.Popen(storescu_args(port, f, calling=f"SENDER{i}"), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=DCMTK_ENV)
                   for i, f in enumerate([*folders, folders[0]])]
        for sender in senders:
            _, err = sender.communicate(timeout=TIMEOUT)
            assert sender.returncode == 0, err
        assert node.totals.received == 400 and node.totals.failed == 0
        assert (node.totals.stored, node.totals.duplicate) == (320, 80)
    stored = by_sop_instance(out)  # asserts no instance is there twice
    assert stored.keys() == {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in sources}
    assert not [p for p in out.rglob(".*")], "a staged file was left in the output"
    assert not any(_work(out).joinpath("spool").iterdir())
    assert caplog.text.count("association from SENDER") == 5


def test_instances_are_anonymized_in_the_worker_processes_and_stored_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids = tmp_path / "pids"

    def prepare(item: InputFile, name: str, stage: Path, run: RunContext) -> Prepared:
        with open(pids, "a", encoding="ascii") as record:  # one short append per instance: atomic
            record.write(f"{os.getpid()}\n")
        return pipeline.prepare(item, name, stage, run)

    monkeypatch.setattr(scp, "prepare", prepare)  # before the workers are forked: they call it
    inputs = tmp_path / "in"
    sources = many(inputs, 120, per_folder=60, subject=5)
    folders = sorted(inputs.iterdir())
    out = tmp_path / "out"
    with running(out, workers=2) as node:
        workers = {child.pid for child in multiprocessing.active_children()}
        port = node.address[1]
        senders = [subprocess.Popen(storescu_args(port, f, calling=f"SENDER{i}"), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=DCMTK_ENV)
                   for i, f in enumerate([*folders, folders[0]])]  # the first folder twice, at the same time
        for sender in senders:
            _, err = sender.communicate(timeout=TIMEOUT)
            assert sender.returncode == 0, err
        assert (node.totals.received, node.totals.stored, node.totals.duplicate) == (180, 120, 60)
    used = [int(line) for line in pids.read_text().split()]
    assert len(used) == 180 and len(workers) == 2
    assert set(used) == workers and os.getpid() not in workers, "not prepared by the two worker processes"
    assert not any(child.pid in workers for child in multiprocessing.active_children()), "a worker outlived stop()"
    stored = by_sop_instance(out)  # asserts no instance is there twice
    assert stored.keys() == {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in sources}
    staged = [p for p in _work(out).joinpath("stage").rglob("*") if not p.is_dir()]  # workers' folders stay, empty
    assert not staged and not any(_work(out).joinpath("spool").iterdir())


def test_calling_ae_titles_off_the_allow_list_are_rejected(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    inputs = tmp_path / "in"
    study(inputs, subject=6, n_series=1, n_instances=2)
    out = tmp_path / "out"
    with running(out, allow_calling=("SCANNER1", "PACS")) as node:
        port = node.address[1]
        assert echoscu(port, calling="INTRUDER").returncode != 0
        assert storescu(port, inputs, calling="INTRUDER").returncode != 0
        assert echoscu(port, calling="SCANNER1", called="SOMEONEELSE").returncode != 0  # not addressed to us
        assoc = _scu("INTRUDER").associate(LOOPBACK, port, ae_title=NODE_AET)
        assert assoc.is_rejected
        assert not files_under(out)
        assert echoscu(port, calling="SCANNER1").returncode == 0
        assert storescu(port, inputs, calling="PACS").returncode == 0
    assert len(files_under(out)) == 2
    # each rejection says its cause (found from outside: the line named three, the operator could not tell which)
    assert "association from INTRUDER (127.0.0.1" in caplog.text
    assert "rejected: the calling AE title is not allowed" in caplog.text
    assert "association from SCANNER1 (127.0.0.1" in caplog.text
    assert "rejected: the called AE title is not this node's" in caplog.text


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (its own CA) and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    made = subprocess.run(
        [require_tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
         str(cert), "-subj", "/CN=localhost", "-days", "1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        capture_output=True, text=True, timeout=TIMEOUT)
    assert made.returncode == 0, made.stderr
    return cert, key


def test_a_tls_node_serves_tls_and_refuses_plain_connections(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    source = study(tmp_path / "in", subject=7, n_series=1, n_instances=1)[0]
    out = tmp_path / "out"
    with running(out, tls=server_tls(cert, key)) as node:
        port = node.address[1]
        assoc = _scu().associate(LOOPBACK, port, ae_title=NODE_AET, tls_args=(client_tls(cert), LOOPBACK))
        assert assoc.is_established
        try:
            assert assoc.send_c_echo().Status == 0x0000
            assert assoc.send_c_store(source).Status == 0x0000
        finally:
            assoc.release()
        assert echoscu(port).returncode != 0
        assert storescu(port, source).returncode != 0
        plain = _scu().associate(LOOPBACK, port, ae_title=NODE_AET)
        assert not plain.is_established
        # `send` speaks TLS too
        from neuroanon.cli import main

        other = study(tmp_path / "in2", subject=8, n_series=1, n_instances=1)
        assert main(["send", str(other[0]), "--to", f"{NODE_AET}@{LOOPBACK}:{port}", "--tls-ca", str(cert)]) == 0
        assert main(["send", str(other[0]), "--to", f"{NODE_AET}@{LOOPBACK}:{port}"]) == 1  # plain: refused
    assert len(files_under(out)) == 2


def test_a_tls_node_takes_senders_while_a_connection_sends_nothing(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    """pynetdicom shakes hands in the one thread that accepts connections, with no timeout: one that sent nothing
    (a port scan, a link that died) kept every later sender out for good (found from outside)."""
    cert, key = certificate
    source = study(tmp_path / "in", subject=7, n_series=1, n_instances=1)[0]
    with running(tmp_path / "out", tls=server_tls(cert, key)) as node:
        port = node.address[1]
        with socket.create_connection((LOOPBACK, port)):
            time.sleep(0.2)
            ae = _scu()
            ae.connection_timeout = ae.acse_timeout = 5
            assoc = ae.associate(LOOPBACK, port, ae_title=NODE_AET, tls_args=(client_tls(cert), LOOPBACK))
            assert assoc.is_established
            try:
                assert assoc.send_c_store(source).Status == 0x0000
            finally:
                assoc.release()
            began = time.monotonic()  # (the stop does not wait out the silent handshake, 60 s: found from outside)
            node.stop(grace=10)
            assert time.monotonic() - began < 10


def test_a_node_that_requires_client_certificates_refuses_senders_without_one(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    with running(tmp_path / "out", tls=server_tls(cert, key, ca=cert)) as node:
        port = node.address[1]
        anonymous = _scu().associate(LOOPBACK, port, ae_title=NODE_AET, tls_args=(client_tls(cert), LOOPBACK))
        assert not anonymous.is_established
        known = _scu().associate(LOOPBACK, port, ae_title=NODE_AET,
                                 tls_args=(client_tls(cert, cert, key), LOOPBACK))
        assert known.is_established
        assert known.send_c_echo().Status == 0x0000
        known.release()


def test_limits_on_instance_size_and_associations(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    source = study(tmp_path / "in", subject=9, n_series=1, n_instances=1)[0]
    out, report = tmp_path / "out", tmp_path / "node.jsonl"
    with running(out, max_instance_size=source.stat().st_size // 2, max_associations=1, report=report) as node:
        port = node.address[1]
        first = _scu().associate(LOOPBACK, port, ae_title=NODE_AET)
        assert first.is_established
        try:
            assert first.send_c_store(source).Status == 0xA700  # refused: out of resources
            second = _scu().associate(LOOPBACK, port, ae_title=NODE_AET)
            assert second.is_rejected
            assert _scu("OTHER").associate(LOOPBACK, port, ae_title="NOT-THE-NODE").is_rejected
        finally:
            first.release()
        # (the node full, the cause pynetdicom gives whatever else is wrong: found from outside, an AE title named)
        assert "association from OTHER (127.0.0.1" in caplog.text
        assert "rejected: the called AE title" not in caplog.text
        assert caplog.text.count("rejected: too many associations at once (--max-associations 1)") == 2
        assert node.totals.failed == 1
    assert not files_under(out)
    assert not any(_work(out).joinpath("spool").iterdir())
    (record,) = _records(report)  # every outcome is in the report, a refusal too (found from outside: none)
    assert record["status"] == "failed" and "over --max-instance-size" in str(record["reason"])


@contextmanager
def _half_sent(port: int) -> Iterator[socket.socket]:
    """A peer that sends the first bytes of an A-ASSOCIATE-RQ PDU (declaring 16 bytes, sending 8), then stays
    silent with its connection open: a link that died with no FIN or RST (a NAT's timeout, a pulled cable)."""
    peer = socket.create_connection((LOOPBACK, port))
    try:
        peer.sendall(b"\x01\x00\x00\x00\x00\x10" + b"\x00\x01")
        yield peer
    finally:
        peer.close()


def test_a_peer_silent_in_the_middle_of_a_pdu_frees_its_association_after_the_network_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pynetdicom reads a PDU with no timeout once its first bytes came: such a peer held one of the node's
    associations past every timeout; as many as --max-associations stopped the node taking any (found from
    outside)."""
    monkeypatch.setattr(scp, "NETWORK_TIMEOUT", 2.0)
    monkeypatch.setattr(scp, "ACSE_TIMEOUT", 1.0)  # (then the association ends)
    source = study(tmp_path / "in", subject=9, n_series=1, n_instances=1)[0]
    with running(tmp_path / "out", max_associations=1) as node, _half_sent(node.address[1]):
        time.sleep(0.5)
        assert _scu().associate(LOOPBACK, node.address[1], ae_title=NODE_AET).is_rejected  # (its slot is taken)
        time.sleep(3)
        assert _store(node.address[1], source) == [0x0000]


@pytest.mark.parametrize(("pdu_type", "length", "bound"), [(1, 400 << 20, MAX_CONTROL_PDU_BYTES),
                                                      (1, MAX_CONTROL_PDU_BYTES + 1, MAX_CONTROL_PDU_BYTES),
                                                      (4, MAX_PDU_BYTES + 1, MAX_PDU_BYTES)])
def test_a_peer_that_declares_a_pdu_longer_than_the_node_reads_is_hung_up_on_at_its_header(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, pdu_type: int, length: int, bound: int
) -> None:
    """pynetdicom reads the length a PDU's header declares, up to 4 GB, into memory, before the node knows who the
    peer is, and makes an object of each item the PDU holds (found from outside: three peers that declared 400 MB
    each took the node from 77 MB to 1.3 GB; an association request of 4 MB of tiny items cost 300 MB). The node
    closes such a connection at the header, says so, and goes on."""
    caplog.set_level(logging.INFO)
    source = study(tmp_path / "in", subject=9, n_series=1, n_instances=1)[0]
    with running(tmp_path / "out") as node:
        with socket.create_connection((LOOPBACK, node.address[1]), timeout=10) as peer:
            peer.sendall(bytes([pdu_type, 0]) + length.to_bytes(4, "big"))
            sent = 0
            try:
                while sent < min(length, 64 << 20):  # (as the peer of the report went on sending)
                    peer.sendall(b"\x00" * (1 << 16))
                    sent += 1 << 16
                closed = peer.recv(1) == b""
            except OSError:  # (a reset: the node closed the connection)
                closed = True
        assert closed, f"the node took {sent} bytes of the PDU"
        assert f"declared a PDU of type {pdu_type} of {length} bytes (at most {bound} are read)" in caplog.text
        assert _store(node.address[1], source) == [0x0000]


def test_the_retired_storage_classes_are_accepted_and_stored(tmp_path: Path) -> None:
    """Found from outside: an older scanner's images of the retired Ultrasound and Nuclear Medicine classes (and
    the other retired and trial storage classes, which pynetdicom leaves out) were refused; accepted, the first
    instance aborted the association (pynetdicom had no storage service for them)."""
    retired = ["1.2.840.10008.5.1.4.1.1.6", "1.2.840.10008.5.1.4.1.1.3", "1.2.840.10008.5.1.4.1.1.5",
               "1.2.840.10008.5.1.4.1.1.12.3", "1.2.840.10008.5.1.4.1.1.88.4"]
    ae = _scu()
    for sop_class in retired:
        ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
    instance = make_dataset(subject=21)
    instance.SOPClassUID = instance.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.5")
    instance.Modality = "NM"  # (Nuclear Medicine Image Storage, retired)
    out = tmp_path / "out"
    with running(out) as node:
        assoc = ae.associate(LOOPBACK, node.address[1], ae_title=NODE_AET)
        try:
            assert set(retired) <= {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
            assert assoc.send_c_store(instance).Status == 0x0000
        finally:
            assoc.release()
    (stored,) = files_under(out)
    assert pydicom.dcmread(stored).SOPClassUID == "1.2.840.10008.5.1.4.1.1.5"


def test_a_rejection_for_connections_that_asked_for_nothing_says_so(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """pynetdicom counts a connection that has not asked for an association yet as one: found from outside, silent
    connections kept senders out for 30 s, and the line said only that there were too many associations."""
    caplog.set_level(logging.INFO)
    with running(tmp_path / "out", max_associations=1) as node, \
            socket.create_connection((LOOPBACK, node.address[1])):
        time.sleep(0.5)
        assert _scu().associate(LOOPBACK, node.address[1], ae_title=NODE_AET).is_rejected
    assert ("rejected: too many associations at once (--max-associations 1): 1 of them connections that have not "
            "asked for one (each is closed 30 s after it opened)") in caplog.text


def test_a_stop_that_waits_for_an_association_says_so_and_its_line_says_the_stop_ended_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found from outside: a stop waited half a minute for an association its peer kept open, saying nothing, and
    the association's line said only "aborted"."""
    caplog.set_level(logging.INFO)
    node = Node(NodeConfig(output=tmp_path / "out", host=LOOPBACK, port=0, options=Options(level=Level.ANONYMIZE,
                                                                                            key=KEY)))
    node.start()
    assoc = _scu().associate(LOOPBACK, node.address[1], ae_title=NODE_AET)
    try:
        assert assoc.is_established
        started = time.monotonic()
        node.stop(grace=1)
        assert time.monotonic() - started < 10
    finally:
        assoc.abort()
    assert "stopping: waiting up to 1 s for 1 association to end" in caplog.text
    assert "aborted by the node's stop (still open when its wait was over): 0 received" in caplog.text


def test_send_to_a_peer_silent_in_the_middle_of_a_pdu_ends_after_its_timeout(tmp_path: Path) -> None:
    """It answers the association with the start of a PDU declaring more bytes than it sends, then stays silent:
    `send` waited for good, deaf to signals, its files without a record (found from outside)."""
    sources = study(tmp_path / "in", subject=9, n_series=1, n_instances=2)
    with socket.create_server((LOOPBACK, 0)) as server:
        answered: list[socket.socket] = []

        def answer() -> None:
            peer, _ = server.accept()
            answered.append(peer)
            peer.sendall(b"\x02\x00\xff\xff\xff\xff" + b"A" * 100)  # an A-ASSOCIATE-AC of 4 GB, 100 bytes of it

        threading.Thread(target=answer, daemon=True).start()
        outcomes: list[tuple[Path, Outcome]] = []
        to = Peer("PEER", LOOPBACK, server.getsockname()[1])
        sending = threading.Thread(target=lambda: outcomes.extend(send_files(to, sources, "TESTSCU", timeout=2)),
                                   daemon=True)
        sending.start()
        sending.join(30)
        for peer in answered:
            peer.close()
    assert not sending.is_alive(), "send is still waiting for the rest of the PDU"
    assert outcomes == [(path, UNREACHABLE) for path in sources]


def test_a_malformed_instance_fails_and_leaves_nothing(tmp_path: Path) -> None:
    source = study(tmp_path / "in", subject=10, n_series=1, n_instances=1)[0]
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(source.read_bytes()[:-100])  # sent raw: the pixel data is 100 bytes short
    out, report = tmp_path / "out", tmp_path / "node.jsonl"
    with running(out, report=report) as node:
        assert _store(node.address[1], cut) == [0xC000]
    assert not files_under(out)
    assert not any(_work(out).joinpath("spool").iterdir())
    (record,) = _records(report)
    assert record["status"] == "failed" and "truncated" in str(record["reason"])


def test_full_holds_back_an_instance_it_cannot_prove_clean(tmp_path: Path) -> None:
    risky = make_dataset(subject=11)
    risky.BurnedInAnnotation = "YES"
    options = Options(level=Level.FULL, key=KEY)
    with running(tmp_path / "out", options=options) as node:
        assert _store(node.address[1], risky) == [0xC000]  # not released and not kept: the sender keeps it
    held = tmp_path / "held"
    options = Options(level=Level.FULL, key=KEY, quarantine=held)
    with running(tmp_path / "out2", options=options) as node:
        assert _store(node.address[1], risky) == [0x0000]  # kept for review: safely on disk
        assert node.totals.held == 1
    assert not files_under(tmp_path / "out") and not files_under(tmp_path / "out2")
    assert len(files_under(held)) == 1


def test_instances_left_in_the_spool_by_a_killed_node_are_processed_at_start(tmp_path: Path) -> None:
    source = study(tmp_path / "in", subject=12, n_series=1, n_instances=1)[0]
    out = tmp_path / "out"
    spool = _work(out) / "spool"
    spool.mkdir(parents=True)
    (spool / "0123abcd.dcm").write_bytes(source.read_bytes())
    (spool / ".4567.part").write_bytes(source.read_bytes()[:500])  # a copy cut short
    with running(out) as node:
        assert node.totals.stored == 1
    assert not any(spool.iterdir())
    (stored,) = files_under(out)
    assert pydicom.dcmread(stored).PatientName == "Anon"
    assert oct(spool.stat().st_mode & 0o777) == "0o700"


class _RefusingPeer:
    """A pynetdicom Storage SCP that answers every C-STORE with 0xA700 and counts the attempts."""

    def __init__(self) -> None:
        self.attempts = 0
        ae = AE(ae_title="REFUSER")
        ae.add_supported_context(MRImageStorage, [ExplicitVRLittleEndian])
        server = ae.start_server((LOOPBACK, 0), block=False, evt_handlers=[(evt.EVT_C_STORE, self._refuse)])
        assert server is not None  # block=False returns the running server
        self.server = server
        self.port = int(self.server.server_address[1])

    def _refuse(self, event: evt.Event) -> int:
        self.attempts += 1
        return 0xA700


def test_instances_the_destination_keeps_refusing_end_in_the_failed_folder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    inputs = tmp_path / "in"
    study(inputs, subject=13, n_series=1, n_instances=2)
    peer = _RefusingPeer()
    out, report = tmp_path / "outbox", tmp_path / "node.jsonl"
    from neuroanon.node import Peer

    try:
        with running(out, forward=Peer("REFUSER", LOOPBACK, peer.port), retry=Retry(0.02, 0.1, 3),
                     report=report) as node:
            assert storescu(node.address[1], inputs).returncode == 0
            failed = _work(out) / "failed"
            forwarder = node.forwarder
            assert forwarder is not None
            # the file is moved before the counter is raised: wait for both
            wait_until(lambda: len(files_under(failed)) == 2 and forwarder.failed == 2,
                       "two instances in the failed folder", timeout=30)
    finally:
        peer.server.shutdown()
    assert peer.attempts == 6  # three tries each, then given up
    assert not files_under(out)
    assert sum(1 for r in _records(report) if str(r["reason"]).startswith("not forwarded")) == 2
    assert "refused an instance 3 times" in caplog.text
    summary = _lines(report)[-1]["summary"]
    assert isinstance(summary, dict)
    assert (summary["queued_for_forwarding"], summary["forwarded"], summary["refused_by_destination"]) == (2, 0, 2)


def test_a_destination_that_rejects_the_association_is_named_so_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found from outside: a destination that rejected the association (a wrong called AE title) was logged as
    unreachable, as a network outage is. The instance waits in the outbox and is retried (the destination may be
    set right), the line says why."""
    caplog.set_level(logging.INFO)
    inputs = tmp_path / "in"
    study(inputs, subject=18, n_series=1, n_instances=1)
    ae = AE(ae_title="ARCHIVE")
    ae.require_called_aet = True
    ae.add_supported_context(MRImageStorage, [ExplicitVRLittleEndian])
    server = ae.start_server((LOOPBACK, 0), block=False)
    assert server is not None
    out = tmp_path / "outbox"
    try:
        with running(out, forward=Peer("WRONGAE", LOOPBACK, int(server.server_address[1])),
                     retry=Retry(0.02, 0.1, 3)) as node:
            assert storescu(node.address[1], inputs).returncode == 0
            wait_until(lambda: "not reached (the destination rejected the association: called AE title not recognised)"
                       in caplog.text,
                       "the forwarder's line", timeout=30)
            assert len(files_under(out)) == 1 and not files_under(_work(out) / "failed")
    finally:
        server.shutdown()


def test_a_destination_that_accepts_none_of_the_instances_classes_refuses_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found from outside: a destination that accepts CT images only, sent an MR image, was said to be unreachable
    (pynetdicom aborts an association with no accepted context), and the node tried again for good. It refused the
    instance: after the attempts allowed, the instance is in the failed folder, and `send` says why."""
    caplog.set_level(logging.INFO)
    inputs = tmp_path / "in"
    study(inputs, subject=19, n_series=1, n_instances=1)
    ae = AE(ae_title="CTONLY")
    ae.add_supported_context(CTImageStorage, [ExplicitVRLittleEndian])
    server = ae.start_server((LOOPBACK, 0), block=False)
    assert server is not None
    out = tmp_path / "outbox"
    peer = Peer("CTONLY", LOOPBACK, int(server.server_address[1]))
    try:
        [(_, outcome)] = list(send_files(peer, files_under(inputs), "TESTSCU"))
        assert outcome.refused and "does not accept this SOP class" in outcome.reason, outcome
        with running(out, forward=peer, retry=Retry(0.02, 0.1, 3)) as node:
            assert storescu(node.address[1], inputs).returncode == 0
            failed = _work(out) / "failed"
            wait_until(lambda: len(files_under(failed)) == 1, "the instance in the failed folder", timeout=30)
        assert "refused an instance 3 times" in caplog.text and "not reached" not in caplog.text
    finally:
        server.shutdown()


def test_a_connection_that_asks_for_no_association_does_not_hold_a_stop(tmp_path: Path) -> None:
    """Found from outside: a TCP connection that never asked for an association (a port scan, a stuck peer) held
    SIGTERM for 28 s, until pynetdicom's ACSE timeout (30 s). It is hung up at once; a peer that does associate
    and store is served as before."""
    import socket
    import time

    inputs = tmp_path / "in"
    sources = study(inputs, subject=15)
    key = tmp_path / "key"
    key.write_text(KEY.hex())
    with Serve("--output", str(tmp_path / "out"), "--level", "full", "--key-file", str(key)) as serve:
        idle = socket.create_connection((LOOPBACK, serve.port))
        assert storescu(serve.port, inputs).returncode == 0
        started = time.monotonic()
        status, stdout, stderr = serve.stop()
        took = time.monotonic() - started
        idle.settimeout(5)
        assert idle.recv(1) == b""  # (hung up)
        idle.close()
    assert status == 0, stderr
    assert took < 15, f"serve took {took:.1f} s to stop"
    assert f"stopped: {len(sources)} received, {len(sources)} stored" in stdout
    assert "error" not in stderr.lower(), stderr


def test_serve_as_a_process_until_sigterm(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    sources = study(inputs, subject=14)
    key = tmp_path / "key"
    key.write_text(KEY.hex())
    out, report = tmp_path / "out", tmp_path / "serve.jsonl"
    with Serve("--output", str(out), "--level", "full", "--key-file", str(key), "--allow-calling", "STORESCU",
               "ECHOSCU", "--report", str(report), "--workers", "2") as serve:
        assert "listening as NEUROANON on 127.0.0.1:" in serve.line and "2 workers" in serve.line
        workers = _children(serve.process.pid)
        assert len(workers) == 2
        assert echoscu(serve.port).returncode == 0
        assert storescu(serve.port, inputs).returncode == 0
        assert storescu(serve.port, inputs, calling="OTHER").returncode != 0
        status, stdout, stderr = serve.stop()
    assert status == 0, stderr
    assert not _alive(workers), "a worker outlived serve"
    assert f"stopped: {len(sources)} received, {len(sources)} stored" in stdout
    assert f"released: {len(sources)} received, {len(sources)} stored" in stderr
    assert "association from OTHER" in stderr and "rejected" in stderr
    assert not _planted_in(stdout + stderr + report.read_text(), [14])
    lines = _lines(report)  # as anonymize's and send's: provenance, a record per instance, summary
    provenance, summary = lines[0]["provenance"], lines[-1]["summary"]
    assert isinstance(provenance, dict) and isinstance(summary, dict)
    assert provenance["key_fingerprint"] == key_fingerprint(KEY) and provenance["level"] == "full"
    assert provenance["command"][:2] == ["neuroanon", "serve"]
    assert (summary["received"], summary["stored"], summary["failed"]) == (len(sources), len(sources), 0)
    assert summary["listened"] is True and len(lines) == len(sources) + 2
    work = _work(out)
    for private in (work, work / "incoming", work / "spool"):  # where instances arrive and wait: private
        assert private.stat().st_mode & 0o777 == 0o700
    assert not any((work / "incoming").iterdir()) and not any((work / "spool").iterdir())
    reference = tmp_path / "reference"
    assert anonymize_tree([inputs], reference, Options(level=Level.FULL, key=KEY)).exit_code == 0
    assert sorted(p.relative_to(out) for p in files_under(out)) == sorted(
        p.relative_to(reference) for p in files_under(reference))


_A_ABORT = b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00"  # an A-ABORT PDU (PS3.8 9.3.8), from the service user


@pytest.mark.parametrize("how", ["A-ABORT", "connection dropped"])
def test_an_instance_its_sender_does_not_finish_leaves_nothing_and_its_association_says_so(
        tmp_path: Path, how: str) -> None:
    """Found from outside: the part of an instance a sender sent before it aborted (or dropped the connection) stayed
    in the incoming folder, identifiable, until the node's next start, and the association had no line. It goes
    when the association ends, and the association's line is written; the node serves on."""
    path = tmp_path / "big.dcm"
    make_dataset(subject=15, rows=1024, columns=1024).save_as(path, enforce_file_format=True)  # 2 MB of pixels
    out = tmp_path / "out"
    incoming = _work(out) / "incoming"
    with Serve("--output", str(out), "--level", "anonymize") as serve:
        assoc = _scu().associate(LOOPBACK, serve.port, ae_title=NODE_AET)
        assert assoc.is_established
        sock = assoc.dul.socket
        assert sock is not None and sock.socket is not None
        raw, send, sent = sock.socket, sock.send, [0]

        def cut_short(pdu: bytes) -> None:  # the sender goes away after 20 of its PDUs (the node's are 16 KB)
            sent[0] += 1
            if sent[0] < 20:
                send(pdu)
            elif sent[0] == 20:
                if how == "A-ABORT":
                    raw.sendall(_A_ABORT)
                raw.shutdown(socket.SHUT_RDWR)

        sock.send = cut_short  # type: ignore[method-assign, assignment]
        assoc.send_c_store(path)  # (no status comes back)
        assert sent[0] >= 20
        wait_until(lambda: not any(incoming.iterdir()), "the part of the instance to be removed", TIMEOUT)
        assert _store(serve.port, study(tmp_path / "in", subject=16, n_series=1, n_instances=1)[0]) == [0]
        status, stdout, stderr = serve.stop()
    assert status == 0, stderr
    lines = [line for line in stderr.splitlines() if "association from" in line]
    assert len(lines) == 2 and all("association from TESTSCU" in line for line in lines), stderr
    assert "aborted: 0 received, 0 stored" in lines[0] and "released: 1 received, 1 stored" in lines[1], stderr
    assert "stopped: 1 received, 1 stored" in stdout
    assert not _planted_in(stdout + stderr, [15, 16])


def test_instances_a_sender_sent_ahead_and_then_aborted_are_not_left(tmp_path: Path) -> None:
    """Found from outside: a sender that sent three instances without waiting for the answers, then aborted, left
    the two the node had not yet served, whole and identifiable, in the incoming folder for the node's life."""
    from io import BytesIO

    from pynetdicom.dimse_primitives import C_STORE
    from pynetdicom.dsutils import encode

    out = tmp_path / "out"
    incoming = _work(out) / "incoming"
    with Serve("--output", str(out), "--level", "anonymize") as serve:
        assoc = _scu().associate(LOOPBACK, serve.port, ae_title=NODE_AET)
        assert assoc.is_established
        context = next(c for c in assoc.accepted_contexts if c.abstract_syntax == MRImageStorage)
        assert context.context_id is not None
        for number in range(3):
            ds = make_dataset(subject=17, instance=number, rows=256, columns=256)
            request = C_STORE()
            request.MessageID, request.Priority = number + 1, 2
            request.AffectedSOPClassUID, request.AffectedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
            encoded = encode(ds, False, True)
            assert encoded is not None
            request.DataSet = BytesIO(encoded)
            assoc.dimse.send_msg(request, context.context_id)  # (not waiting for its answer)
        assoc.abort()
        wait_until(lambda: not any(incoming.iterdir()), "the instances not served to be removed", TIMEOUT)
        status, stdout, stderr = serve.stop()
    assert status == 0, stderr
    assert "association from TESTSCU" in stderr and "aborted:" in stderr, stderr
    assert not _planted_in(stdout + stderr, [17])


def test_a_node_that_cannot_listen_says_so_in_its_report(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The port is taken: the start fails (a usage error), and the report's summary says the node never listened
    (found from outside: an ordinary summary of nothing received); no "stopped" line comes before the error's (found
    from outside too)."""
    from neuroanon.errors import UsageError

    caplog.set_level(logging.INFO)

    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        report = tmp_path / "node.jsonl"
        node = Node(NodeConfig(output=tmp_path / "out", options=Options(level=Level.ANONYMIZE), host=LOOPBACK,
                               port=taken.getsockname()[1], report=report))
        with pytest.raises(UsageError, match="cannot listen"):
            node.start()
    lines = _lines(report)
    assert "provenance" in lines[0] and lines[-1]["summary"]["listened"] is False  # type: ignore[index]
    assert not [r for r in caplog.records if r.getMessage().startswith("stopped")]


def test_the_workers_die_with_a_killed_serve(tmp_path: Path) -> None:
    with Serve("--output", str(tmp_path / "out"), "--workers", "2") as serve:
        workers = _children(serve.process.pid)
        assert len(workers) == 2
        serve.process.send_signal(signal.SIGKILL)
        serve.process.communicate(timeout=TIMEOUT)
        wait_until(lambda: not _alive(workers), "the workers to end", timeout=TIMEOUT)


def test_serve_refuses_instances_and_stops_with_status_1_when_a_worker_dies(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    study(inputs, subject=16, n_series=1, n_instances=1)
    out = tmp_path / "out"
    with Serve("--output", str(out), "--workers", "1") as serve:
        (worker,) = _children(serve.process.pid)
        os.kill(worker, signal.SIGKILL)
        storescu(serve.port, inputs)
        _, stderr = serve.process.communicate(timeout=TIMEOUT)  # it stops on its own
    assert serve.process.returncode == 1
    assert "refused an instance: a worker process died" in stderr and "start the node again" in stderr
    assert not files_under(out) and not any(_work(out).joinpath("spool").iterdir())


def test_serve_and_send_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from neuroanon.cli import main

    out = str(tmp_path / "out")
    assert main(["serve", "--port", "0", "--output", out, "--forward", "nowhere"]) == 2
    assert "AET@HOST:PORT" in capsys.readouterr().err
    assert main(["serve", "--port", "0", "--output", out, "--tls-cert", str(tmp_path / "c.pem")]) == 2
    assert main(["serve", "--port", "0", "--output", out, "--allow-calling", "A\\B"]) == 2
    assert main(["serve", "--port", "0", "--output", out, "--max-instance-size", "lots"]) == 2
    assert main(["serve", "--port", "0", "--output", out, "--workers", "0"]) == 2
    # forwarding's options without --forward, or a first wait longer than the longest (found from outside: taken)
    capsys.readouterr()
    assert main(["serve", "--port", "0", "--output", out, "--retry-base", "10", "--max-attempts", "3"]) == 2
    assert "--retry-base and --max-attempts only apply with --forward" in capsys.readouterr().err
    assert main(["serve", "--port", "0", "--output", out, "--forward", "A@h:104", "--retry-base", "10",
                 "--retry-max", "1"]) == 2
    assert "--retry-base must not be longer than --retry-max" in capsys.readouterr().err
    assert main(["serve", "--port", "0", "--output", out, "--forward", "A@h:104", "--max-attempts", "0"]) == 2
    assert main(["send", str(tmp_path), "--to", "AET@host:99999"]) == 2
    assert main(["send", str(tmp_path), "--to", "WAY-TOO-LONG-AE-TITLE@host:104"]) == 2
    assert not (tmp_path / "out").exists()


def test_one_node_per_work_folder_and_one_set_of_options_per_output(tmp_path: Path) -> None:
    from neuroanon.errors import UsageError

    source = study(tmp_path / "in", subject=15, n_series=1, n_instances=1)[0]
    out = tmp_path / "out"
    with running(out) as node:
        assert _store(node.address[1], source) == [0x0000]
        with pytest.raises(UsageError, match="another neuroanon node"):
            Node(NodeConfig(output=out, options=Options(key=KEY), host=LOOPBACK, port=0)).start()
    with pytest.raises(UsageError, match="other options or another key"):
        Node(NodeConfig(output=out, options=Options(level=Level.FULL, key=KEY), host=LOOPBACK, port=0)).start()
    with running(out) as node:  # the same options again: the lock was released, the output is accepted
        assert _store(node.address[1], source) == [0x0000] and node.totals.duplicate == 1


def test_a_run_into_the_output_of_a_running_node_is_refused(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Found from outside: a run into the output of a running node, still empty, was taken (exit 0), and the node
    then stored its instances beside the run's files. It is refused as a second node is, its dry run and the
    library's run too; once the node has stopped, its output (still empty here) may be written."""
    from neuroanon.cli import main
    from neuroanon.errors import UsageError

    source = tmp_path / "in"
    study(source, subject=16, n_series=1, n_instances=2)
    out = tmp_path / "out"
    with running(out):
        for extra in ([], ["--force"], ["--dry-run"]):
            assert main(["anonymize", str(source), "-o", str(out), "-q", *extra]) == 2
            assert capsys.readouterr().err == f"neuroanon: another neuroanon node is using {out}; stop it, or use " \
                                              "another output\n"
        with pytest.raises(UsageError, match="another neuroanon node is using"):
            anonymize_tree([source], out, Options(level=Level.ANONYMIZE))
        assert list(out.iterdir()) == [] and not (tmp_path / ".out.neuroanon-journal").exists()
    assert main(["anonymize", str(source), "-o", str(out), "-q"]) == 0, "the node stopped, its output still empty"


def test_a_second_node_or_a_run_into_a_node_s_output_is_refused_whatever_its_work_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found from outside: two nodes given work folders of their own both served one output, still empty, and
    each forwarded the other's instances (refusals and counts that did not add up). The output is the node's
    while it runs: a second node, and a run into it, are refused, whatever the work folders."""
    from neuroanon.cli import main
    from neuroanon.errors import UsageError

    source = tmp_path / "in"
    study(source, subject=25, n_series=1, n_instances=1)
    out = tmp_path / "out"
    with running(out, work=tmp_path / "work-a"):
        with pytest.raises(UsageError, match=f"another neuroanon node is using {out}"):
            Node(NodeConfig(output=out, options=Options(level=Level.ANONYMIZE, key=KEY), host=LOOPBACK, port=0,
                            work=tmp_path / "work-b")).start()
        assert main(["anonymize", str(source), "-o", str(out), "-q"]) == 2
        assert capsys.readouterr().err == f"neuroanon: another neuroanon node is using {out}; stop it, or use " \
                                          "another output\n"
    with running(out, work=tmp_path / "work-b") as node:  # the first one stopped: its output is free
        assert _store(node.address[1], next(source.rglob("*.dcm"))) == [0x0000]


def test_folders_that_would_release_or_lose_what_is_in_them_are_refused(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Found from outside: a quarantine inside the output (the outbox, when forwarding) had held instances sent;
    a work folder inside the outbox had its lock and options sent and moved; files no node wrote in the output
    were forwarded, the key among them."""
    from neuroanon.cli import main
    from neuroanon.errors import UsageError

    out, work = tmp_path / "out", tmp_path / "work"
    full = Options(level=Level.FULL, key=KEY, quarantine=out / "held")
    with pytest.raises(UsageError, match="quarantine .* must be outside"):
        NodeConfig(output=out, options=full)
    with pytest.raises(UsageError, match="quarantine .* must be outside"):
        NodeConfig(output=out, options=full, forward=Peer("PACS", LOOPBACK, 104))
    with pytest.raises(UsageError, match="quarantine .* must be outside"):
        NodeConfig(output=out, options=replace(full, quarantine=work / "held"), work=work)
    for inside in (out / "work", out, tmp_path):
        with pytest.raises(UsageError, match="must lie apart"):
            NodeConfig(output=out, options=Options(), work=inside)
    key = out / "project.key"
    out.mkdir()
    key.write_text(KEY.hex())
    assert main(["serve", "--port", "0", "--output", str(out), "--level", "full", "--key-file", str(key)]) == 2
    assert "is inside the node's output" in capsys.readouterr().err
    node = Node(NodeConfig(output=out, options=Options(level=Level.FULL, key=KEY), host=LOOPBACK, port=0))
    with pytest.raises(UsageError, match="not empty and no neuroanon node began it"):
        node.start()
    assert not _work(out).exists() and key.read_text() == KEY.hex()  # nothing made, nothing moved


def test_a_second_node_leaves_what_the_first_is_receiving(tmp_path: Path) -> None:
    """A node refused for the lock emptied the incoming folder first (found from outside: the running node then
    refused the instance it was receiving)."""
    from neuroanon.errors import UsageError

    out = tmp_path / "out"
    with running(out):
        arriving = _work(out) / "incoming" / "arriving"
        arriving.write_bytes(b"part of an instance")
        with pytest.raises(UsageError, match="another neuroanon node"):
            Node(NodeConfig(output=out, options=Options(key=KEY), host=LOOPBACK, port=0)).start()
        assert arriving.exists()


def test_a_second_stop_signal_within_the_first_does_not_hang_serve() -> None:
    """serve's stop handler set an Event: a second signal while Event.set held its lock ran the handler inside it,
    which waited on that lock for ever (found from outside: a burst of SIGTERM hung serve in 4 tries of 6)."""
    import threading

    from neuroanon.cli import _setting_once

    stop = threading.Event()
    handler, real_set = _setting_once(stop), stop.set

    def set_while_a_signal_comes() -> None:
        with stop._cond:  # type: ignore[attr-defined]  # (the lock Event.set holds ...)
            handler()  # (... when the second signal runs the handler)
        real_set()

    stop.set = set_while_a_signal_comes  # type: ignore[method-assign]
    first = threading.Thread(target=handler, daemon=True)
    first.start()
    first.join(timeout=10)
    assert not first.is_alive() and stop.is_set()


def test_a_thread_that_fails_says_so_in_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """pynetdicom's thread for an association died on a full disk with a traceback on serve's stderr (found from
    outside): serve's hook logs one line with the cause, never the path."""
    import errno
    import functools
    import threading

    from neuroanon.cli import _thread_error

    def full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/work/incoming/tmpQuaxworth")

    hook = threading.excepthook
    try:
        with running(tmp_path / "out") as node, caplog.at_level(logging.ERROR, logger="neuroanon.node"):
            threading.excepthook = functools.partial(_thread_error, node)
            thread = threading.Thread(target=full)  # (not an association's: the node has nothing to end)
            thread.start()
            thread.join()
    finally:
        threading.excepthook = hook
    assert [r.getMessage() for r in caplog.records] == [
        "an association ended on an error (No space left on device); its sender gets no status for the instance in "
        "hand and keeps it"]
    assert "Traceback" not in capsys.readouterr().err and "Quaxworth" not in caplog.text


def test_send_follows_symlinks_inside_a_folder_when_asked(tmp_path: Path) -> None:
    """`send` said of a symlink "use --follow-symlinks", an option it did not have (found from outside)."""
    from neuroanon.cli import main

    (source,) = study(tmp_path / "elsewhere", subject=17, n_series=1, n_instances=1)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "linked.dcm").symlink_to(source)
    with running(tmp_path / "out") as node:
        to = f"{NODE_AET}@{LOOPBACK}:{node.address[1]}"
        main(["send", str(folder), "--to", to, "--report", str(tmp_path / "a.jsonl")])
        assert node.totals.received == 0
        (skipped,) = _records(tmp_path / "a.jsonl")
        assert skipped["status"] == "skipped" and "--follow-symlinks" in str(skipped["reason"])
        assert main(["send", str(folder), "--to", to, "--follow-symlinks"]) == 0
        assert node.totals.stored == 1


def test_a_stop_signal_given_to_another_thread_stops_serve() -> None:
    """The kernel may give a process's signal to any of its threads; Python then runs the handler in the main
    thread when it next wakes. serve waited without a timeout, so a signal given to another thread left it
    waiting for ever (found from outside: 1 burst in 12)."""
    import threading
    import time

    from neuroanon.cli import _setting_once, _until_set

    stop, fallback = threading.Event(), []
    previous = signal.signal(signal.SIGUSR1, _setting_once(stop))

    def signal_this_thread() -> None:
        time.sleep(0.2)
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)  # (to this thread, not the main one)
        if not stop.wait(10):
            fallback.append(True)  # (the main thread never handled it: end the wait, and fail)
            stop.set()

    try:
        helper = threading.Thread(target=signal_this_thread)
        helper.start()
        _until_set(stop)
        helper.join()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert not fallback, "the signal was not handled while serve waited"


def test_a_work_folder_serves_one_output(tmp_path: Path) -> None:
    """A work folder reused for a second output let that output's files be taken for released instances (found
    from outside: a raw file in the second output was forwarded): a work folder serves the output it began with."""
    from neuroanon.errors import UsageError

    work, first, second = tmp_path / "work", tmp_path / "first", tmp_path / "second"
    with running(first, work=work):
        pass
    second.mkdir()
    (second / "raw.dcm").write_bytes(b"identifiable")
    with pytest.raises(UsageError, match="serves another output"):
        Node(NodeConfig(output=second, options=Options(level=Level.ANONYMIZE, key=KEY), host=LOOPBACK, port=0,
                        work=work)).start()
    assert (second / "raw.dcm").read_bytes() == b"identifiable"
    with running(first, work=work):  # (its own output: taken up again)
        pass


def test_a_work_folder_mounted_at_the_output_is_refused(tmp_path: Path) -> None:
    """A bind mount of the output as the work folder has another name: the folders themselves are compared
    (found from outside: the node started, and forwarded its own lock and options)."""
    from neuroanon.errors import UsageError

    if os.geteuid() != 0:
        pytest.skip("a bind mount needs root (CI runs the suite as root)")
    out, work = tmp_path / "out", tmp_path / "work"
    out.mkdir()
    work.mkdir()
    subprocess.run(["mount", "--bind", str(out), str(work)], check=True)
    try:
        with pytest.raises(UsageError, match="must lie apart"):
            NodeConfig(output=out, options=Options(), work=work)
        with pytest.raises(UsageError, match="must lie apart"):
            NodeConfig(output=out, options=Options(), work=work / "inner")
    finally:
        subprocess.run(["umount", "-l", str(work)], check=True)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_send_reports_what_it_sent_and_what_it_did_not(tmp_path: Path, signum: int) -> None:
    """Found from outside: `send` stopped by SIGTERM or Ctrl-C wrote no record, and said nothing but "stopped",
    though the destination had taken some files. Each file sent is reported sent, each anonymized and not sent
    is reported so, and the summary says the run stopped; what was done is said on standard output."""
    import sys

    inputs = tmp_path / "in"
    many(inputs, 12, per_folder=12, subject=21)
    taken: list[str] = []
    sender: list[subprocess.Popen[str]] = []

    def store(event: evt.Event) -> int:
        taken.append(str(event.dataset.SOPInstanceUID))
        if len(taken) == 3:
            sender[0].send_signal(signum)
        return 0x0000

    server = _archive(store)
    report = tmp_path / "send.jsonl"
    try:
        sender.append(subprocess.Popen(  # (before the destination's first C-STORE: the sender is not yet running)
            [sys.executable, "-m", "neuroanon.cli", "send", str(inputs), "--to",
             f"ARCHIVE@{LOOPBACK}:{server.server_address[1]}", "--report", str(report)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        out, err = sender[0].communicate(timeout=120)
    finally:
        server.shutdown()
    assert sender[0].returncode == 128 + signum, err
    assert err.endswith(f"neuroanon: stopped by {signal.Signals(signum).name}\n") and "Traceback" not in err, err
    records = _records(report)
    sent = [r for r in records if str(r["reason"]).startswith("sent to")]
    assert len(sent) == len(taken) >= 3, "a file the destination took is reported sent"
    assert len(records) == 12, "every file anonymized is reported"
    unsent = {(r["status"], r["reason"]) for r in records if r not in sent}
    assert unsent == {("failed", "not sent: the run stopped first")}
    summary = _lines(report)[-1]["summary"]
    assert isinstance(summary, dict) and summary["stopped"] == "interrupted" and summary["files"] == 12
    assert summary["signal"] == signal.Signals(signum).name
    assert out.startswith("12 files at level anonymize") and f"sent to ARCHIVE@{LOOPBACK}" in out, out


def test_an_instance_that_fills_the_disk_as_it_arrives_is_removed_and_the_node_goes_on(
        small_disk: Path, tmp_path: Path) -> None:
    """Found from outside: an instance that filled the disk as it arrived killed its connection's reader, and no
    event ended its association: what had arrived of it stayed in the incoming folder, the disk stayed full, and
    every later association failed until the node was stopped. The association is ended as any other (its line
    says why), what arrived is removed, and the next instance is stored."""
    (big,) = many(tmp_path / "big", 1, per_folder=1, subject=22, size=2048)  # 8 MB, on a disk of 6
    (small,) = study(tmp_path / "small", subject=23, n_series=1, n_instances=1)
    incoming = small_disk / ".out.neuroanon-node" / "incoming"
    with Serve("--output", str(small_disk / "out"), "--workers", "1") as node:
        assert storescu(node.port, big).returncode != 0
        wait_until(lambda: not any(incoming.iterdir()), "what arrived of the instance removed", timeout=30)
        assert storescu(node.port, small).returncode == 0, "the node stores again"
        code, out, err = node.stop()
    assert code == 0 and "Traceback" not in err, err
    assert "ended on an error (no space left on device): 0 received" in err, err
    assert len(files_under(small_disk / "out")) == 1, "the small instance stored, nothing of the big one"


_LONG_UID = "1." + "2" * 300  # longer than a file name may be


@pytest.mark.parametrize(("uid", "named"), [
    ("1.2.3", "1.2.3"), ("1." + "2" * 62, "1." + "2" * 62), ("", "TOKEN"), ("..", "hash"), ("1.2/3", "hash"),
    ("../..", "hash"), ("1.2+3", "hash"), ("1." + "2" * 63, "hash"), (_LONG_UID, "hash")])
def test_an_instance_s_path_below_full_takes_its_uids_or_a_name_for_one_unusable(uid: str, named: str) -> None:
    """A UID that cannot be a path part as it is gets `uid~` and a hash of it: the same for the same UID, none for
    two (found from outside: '1.2+3' and '1.2_3' took one path); a missing one the token."""
    import hashlib

    from neuroanon.layout import by_uids

    ds = pydicom.Dataset()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = "1.2.840.9", "1.2.840.9.1", uid
    if named == "hash":
        named = "uid~" + hashlib.sha256(uid.encode()).hexdigest()[:40]
    assert by_uids(ds, "TOKEN") == f"1.2.840.9/1.2.840.9.1/{named}.dcm"


def test_an_instance_whose_uid_is_too_long_for_a_file_name_is_stored_under_a_token(tmp_path: Path) -> None:
    """Found from outside: below full, an instance whose StudyInstanceUID (or SOPInstanceUID) was too long for a
    file name was refused with 0xA700 ("out of resources"), which a sender retries for ever; an unusable UID gets a
    token instead."""
    sources = study(tmp_path / "in", subject=24, n_series=1, n_instances=2)
    sent = [pydicom.dcmread(path) for path in sources]
    for ds in sent:
        ds.StudyInstanceUID = pydicom.uid.UID(_LONG_UID)
    with running(tmp_path / "out") as node:
        ae = AE(ae_title="SCANNER")
        ae.add_requested_context(MRImageStorage, ExplicitVRLittleEndian)
        assoc = ae.associate(LOOPBACK, node.address[1], ae_title=NODE_AET)
        assert assoc.is_established
        statuses = [assoc.send_c_store(ds).Status for ds in (*sent, sent[0])]  # (the first one twice)
        assoc.release()
        assert statuses == [0x0000] * 3 and node.totals.duplicate == 1, "a resent instance is a duplicate"
    stored = files_under(tmp_path / "out")
    assert len(stored) == 2 and len({p.relative_to(tmp_path / "out").parts[0] for p in stored}) == 1, "one study"
    study_folder = stored[0].relative_to(tmp_path / "out").parts[0]
    assert len(study_folder) < 64 and pydicom.dcmread(stored[0]).StudyInstanceUID == _LONG_UID


def test_a_node_starts_where_the_file_system_locks_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found on review of cac41e7: NFS may refuse a lock on a folder opened for reading (EBADF, ENOLCK); every node
    on such an output was then refused as if another node held it. Only a lock held elsewhere refuses."""
    import errno
    import fcntl


    real = fcntl.flock

    def no_folder_locks(fd: int, how: int) -> None:
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            raise OSError(errno.EBADF, "Bad file descriptor")
        real(fd, how)

    monkeypatch.setattr(fcntl, "flock", no_folder_locks)
    (source,) = study(tmp_path / "in", subject=26, n_series=1, n_instances=1)
    with running(tmp_path / "out") as node:
        assert _store(node.address[1], source) == [0x0000]


@pytest.mark.parametrize("small_disk", ["1m"], indirect=True)
def test_on_a_full_disk_holding_the_report_every_stored_instance_has_its_line_and_its_success(
        small_disk: Path, tmp_path: Path) -> None:
    """Found from outside: with the report on a disk that filled, instances were stored while their senders got
    0xA700 and their lines said "could not be stored" or were missing, and the node exited 0 without a word.
    Room for an instance's line is kept before it is released: each instance is stored, acknowledged 0x0000 and
    reported, or refused 0xA700 and not stored; the lines the disk did not take are counted, and serve exits 1
    saying so."""
    instances = many(tmp_path / "in", 40, per_folder=40, subject=24)
    key = tmp_path / "project.key"
    key.write_text(KEY.hex())
    report = small_disk / "node.jsonl"
    _leave_free(small_disk, 24 << 10)
    with Serve("--output", str(tmp_path / "out"), "--workers", "1", "--level", "full", "--key-file", str(key),
               "--report", str(report)) as node:
        statuses = _store(node.port, *instances)
        code, _, err = node.stop()
    stored = files_under(tmp_path / "out")
    lines = _records(report)
    assert set(statuses) == {0x0000, 0xA700}, statuses  # (some stored before the disk filled, not all)
    assert statuses.index(0xA700) == statuses.count(0x0000), "refused from the first one with no room on"
    assert len(stored) == statuses.count(0x0000)
    assert sorted(str(r["output"]) for r in lines if r["status"] == "written") == sorted(
        str(p.relative_to(tmp_path / "out")) for p in stored)
    assert all(r["status"] == "written" for r in lines), "no line says an instance stored was not"
    (summary,) = [r["summary"] for r in _lines(report) if "summary" in r]
    assert isinstance(summary, dict)
    missing = 40 - len(lines)
    assert summary["stored"] == len(stored) and summary["failed"] == 40 - len(stored)
    assert summary.get("not_in_report") == missing and missing > 0, summary
    assert code == 1 and "Traceback" not in err, err
    assert f"the lines of {missing} instances are not in the report" in err, err
    assert "no room for its line in the report" in err and str(report) in err, err


@pytest.mark.parametrize("small_disk", ["1m"], indirect=True)
def test_a_send_whose_report_fills_its_disk_sends_no_file_without_its_line(small_disk: Path, tmp_path: Path) -> None:
    """Found from outside: with the report on a disk that filled, a file the destination took had no line, and
    the files after it none either. Room for a file's line is kept before it is sent: the run stops before the
    first file it has none for; every file the destination took has its line, and the summary (written in the
    room kept for it) counts the files anonymized and not sent whose lines the disk did not take."""
    import sys

    inputs = tmp_path / "in"
    many(inputs, 40, per_folder=40, subject=25)
    taken: list[str] = []

    def store(event: evt.Event) -> int:
        taken.append(str(event.dataset.SOPInstanceUID))
        return 0x0000

    server = _archive(store)
    report = small_disk / "send.jsonl"
    _leave_free(small_disk, 24 << 10)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "neuroanon.cli", "send", str(inputs), "--to",
             f"ARCHIVE@{LOOPBACK}:{server.server_address[1]}", "--report", str(report)],
            capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"{report}: No space left on device" in done.stderr, done.stderr
    records = _records(report)
    sent = [r for r in records if str(r["reason"]).startswith("sent to")]
    assert 0 < len(sent) == len(taken) < 40, "every file the destination took has its line, and not all were sent"
    summary = _lines(report)[-1]["summary"]
    assert isinstance(summary, dict) and summary["stopped"] == "no space left on device", summary
    assert summary["files"] == 40 and summary.get("not_in_report") == 40 - len(records), summary


@pytest.mark.parametrize("small_disk", ["1m"], indirect=True)
def test_a_node_on_a_full_disk_names_the_file_it_could_not_write(small_disk: Path, tmp_path: Path) -> None:
    """Found from outside: `serve` on a full disk said only "No space left on device", of no file; and a report in
    a folder that cannot be made was said to be "in /proc"."""
    import sys

    space = os.statvfs(small_disk)
    with contextlib.suppress(OSError):
        (small_disk / "filler").write_bytes(b"\0" * (space.f_bavail * space.f_frsize + (64 << 10)))  # full
    done = subprocess.run([sys.executable, "-m", "neuroanon.cli", "serve", "--host", LOOPBACK, "--port", "0",
                           "--output", str(small_disk / "out"), "--report", str(tmp_path / "node.jsonl")],
                          capture_output=True, text=True, timeout=60)
    work = small_disk / ".out.neuroanon-node"
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"neuroanon: {work}/") and done.stderr.endswith(": No space left on device\n")
    done = subprocess.run([sys.executable, "-m", "neuroanon.cli", "send", str(tmp_path), "--to",
                           f"ARCHIVE@{LOOPBACK}:104", "--report", "/proc/nope/r.jsonl"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "cannot write the report /proc/nope/r.jsonl: /proc takes no new file" in done.stderr, done.stderr


def test_a_forward_failure_whose_line_the_full_disk_refuses_is_counted(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Found on review: the line of an instance the destination kept refusing was written without a guard, and a
    full disk ended the forwarding thread with the error. It is counted, as a refusal's line is."""
    import errno

    from neuroanon.report import ReportWriter

    with running(tmp_path / "out", report=tmp_path / "node.jsonl") as node:
        def full(self: ReportWriter, *_: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "node.jsonl"))

        monkeypatch.setattr(ReportWriter, "write", full)
        node._forward_failed(tmp_path / "failed" / "x.dcm", "refused with status 0xC000")
        assert node.unreported == 1
        monkeypatch.undo()
