"""Who the node talks to: peers named `AET@HOST:PORT`, TLS contexts, and pynetdicom's settings.

pynetdicom is configured once, before any of its objects exist: its identifier logging is off (it would print
request datasets), its standard event logging is off, received datasets are spooled to a file as they arrive
instead of being held in memory, and files are sent as their raw bytes without being decoded.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from pynetdicom import _config, evt
from pynetdicom.transport import AssociationSocket

from ..errors import UsageError, os_cause

log = logging.getLogger(__name__)

# A host is printable ASCII but ':', '@' and brackets (found from outside: one holding a space, a control
# character or a zero-width space was taken).
_PEER = re.compile(r"^(?P<aet>[^@]+)@(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[!-9;-?A-Z\\^-~]+)):(?P<port>[0-9]{1,5})$")


@dataclass(frozen=True)
class Peer:
    """A DICOM application entity on the network."""

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"


def parse_peer(text: str) -> Peer:
    """`AET@HOST:PORT` (an IPv6 host in brackets) as a Peer; UsageError if it is not one."""
    match = _PEER.match(text.strip())
    if match is None:
        raise UsageError(f"expected AET@HOST:PORT, got {text!r}")
    port = int(match["port"])
    if not 0 < port < 65536:
        raise UsageError(f"port out of range in {text!r}")
    return Peer(check_ae_title(match["aet"]), match["v6"] or match["host"], port)


def check_ae_title(title: str) -> str:
    """An AE title as PS3.5 allows it: 1 to 16 characters, not all spaces, no backslash or control character."""
    if not title.strip() or len(title) > 16 or "\\" in title or any(ord(c) < 32 or ord(c) > 126 for c in title):
        raise UsageError(f"not a valid AE title: {title!r} (1-16 printable characters, no backslash)")
    return title.strip()


def server_tls(cert: Path, key: Path, ca: Path | None = None) -> ssl.SSLContext:
    """A TLS context for accepting associations; with `ca`, peers must present a certificate it signed."""
    _readable_tls(("--tls-cert", cert), ("--tls-key", key), ("--tls-ca", ca))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load the TLS certificate {cert} (--tls-cert) with its key {key} (--tls-key): "
                         f"{_tls_cause(exc)}") from None
    if ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            context.load_verify_locations(ca)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot load the TLS CA {ca} (--tls-ca): {_tls_cause(exc)}") from None
    return context


def client_tls(ca: Path, cert: Path | None = None, key: Path | None = None,
               ca_option: str = "--tls-ca") -> ssl.SSLContext:
    """A TLS context for requesting associations: the peer must hold a certificate `ca` signed for its host.
    `ca_option` is the option that named `ca`, for messages."""
    if (cert is None) != (key is None):
        raise UsageError("a TLS client certificate needs both --tls-cert and --tls-key")
    _readable_tls((ca_option, ca), ("--tls-cert", cert), ("--tls-key", key))
    try:
        context = ssl.create_default_context(cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load the TLS CA {ca} ({ca_option}): {_tls_cause(exc)}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None and key is not None:
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot load the TLS certificate {cert} (--tls-cert) with its key {key} (--tls-key): "
                             f"{_tls_cause(exc)}") from None
    return context


def _readable_tls(*files: tuple[str, Path | None]) -> None:
    """Refuse a TLS file that cannot be read, naming it and its option (found from outside: the message said
    "No such file or directory" of no file)."""
    for option, path in files:
        if path is None:
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise UsageError(f"cannot read the TLS file {path} ({option}): "
                             f"{os_cause(exc)}") from None


def _tls_cause(exc: OSError) -> str:
    """Why OpenSSL refused a file ("PEM lib", "key values mismatch"), without a traceback."""
    if isinstance(exc, ssl.SSLError):
        return exc.reason or exc.strerror or type(exc).__name__
    return os_cause(exc)


def configure_pynetdicom() -> None:
    """Set pynetdicom up for the node (idempotent; before creating any AE)."""
    _config.LOG_HANDLER_LEVEL = "none"
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    _config.STORE_RECV_CHUNKED_DATASET = True
    _config.STORE_SEND_CHUNKED_DATASET = True
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)


def connection_opened(event: evt.Event) -> None:
    """On EVT_CONN_OPEN: send each PDU at once (DIMSE is request/response; with Nagle's algorithm a small response
    waits for the peer's delayed acknowledgement, about 40 ms, on every instance), and give up a read or write
    that stalls longer than the network timeout. pynetdicom reads a PDU with no timeout once its first bytes came:
    a peer that sent part of one and went quiet held `send` for good, deaf to signals, and a slot of `serve`'s
    associations until it was restarted (found from outside). And read no PDU longer than `MAX_PDU_BYTES`."""
    connection = getattr(event.assoc.dul, "socket", None)
    sock = getattr(connection, "socket", None)
    if sock is not None:
        sock.settimeout(event.assoc.network_timeout)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if connection is not None:
        _bound_reads(connection, getattr(event, "address", ("?", 0)))


# The longest PDU read: a P-DATA PDU is at most the length this end announced (pynetdicom's 16,382 bytes; some
# senders exceed it, so the bound is generous), an association's request or answer (and a release or abort) tens of
# kilobytes at most. pynetdicom reads whatever length a PDU's header declares, up to 4 GB, into memory (found from
# outside: three peers that declared 400 MB each took a node from 77 MB to 1.3 GB, before any check of who they
# were), and makes an object of each item a PDU holds (a request of 4 MB of tiny items cost 300 MB, found so too).
MAX_PDU_BYTES = 1 << 20
MAX_CONTROL_PDU_BYTES = 256 << 10
_P_DATA = 0x04  # the PDU type of P-DATA-TF


def _bound_reads(connection: AssociationSocket, address: tuple[str, int]) -> None:
    """Make pynetdicom's reads on `connection` fail, as a connection lost does, for a PDU longer than its bound
    (`MAX_PDU_BYTES` for P-DATA, else `MAX_CONTROL_PDU_BYTES`). pynetdicom reads a PDU's 6-byte header, then the
    length it declares, in one call each."""
    read = connection.recv
    header = bytearray()  # the header of the PDU whose body is read next; empty: a header is read next

    def bounded(nr_bytes: int) -> bytearray:
        if not header:
            header[:] = read(nr_bytes)
            return header.copy()
        pdu_type = header[0]
        header.clear()
        bound = MAX_PDU_BYTES if pdu_type == _P_DATA else MAX_CONTROL_PDU_BYTES
        if nr_bytes > bound:
            log.warning("connection with %s:%s closed: it declared a PDU of type %d of %d bytes (at most %d are "
                        "read)", address[0], address[1], pdu_type, nr_bytes, bound)
            raise OSError("a PDU over the length read")
        return read(nr_bytes)

    connection.recv = bounded  # type: ignore[method-assign]
