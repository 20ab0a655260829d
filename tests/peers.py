"""Real DICOM peers for the node tests: dcmtk's echoscu and storescu, a pynetdicom client, and Orthanc started on
free loopback ports with its own temporary configuration and storage."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pydicom

import neuroanon
from neuroanon.node import Peer
from neuroanon.sample import make_many, make_study

from .tools import require_tool

LOOPBACK = "127.0.0.1"
NODE_AET = "NEUROANON"
TIMEOUT = 120.0  # seconds: the longest any one peer command or wait may take before the test fails
SRC = Path(neuroanon.__file__).resolve().parents[1]  # the code under test, for subprocesses


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def without_padding(paths: list[Path]) -> list[Path]:
    """Drop Data Set Trailing Padding: dcmtk does not transmit it, so a sent file and its source then hold the
    same dataset (the file meta is never transmitted: a receiver writes its own, PS3.10 7.1)."""
    for path in paths:
        ds = pydicom.dcmread(path)
        if 0xFFFCFFFC in ds:
            del ds[0xFFFCFFFC]
        ds.save_as(path, enforce_file_format=True)
    return paths


def study(root: Path, subject: int = 0, n_series: int = 2, n_instances: int = 3) -> list[Path]:
    return without_padding(make_study(root, subject=subject, n_series=n_series, n_instances=n_instances))


def many(root: Path, count: int, per_folder: int, subject: int = 0, size: int = 16) -> list[Path]:
    return without_padding(make_many(root, count, subject=subject, rows=size, columns=size, per_folder=per_folder))


# dcmtk waits for delayed TCP acknowledgements between a request's PDUs (~40 ms an instance) unless told not to
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def dcmtk(name: str) -> str:
    """dcmtk's tool `name` (not pynetdicom's app of the same name)."""
    return require_tool(name, beside_python=False)


def echoscu(port: int, calling: str = "ECHOSCU", called: str = NODE_AET) -> subprocess.CompletedProcess[str]:
    return subprocess.run([dcmtk("echoscu"), "-aet", calling, "-aec", called, LOOPBACK, str(port)],
                          capture_output=True, text=True, timeout=TIMEOUT, env=DCMTK_ENV)


def storescu_args(port: int, *inputs: Path, calling: str = "STORESCU") -> list[str]:
    return [dcmtk("storescu"), "-aet", calling, "-aec", NODE_AET, "+sd", "+r", LOOPBACK, str(port),
            *map(str, inputs)]


def storescu(port: int, *inputs: Path, calling: str = "STORESCU") -> subprocess.CompletedProcess[str]:
    return subprocess.run(storescu_args(port, *inputs, calling=calling), capture_output=True, text=True,
                          timeout=TIMEOUT, env=DCMTK_ENV)


def dataset_bytes(path: Path) -> bytes:
    """A Part-10 file's bytes after the preamble and file meta: what travels over the network."""
    data = path.read_bytes()
    assert data[128:132] == b"DICM"
    (group_length,) = struct.unpack("<L", data[140:144])
    return data[144 + group_length :]


def by_sop_instance(root: Path) -> dict[str, Path]:
    """Every file under `root` by its SOPInstanceUID (each must occur once)."""
    found: dict[str, Path] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        assert uid not in found, "an instance was stored twice"
        found[uid] = path
    return found


class Serve:
    """`neuroanon serve ARGS` as a process on a free loopback port; `stop()` sends SIGTERM and collects its output.
    As a context manager it kills the process if the test ends early."""

    def __init__(self, *args: str) -> None:
        command = [sys.executable, "-m", "neuroanon.cli", "serve", "--host", LOOPBACK, "--port", "0", *args]
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        lines: list[str] = []
        stdout = self.process.stdout
        assert stdout is not None
        reader = threading.Thread(target=lambda: lines.append(stdout.readline()))
        reader.start()
        reader.join(TIMEOUT)  # a reader thread: a silent process fails the test instead of hanging it
        self.line = lines[0] if lines else ""
        if f"on {LOOPBACK}:" not in self.line:
            self.process.kill()
            raise AssertionError(f"serve did not say where it listens: {self.line!r}")
        self.port = int(self.line.split(f"on {LOOPBACK}:")[1].split()[0])

    def stop(self) -> tuple[int, str, str]:
        """SIGTERM; the exit status, stdout (with the first line) and stderr."""
        self.process.send_signal(signal.SIGTERM)
        stdout, stderr = self.process.communicate(timeout=TIMEOUT)
        return self.process.returncode, self.line + stdout, stderr

    def __enter__(self) -> Serve:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=TIMEOUT)


class Orthanc:
    """An Orthanc of our own: free loopback ports, storage and index in `folder`, no authentication (its REST
    API answers on loopback only), any calling AE may store. Start, kill and restart it on the same storage."""

    AET = "ORTHANC"

    def __init__(self, folder: Path) -> None:
        self.binary = require_tool("Orthanc")
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.http_port, self.dicom_port = free_port(), free_port()
        self.config = folder / "orthanc.json"
        self.config.write_text(json.dumps({
            "Name": "neuroanon-test",
            "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "index"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.AET,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "Plugins": [],
            "SaveJobs": False,
        }))
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def peer(self) -> Peer:
        return Peer(self.AET, LOOPBACK, self.dicom_port)

    def start(self) -> None:
        self.starts += 1
        log = open(self.folder / f"orthanc-{self.starts}.log", "wb")
        self.process = subprocess.Popen([self.binary, str(self.config)], stdout=log, stderr=subprocess.STDOUT)
        log.close()

        def answers() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                tail = (self.folder / f"orthanc-{self.starts}.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"Orthanc exited with {self.process.returncode}:\n{tail}")
            try:
                self.get("/system")
            except OSError:
                return False
            return True

        wait_until(answers, "Orthanc's REST API", timeout=60)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    def get(self, path: str) -> object:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{self.http_port}{path}", timeout=10) as response:
            return json.loads(response.read())

    def post(self, path: str, body: object) -> object:
        request = urllib.request.Request(f"http://{LOOPBACK}:{self.http_port}{path}", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def count(self) -> int:
        stats = self.get("/statistics")
        assert isinstance(stats, dict)
        return int(stats["CountInstances"])

    def sop_instance_uids(self) -> list[str]:
        """The SOPInstanceUID of every stored instance (one entry per stored instance)."""
        found = self.post("/tools/find", {"Level": "Instance", "Query": {}, "Expand": True})
        assert isinstance(found, list)
        return [str(item["MainDicomTags"]["SOPInstanceUID"]) for item in found]

    def all_tags(self) -> list[dict[str, object]]:
        """Every stored instance's tags, simplified (name: value)."""
        ids = self.get("/instances")
        assert isinstance(ids, list)
        tags = [self.get(f"/instances/{i}/simplified-tags") for i in ids]
        return [t for t in tags if isinstance(t, dict)]
