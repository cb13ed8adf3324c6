"""The flags `pyswarm agent` and `pyswarm join` share (join runs the same agent), and the
AgentConfig and logging they make: one definition, so the two commands never drift."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pyswarm.agent.config import DEFAULT_SOCKET, DEFAULT_STATE_DIR, AgentConfig
from pyswarm.cli.manager_node import (
    MANAGER_ETCD_PORT,
    MANAGER_METRICS_PORT,
    MANAGER_PORT,
    manager_settings,
)

StateDir = Annotated[Path, typer.Option(help="Where images and containers live")]
Socket = Annotated[Path, typer.Option(help="The local API's unix socket")]
Bridge = Annotated[str, typer.Option(help="This host's container bridge")]
CgroupParent = Annotated[str, typer.Option(help="Parent cgroup of containers")]
NetnsDir = Annotated[Path, typer.Option(help="Where network namespaces are pinned")]
IptablesChain = Annotated[str, typer.Option(help="Prefix of our iptables chains")]
LogLevel = Annotated[str, typer.Option(help="debug, info, warning")]
InsecureRegistry = Annotated[
    list[str] | None,
    typer.Option(help="Registry HOST[:PORT] to reach over plain http (repeatable)"),
]
DnsUpstream = Annotated[
    list[str] | None,
    typer.Option(
        help="Resolver ADDR[:PORT] that containers' names not in the cluster are"
        " forwarded to (repeatable; default: the host's /etc/resolv.conf)",
    ),
]
LogOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--log-opt",
        help="Default json-file log option for containers: max-size=10m, max-file=3",
    ),
]

STATE_DIR = DEFAULT_STATE_DIR
SOCKET = DEFAULT_SOCKET
BRIDGE = "pyswarm0"
CGROUP_PARENT = "pyswarm"
NETNS_DIR = Path("/run/pyswarm/netns")
IPTABLES_CHAIN = "PYSWARM"
LOG_LEVEL = "info"


def setup_logging(level: str) -> None:
    import logging

    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def agent_config(
    *,
    state_dir: Path,
    socket: Path,
    bridge: str,
    cgroup_parent: str,
    netns_dir: Path,
    iptables_chain: str,
    insecure_registry: list[str] | None,
    dns_upstream: list[str] | None,
    log_opt: list[str] | None,
    label: list[str] | None = None,
    node_generic_resource: list[str] | None = None,
    manager: tuple[Path | None, int, int, int] = (
        None,
        MANAGER_PORT,
        MANAGER_ETCD_PORT,
        MANAGER_METRICS_PORT,
    ),
) -> AgentConfig:
    """The AgentConfig of the shared flags; CliInputError names a bad --log-opt,
    --dns-upstream, --label, --node-generic-resource or manager port. `manager`: the
    --manager-state-dir, --manager-port, --manager-etcd-port, --manager-metrics-port."""
    from pyswarm.cli.agent_advertise import parse_engine_labels, parse_node_generic_resources
    from pyswarm.cli.parse import parse_dns_upstreams
    from pyswarm.common.log_options import parse_log_opts

    return AgentConfig(
        state_dir=state_dir, socket=socket, bridge=bridge, cgroup_parent=cgroup_parent,
        netns_dir=netns_dir, iptables_chain=iptables_chain,
        insecure_registries=tuple(insecure_registry or ()),
        log_options=tuple(parse_log_opts(log_opt or []).items()),
        dns_upstreams=parse_dns_upstreams(dns_upstream or [], "--dns-upstream"),
        engine_labels=parse_engine_labels(label or []),
        generic_resources=parse_node_generic_resources(node_generic_resource or []),
        **manager_settings(*manager),
    )  # fmt: skip
