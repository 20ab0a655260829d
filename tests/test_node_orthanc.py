"""The node forwarding to a real Orthanc, and `neuroanon send`: every instance arrives, anonymized, exactly once,
even when Orthanc is killed in the middle of a transfer or the node itself is restarted with a full outbox."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from neuroanon.cli import main
from neuroanon.node import Node, NodeConfig, Retry
from neuroanon.options import Level, Options
from neuroanon.pipeline import anonymize_tree
from neuroanon.sample import planted_values

from .helpers import files_under
from .peers import DCMTK_ENV, LOOPBACK, TIMEOUT, Orthanc, Serve, many, storescu, storescu_args, study, wait_until
from .test_node import KEY

FAST = Retry(base=0.1, cap=0.5, max_attempts=10)


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    server = Orthanc(tmp_path / "orthanc")
    try:
        yield server
    finally:
        server.stop(signal.SIGKILL)  # its storage is thrown away


def _node(output: Path, orthanc: Orthanc, level: Level) -> Node:
    return Node(NodeConfig(output=output, options=Options(level=level, key=KEY), host=LOOPBACK, port=0,
                           forward=orthanc.peer, retry=FAST))


def _expected_uids(inputs: Path, tmp: Path, level: Level) -> set[str]:
    """The SOPInstanceUIDs `anonymize` gives the inputs at this level and key."""
    out = tmp / f"expected-{level}"
    anonymize_tree([inputs], out, Options(level=level, key=KEY))
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in files_under(out)}


def _planted_in(text: str, subject: int) -> list[str]:
    return [name for name, value in planted_values(subject).items() if value.lower() in text.lower()]


def test_forwarded_instances_arrive_in_orthanc_anonymized(tmp_path: Path, orthanc: Orthanc) -> None:
    orthanc.start()
    inputs = tmp_path / "in"
    sources = study(inputs, subject=20)
    outbox = tmp_path / "outbox"
    node = _node(outbox, orthanc, Level.FULL)
    node.start()
    try:
        assert storescu(node.address[1], inputs).returncode == 0
        wait_until(lambda: orthanc.count() == len(sources) and not files_under(outbox), "all in Orthanc")
    finally:
        node.stop()
    assert sorted(orthanc.sop_instance_uids()) == sorted(_expected_uids(inputs, tmp_path, Level.FULL))
    tags = orthanc.all_tags()
    assert len(tags) == len(sources)
    for instance in tags:
        assert str(instance["PatientName"]).startswith("NA") and instance["PatientIdentityRemoved"] == "YES"
    assert not _planted_in(json.dumps(tags), 20), "an original value reached Orthanc"


def test_orthanc_killed_mid_transfer_loses_nothing(tmp_path: Path, orthanc: Orthanc) -> None:
    orthanc.start()
    inputs = tmp_path / "in"
    count = 120
    many(inputs, count, per_folder=60, subject=21)
    outbox = tmp_path / "outbox"
    node = _node(outbox, orthanc, Level.ANONYMIZE)
    node.start()
    try:
        sender = subprocess.Popen(storescu_args(node.address[1], inputs), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=DCMTK_ENV)
        wait_until(lambda: orthanc.count() >= 10, "Orthanc's first instances", every=0.01)
        orthanc.stop(signal.SIGKILL)
        _, err = sender.communicate(timeout=TIMEOUT)
        assert sender.returncode == 0, err  # the node acknowledged everything: it is safely in the outbox
        assert node.totals.stored == count
        waiting = len(files_under(outbox))
        assert 0 < waiting < count, "Orthanc was not stopped in the middle of the transfer"
        assert node.forwarder is not None
        wait_until(lambda: node.forwarder is not None and node.forwarder.outages >= 2, "retries while down")
        assert len(files_under(outbox)) == waiting and node.forwarder.failed == 0
        orthanc.start()  # the same ports and storage
        wait_until(lambda: not files_under(outbox), "the outbox to empty", timeout=TIMEOUT)
    finally:
        node.stop()
    uids = orthanc.sop_instance_uids()
    assert len(uids) == len(set(uids)) == count
    assert set(uids) == _expected_uids(inputs, tmp_path, Level.ANONYMIZE)
    some = orthanc.all_tags()[:5]
    assert some and all(t["PatientName"] == "Anon" for t in some)


def test_a_restarted_serve_resumes_its_outbox(tmp_path: Path, orthanc: Orthanc) -> None:
    inputs = tmp_path / "in"
    sources = study(inputs, subject=22)
    outbox = tmp_path / "outbox"
    args = ("--output", str(outbox), "--forward", f"ORTHANC@{LOOPBACK}:{orthanc.dicom_port}", "--retry-base", "0.1",
            "--retry-max", "0.5")
    logs = []
    for run in ("destination down", "destination up"):
        if run == "destination up":
            orthanc.start()
        with Serve(*args) as serve:
            if run == "destination down":
                assert storescu(serve.port, inputs).returncode == 0
                assert len(files_under(outbox)) == len(sources)
            else:
                wait_until(lambda: orthanc.count() == len(sources) and not files_under(outbox),
                           "the outbox forwarded after the restart", timeout=TIMEOUT)
            status, stdout, stderr = serve.stop()
        assert status == 0, stderr
        logs.append(stdout + stderr)
        # (found from outside: the last line left out what the destination took, which the log line said)
        took = 0 if run == "destination down" else len(sources)
        assert stdout.splitlines()[-1].endswith(f"; {took} forwarded, 0 refused by the destination"), stdout
    assert len(files_under(outbox)) == 0
    assert "unreachable" in logs[0] and f"{len(sources)} queued for forwarding" in logs[0]
    assert f"forwarded {len(sources)} instances" in logs[1]
    assert not _planted_in("".join(logs), 22)
    assert sorted(orthanc.sop_instance_uids()) == sorted(_expected_uids(inputs, tmp_path, Level.ANONYMIZE))


def test_send_anonymizes_sends_and_reports(
    tmp_path: Path, orthanc: Orthanc, capsys: pytest.CaptureFixture[str]
) -> None:
    orthanc.start()
    inputs = tmp_path / "in"
    sources = study(inputs, subject=23)
    (inputs / "notes.txt").write_text("not DICOM")
    key, report = tmp_path / "key", tmp_path / "send.jsonl"
    key.write_text(KEY.hex())
    to = f"ORTHANC@{LOOPBACK}:{orthanc.dicom_port}"
    assert main(["send", str(inputs), "--to", to, "--level", "full", "--key-file", str(key), "--report",
                 str(report)]) == 0
    records = [json.loads(line) for line in report.read_text().splitlines()]
    sent = [r for r in records if r.get("status") == "written"]
    assert len(sent) == len(sources) and all(str(r["reason"]).startswith(f"sent to {to}") for r in sent)
    assert records[-1]["summary"]["written"] == len(sources)
    assert sorted(orthanc.sop_instance_uids()) == sorted(_expected_uids(inputs, tmp_path, Level.FULL))
    # At full the report names inputs by keyed tokens, as `anonymize` does: paths often hold names.
    assert records[0]["provenance"]["level"] == "full" and "<input>" in records[0]["provenance"]["command"]
    assert not any(str(r["input"]).endswith(".dcm") or str(inputs) in str(r["input"]) for r in records[1:-1])
    assert not _planted_in(json.dumps(orthanc.all_tags()) + capsys.readouterr().out, 23)

    orthanc.stop(signal.SIGKILL)
    assert main(["send", str(inputs), "--to", to, "--level", "full", "--key-file", str(key), "--report",
                 str(report)]) == 1
    records = [json.loads(line) for line in report.read_text().splitlines()]
    failed = [r for r in records if r.get("status") == "failed"]
    assert len(failed) == len(sources) and all(str(r["reason"]).startswith("not sent:") for r in failed)
    assert "not sent" in capsys.readouterr().err
