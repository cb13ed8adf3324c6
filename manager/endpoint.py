"""`<state_dir>/manager.json`: how the CLI, the lab and tests reach a manager.

A serving manager writes it once its ports are bound; a locked one (autolock) writes it
too, with the ports that answer only `swarm unlock`, and the unlocked manager keeps them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from pyswarm.common.json_files import write_json
from pyswarm.common.node_identity import NodeIdentity
from pyswarm.manager.config import ManagerConfig

ENDPOINT_FILE = "manager.json"


@dataclass(frozen=True)
class EndpointInfo:
    """What `<state_dir>/manager.json` holds: how the CLI and the lab reach a manager."""

    advertise_addr: str
    listen_port: int
    join_port: int
    cluster_id: str
    manager_id: str
    client_cert_dir: str
    metrics_port: int

    @property
    def address(self) -> str:
        return f"{self.advertise_addr}:{self.listen_port}"

    @property
    def join_address(self) -> str:
        return f"{self.advertise_addr}:{self.join_port}"


def manager_endpoint_file(state_dir: Path) -> Path:
    return Path(state_dir) / ENDPOINT_FILE


def read_endpoint(state_dir: Path) -> EndpointInfo:
    """The endpoint a manager with this state dir wrote (FileNotFoundError if none)."""
    data = json.loads(manager_endpoint_file(state_dir).read_text())
    return EndpointInfo(**data)


def write_endpoint(state_dir: Path, info: EndpointInfo) -> None:
    path = manager_endpoint_file(state_dir)
    write_json(path, asdict(info))


def write_locked_endpoint(config: ManagerConfig, listen_port: int, join_port: int) -> None:
    """manager.json for a locked manager, so the CLI reaches it for `swarm unlock`."""
    identity = NodeIdentity.load(config.certs_dir)
    write_endpoint(
        config.state_dir,
        EndpointInfo(
            advertise_addr=config.advertise_ip,
            listen_port=listen_port,
            join_port=join_port,
            cluster_id=identity.cluster_id,
            manager_id=identity.node_id,
            client_cert_dir=str(config.client_dir),
            metrics_port=0,
        ),
    )
