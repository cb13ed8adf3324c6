"""The manager's configuration: where it keeps state, where it listens, how it judges nodes.

`ManagerConfig` is what `pyswarm init` (and the lab, and tests) hand to `serve()`.
Every field has a product default; tests override ports, the state dir and the
heartbeat period.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_STATE_DIR = Path("/var/lib/pyswarm/manager")
DEFAULT_LISTEN_ADDR = "0.0.0.0:4242"
DEFAULT_JOIN_ADDR = "0.0.0.0:4243"
DEFAULT_METRICS_ADDR = "0.0.0.0:9323"
#: Nodes' container subnets: a /22 each (registration.py), so 1,024 nodes.
DEFAULT_SUBNET_POOL = "10.208.0.0/12"
#: A node that misses this many heartbeat periods in a row is DOWN.
MISSED_HEARTBEATS = 3


def default_advertise_ip() -> str:
    """The address other hosts most likely reach this one by: the source address of a
    route to the outside (no packet is sent), else loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere real
            address: str = probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"
    return address if address and not address.startswith("0.") else "127.0.0.1"


def port_of(address: str) -> int:
    """The port of "host:port" (0 when absent or not a number)."""
    _, _, port = address.rpartition(":")
    return int(port) if port.isdigit() else 0


def with_port(address: str, port: int) -> str:
    """`address` ("host:port") on `port` instead; `address` itself when `port` is 0."""
    if not port:
        return address
    host, _, _ = address.rpartition(":")
    return f"{host}:{port}"


#: Task events a session holds for an agent that reads slowly; past that the session
#: resyncs (the agent gets its COMPLETE set again) instead of growing without bound.
SESSION_MAX_EVENTS = 1024


@dataclass
class ManagerConfig:
    """How one manager process runs.

    - `state_dir`: certificates (certs/), the CLI's client identity (client/), the
      embedded etcd's data (etcd/), manager.json.
    - `listen_addr`: the main gRPC port, mutual TLS (Control, Dispatcher, NodeCA renewals).
    - `join_addr`: the join port, server-only TLS, NodeCA only.
    - `advertise_addr`: the IP (or host) agents and the CLI use to reach this manager;
      empty = `default_advertise_ip()`.
    - `etcd_endpoints`: "host:port" or "https://host:port" of an existing etcd cluster,
      reached over TLS with `etcd_cacert`, `etcd_cert` and `etcd_key` (etcdctl's files);
      empty = spawn an embedded etcd under state_dir, client URL on 127.0.0.1:`etcd_port`
      (0 = a free port, chosen once and remembered in state_dir), its certificates
      from the cluster CA in etcd-tls/.
    - `heartbeat_period`: seconds between agent heartbeats; a node missing
      `MISSED_HEARTBEATS` is DOWN.
    - `metrics_addr`: Prometheus /metrics and /sd; "" disables.
    - `task_history`: ended tasks kept per slot.
    - `lease_ttl`: the leader election's lease, seconds (the leader's death hands over
      within it).
    - `autolock`: a new cluster starts locked (`init --autolock`); an existing cluster's
      record decides.
    - `join_token`: the manager join token, for a further manager of a cluster whose
      secrets are sealed: it fetches the managers' data key with it (never in argv).
    - `insecure_registries`: registry HOST[:PORT]s the manager may ask over plain http
      when it pins a service's image to a digest (loopback registries always may).
    - `session_max_events`: task events one agent's session may hold unsent; past that
      the agent is sent its whole assignment set again (bounded memory per agent).
    - `etcd_addr`: the IP the embedded etcd listens on (client and peer ports); "" =
      the advertise address when one is given (other managers must reach it), else
      loopback. Fixed by a first start (remembered with the ports).
    - `join_managers`: main addresses of running managers: a first start joins their
      embedded etcd cluster as a new member through them (HA managers) instead of
      starting a new cluster.
    - `node_cert_dir`: the node identity (a manager certificate) of the node this
      manager runs for: its id is the manager's, and it is what asks to join.
    """

    state_dir: Path = DEFAULT_STATE_DIR
    listen_addr: str = DEFAULT_LISTEN_ADDR
    join_addr: str = DEFAULT_JOIN_ADDR
    advertise_addr: str = ""
    etcd_endpoints: list[str] = field(default_factory=list)
    etcd_cacert: Path | None = None
    etcd_cert: Path | None = None
    etcd_key: Path | None = None
    etcd_port: int = 2379
    etcd_peer_port: int = 2380
    heartbeat_period: float = 5.0
    node_subnet_pool: str = DEFAULT_SUBNET_POOL
    #: init --default-addr-pool / --default-addr-pool-mask-length: where overlay networks
    #: get their subnets (manager/network/ipam.py has the defaults). New clusters only.
    default_addr_pool: tuple[str, ...] = ()
    default_addr_pool_mask_length: int = 0
    metrics_addr: str = DEFAULT_METRICS_ADDR
    task_history: int = 5
    lease_ttl: int = 5
    #: Wait before replacing a task that ended, when its RestartPolicy sets no delay.
    restart_delay: float = 5.0
    #: How often the IPsec keys of encrypted networks are rotated (SwarmKit: 12 h).
    network_key_rotation: float = 12 * 3600.0
    #: Restart backoff and scheduler debounce are product constants; tests shorten them.
    reconcile_debounce: float = 0.05
    reconcile_max_delay: float = 1.0
    insecure_registries: tuple[str, ...] = ()
    autolock: bool = False
    join_token: str = field(default="", repr=False)
    #: Task events an agent's session holds unsent before it resyncs the agent.
    session_max_events: int = SESSION_MAX_EVENTS
    etcd_addr: str = ""
    join_managers: list[str] = field(default_factory=list)
    node_cert_dir: Path | None = None
    #: Seconds a stopping manager gives its parts to end before cancelling them.
    stop_grace: float = 5.0

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir)
        if self.heartbeat_period <= 0:
            raise ValueError("heartbeat_period must be positive")
        if self.task_history < 0:
            raise ValueError("task_history must not be negative")

    @property
    def advertise_ip(self) -> str:
        return self.advertise_addr or default_advertise_ip()

    @property
    def etcd_host(self) -> str:
        """The IP a first start's embedded etcd listens on (see `etcd_addr`)."""
        for candidate in (self.etcd_addr, self.advertise_addr):
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                continue  # empty, or a host name: etcd listens on IPs only
        return "127.0.0.1"

    @property
    def heartbeat_deadline(self) -> float:
        """Seconds without a heartbeat after which a node is DOWN."""
        return self.heartbeat_period * MISSED_HEARTBEATS

    @property
    def certs_dir(self) -> Path:
        return self.state_dir / "certs"

    @property
    def client_dir(self) -> Path:
        """The CLI's identity on this host (role manager): node.key, node.crt, ca.crt."""
        return self.state_dir / "client"

    @property
    def endpoint_file(self) -> Path:
        return self.state_dir / "manager.json"
