"""Sending files by C-STORE: each file's own bytes, in its own transfer syntax, never decoded.

Files are grouped so that one association carries at most 128 presentation contexts, one per (SOP class,
transfer syntax) pair the files use. Each file's outcome says whether the destination took it, refused it (a
failure status, or no context for it), or could not be reached (no association, or no answer).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info
from pynetdicom import AE, build_context, evt
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext

from .peer import Peer, configure_pynetdicom, connection_opened

MAX_CONTEXTS = 128  # PS3.8: presentation context IDs are odd numbers 1..255
TIMEOUT = 30.0  # seconds: connecting, negotiating, waiting for a response


@dataclass(frozen=True)
class Outcome:
    """What the destination did with one file."""

    delivered: bool
    refused: bool = False  # the destination answered "no" (as opposed to not answering)
    status: int | None = None
    reason: str = ""


UNREACHABLE = Outcome(False, reason="destination unreachable or the association was lost")


def delivered(status: int) -> bool:
    """Success, or a warning (PS3.4 B.2.3: the instance was stored, maybe with coercion)."""
    return status == 0x0000 or status == 0x0001 or 0xB000 <= status <= 0xBFFF


def send_files(
    peer: Peer, paths: list[Path], calling_ae: str, tls: ssl.SSLContext | None = None, timeout: float = TIMEOUT
) -> Generator[tuple[Path, Outcome], None, None]:
    """C-STORE each file to `peer`, yielding its outcome as soon as it is known (in the order given)."""
    configure_pynetdicom()
    ae = AE(ae_title=calling_ae)
    ae.connection_timeout = ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    for group in _groups(paths):
        yield from _send_group(ae, peer, group, tls)


_Item = tuple[Path, tuple[str, str] | None]  # a file and its (SOP class, transfer syntax), if it has a file meta


def _groups(paths: list[Path]) -> Iterator[list[_Item]]:
    """The files in order, cut into runs that need at most MAX_CONTEXTS distinct presentation contexts."""
    group: list[_Item] = []
    pairs: set[tuple[str, str]] = set()
    for path in paths:
        pair = _syntax(path)
        if pair is not None and pair not in pairs and len(pairs) == MAX_CONTEXTS:
            yield group
            group, pairs = [], set()
        if pair is not None:
            pairs.add(pair)
        group.append((path, pair))
    if group:
        yield group


def _syntax(path: Path) -> tuple[str, str] | None:
    """The file's SOP class and transfer syntax from its file meta, read raw: no value is converted, so
    pydicom validates nothing and warns of nothing (no switch of its process-wide settings is needed)."""
    try:
        meta = read_file_meta_info(path)
    except (OSError, InvalidDicomError, ValueError, EOFError, KeyError):
        return None
    sop_class, instance, syntax = (_raw_text(meta.get_item(tag)) for tag in (0x00020002, 0x00020003, 0x00020010))
    if not (sop_class and instance and syntax):
        return None
    return sop_class, syntax


def _raw_text(elem: object) -> str:
    value = getattr(elem, "value", None)
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value or "").rstrip("\0 ")


def _send_group(ae: AE, peer: Peer, group: list[_Item], tls: ssl.SSLContext | None) -> Iterator[tuple[Path, Outcome]]:
    """Each file of the group with its outcome, sent on one association."""
    pairs = sorted({pair for _, pair in group if pair is not None})
    contexts = _contexts(pairs)
    assoc = _associate(ae, peer, contexts, tls) if contexts else None
    if assoc is None or not assoc.is_established:
        outcome = _not_sent(pairs, contexts, assoc)
        for path, _ in group:
            yield path, outcome
        return
    yield from _store_group(assoc, group)


def _contexts(pairs: list[tuple[str, str]]) -> list[PresentationContext]:
    contexts = []
    for sop_class, syntax in pairs:
        with contextlib.suppress(ValueError):  # a malformed UID: its files find no accepted context
            contexts.append(build_context(sop_class, syntax))
    return contexts


def _associate(
    ae: AE, peer: Peer, contexts: list[PresentationContext], tls: ssl.SSLContext | None
) -> Association | None:
    try:
        return ae.associate(peer.host, peer.port, contexts=contexts, ae_title=peer.ae_title,
                            tls_args=(tls, peer.host) if tls is not None else None,
                            evt_handlers=[(evt.EVT_CONN_OPEN, connection_opened)])
    except (OSError, RuntimeError, ValueError):
        return None


def _not_sent(pairs: list[tuple[str, str]], contexts: list[PresentationContext], assoc: Association | None) -> Outcome:
    """Why no file of a group was sent: none has a file meta, none has a usable context, the destination accepted
    none of them (pynetdicom then aborts: found from outside, this was said as "unreachable", and `serve --forward`
    tried again for good), or no association."""
    if not pairs:
        return _NO_META
    if not contexts or (assoc is not None and assoc.rejected_contexts and not assoc.accepted_contexts):
        return _NO_CONTEXT
    return _rejected(assoc) if assoc is not None and assoc.is_rejected else UNREACHABLE


def _store_group(assoc: Association, group: list[_Item]) -> Iterator[tuple[Path, Outcome]]:
    """C-STORE each file of the group on an established association, then release it (abort it if lost)."""
    lost = False
    try:
        accepted = {(str(cx.abstract_syntax), str(cx.transfer_syntax[0])) for cx in assoc.accepted_contexts}
        for path, pair in group:
            if pair is None:
                yield path, _NO_META
            elif pair not in accepted:
                yield path, _NO_CONTEXT
            elif lost or not assoc.is_established:
                yield path, UNREACHABLE
            else:
                outcome = _store(assoc, path)
                lost = outcome is UNREACHABLE  # no answer: the rest would only wait out the timeout
                yield path, outcome
    finally:
        if lost:
            assoc.abort()
        elif assoc.is_established:
            assoc.release()


def _store(assoc: Association, path: Path) -> Outcome:
    try:
        answer = assoc.send_c_store(path)
    except (OSError, ValueError, AttributeError, RuntimeError) as exc:
        return Outcome(False, refused=True, reason=f"could not be sent ({type(exc).__name__})")
    status = answer.get("Status") if answer else None
    if status is None:
        return UNREACHABLE
    if delivered(int(status)):
        return Outcome(True, status=int(status))
    return Outcome(False, refused=True, status=int(status), reason=f"refused with status 0x{int(status):04X}")


_NO_META = Outcome(False, refused=True, reason="no file meta information (SOP class, transfer syntax): not sent")
_NO_CONTEXT = Outcome(False, refused=True, reason="the destination does not accept this SOP class and transfer syntax")


def _rejected(assoc: Association) -> Outcome:
    """The destination rejected the association, with the reason it gave (found from outside: the line did not say
    it, "called AE title not recognised" being what an operator has to set right)."""
    answer = assoc.acceptor.primitive
    why = answer.reason_str if answer is not None and answer.diagnostic is not None else "No reason given"
    why = why[:1].lower() + why[1:]  # ("called AE title not recognised")
    return Outcome(False, reason=f"the destination rejected the association: {why}")
