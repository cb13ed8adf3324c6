"""What a node that joined a cluster keeps: its identity and `cluster.json`.

Layout under the agent's state dir:

    cluster/            0700, the node identity (node.key 0600, node.crt, ca.crt)
    cluster/cluster.json  {"managers": ["host:port", ...], "node_id": "...", "subnet": "...",
                           "advertise_addr": "...", "metrics_addr": "...", "hostname": "..."}

`managers` are the managers' MAIN addresses (mutual TLS, the Dispatcher). `pyswarm join`
is given a JOIN address; by convention a manager's join port is its main port + 1
(`main_address_for_join`), and from the first registration on the list is the one the
managers send (RegisterResponse.managers, HeartbeatAck.managers). `subnet` is the
container subnet the manager allocated to this node; once set it is never changed by a
restart, so running containers keep their addresses. `advertise_addr`, `metrics_addr`
and `hostname` are what `pyswarm join` was told, kept so that a plain `pyswarm agent`
restart registers the node the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pyswarm.common.errors import FailedPrecondition
from pyswarm.common.join import split_address
from pyswarm.common.node_identity import NodeIdentity
from pyswarm.common.secure_files import ensure_private_dir, write_public_file

CLUSTER_DIR = "cluster"
STATE_FILE = "cluster.json"
JOIN_PORT_OFFSET = 1  # join port = main port + 1


def cluster_dir(state_dir: Path) -> Path:
    return state_dir / CLUSTER_DIR


def main_address_for_join(join_address: str) -> str:
    """The main (mTLS) address of the manager whose join port is `join_address`."""
    host, port = split_address(join_address)
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port - JOIN_PORT_OFFSET}"


@dataclass
class ClusterState:
    """cluster.json, read and written as a whole (atomic replace)."""

    directory: Path
    managers: list[str] = field(default_factory=list)
    node_id: str = ""
    subnet: str = ""
    advertise_addr: str = ""
    metrics_addr: str = ""
    hostname: str = ""

    @property
    def path(self) -> Path:
        return self.directory / STATE_FILE

    @staticmethod
    def exists(state_dir: Path) -> bool:
        """Whether this agent has joined a cluster (and so runs in cluster mode)."""
        directory = cluster_dir(state_dir)
        return (directory / STATE_FILE).is_file() and NodeIdentity.exists(directory)

    @classmethod
    def load(cls, state_dir: Path) -> ClusterState:
        directory = cluster_dir(state_dir)
        try:
            data = json.loads((directory / STATE_FILE).read_text())
        except (OSError, ValueError) as err:
            raise FailedPrecondition(
                f"cannot read {directory / STATE_FILE}: {err}; join the cluster again"
            ) from err
        managers = [str(m) for m in data.get("managers", [])]
        if not managers:
            raise FailedPrecondition(f"{directory / STATE_FILE} names no manager")
        return cls(
            directory,
            managers=managers,
            node_id=str(data.get("node_id", "")),
            subnet=str(data.get("subnet", "")),
            advertise_addr=str(data.get("advertise_addr", "")),
            metrics_addr=str(data.get("metrics_addr", "")),
            hostname=str(data.get("hostname", "")),
        )

    def identity(self) -> NodeIdentity:
        return NodeIdentity.load(self.directory)

    def save(self) -> None:
        ensure_private_dir(self.directory)
        data = {
            "managers": self.managers,
            "node_id": self.node_id,
            "subnet": self.subnet,
            "advertise_addr": self.advertise_addr,
            "metrics_addr": self.metrics_addr,
            "hostname": self.hostname,
        }
        write_public_file(self.path, (json.dumps(data, indent=2) + "\n").encode())

    def learn_managers(self, managers: list[str]) -> bool:
        """Adopt the managers' own list (order kept, duplicates dropped); True if changed."""
        fresh = list(dict.fromkeys(m for m in managers if m))
        if not fresh or fresh == self.managers:
            return False
        self.managers = fresh
        return True
