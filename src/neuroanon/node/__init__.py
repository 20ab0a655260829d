"""The DICOM node: `serve` (Storage and Verification SCP in front of the pipeline, storing or forwarding) and
`send` (anonymize files and C-STORE them). Built on pynetdicom; it calls the pipeline and never reaches around it.
"""

from __future__ import annotations

from .outbox import Retry
from .peer import Peer, check_ae_title, client_tls, parse_peer, server_tls
from .scp import Node, NodeConfig, Tally
from .send import send_tree
from .spool import incoming, private_incoming

__all__ = [
    "Node", "NodeConfig", "Peer", "Retry", "Tally", "check_ae_title", "client_tls", "parse_peer",
    "incoming", "private_incoming", "send_tree", "server_tls",
]
