"""The agent's settings: where its state lives and which host resources it owns.

Several agents may share one machine (the lab runs one per network namespace), so
everything an agent creates on the host is named from here and nothing is global.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE_DIR = Path("/var/lib/pyswarm")
DEFAULT_SOCKET = Path("/run/pyswarm/agent.sock")


@dataclass(frozen=True)
class AgentConfig:
    state_dir: Path = DEFAULT_STATE_DIR
    socket: Path = DEFAULT_SOCKET
    bridge: str = "pyswarm0"
    subnet: str = "10.209.0.0/16"
    cgroup_parent: str = "pyswarm"
    netns_dir: Path = Path("/run/pyswarm/netns")
    iptables_chain: str = "PYSWARM"
    metrics_addr: str = ""  # host:port of /metrics; "" = off
    session_max_backoff: float = 5.0  # seconds between reconnects to managers, at most
    insecure_registries: tuple[str, ...] = ()  # hosts pulled from over plain http
    # --log-opt defaults for every container (docker's daemon.json "log-opts"):
    # (key, value) pairs, checked by common/log_options.py.
    log_options: tuple[tuple[str, str], ...] = ()
    # Where the containers' resolver forwards names it does not own: ADDR[:PORT] each;
    # empty = the host's /etc/resolv.conf nameservers.
    dns_upstreams: tuple[str, ...] = ()
    # What the node advertises about itself (docker's daemon flags): `--label K=V`
    # (engine labels, for `engine.labels.K` constraints) and `--node-generic-resource
    # KIND=N` (discrete resources services reserve with --generic-resource).
    engine_labels: tuple[tuple[str, str], ...] = ()
    generic_resources: tuple[tuple[str, int], ...] = ()
    # Where this node's manager keeps its state when the node is a manager (its agent
    # runs it: local_manager.py); None = <state_dir>/manager, `init`'s default.
    manager_state_dir: Path | None = None
    manager_port: int = 4242  # its main port; the join port is the next one
    manager_etcd_port: int = 2379  # its etcd's client port, the peer port next; 0: free
    manager_metrics_port: int = 9323  # 0: no /metrics

    @property
    def manager_dir(self) -> Path:
        return self.manager_state_dir or self.state_dir / "manager"

    @property
    def images_dir(self) -> Path:
        return self.state_dir / "images"

    @property
    def containers_dir(self) -> Path:
        return self.state_dir / "containers"

    @property
    def volumes_dir(self) -> Path:
        return self.state_dir / "volumes"

    @property
    def network_dir(self) -> Path:
        return self.state_dir / "network"

    @property
    def supervisor_dir(self) -> Path:
        return self.state_dir / "supervisor"

    @property
    def supervisor_socket(self) -> Path:
        return self.state_dir / "supervisor.sock"
