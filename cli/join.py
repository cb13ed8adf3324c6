"""`pyswarm join`: join a cluster as a worker and run this node's agent in the foreground.

`pyswarm join --token-file FILE MANAGER:PORT` (or the token in $PYSWARM_JOIN_TOKEN, or
`--token -` on stdin: see join_token_input.py; docker's `--token TOKEN` works too but
shows the token to every local user) dials the manager's JOIN port (as `docker swarm
join` dials 2377), pins the cluster CA by the token's digest, gets the node's
certificate and writes `<state-dir>/cluster/` (identity + cluster.json, whose manager
address is the main port: join port - 1, see pyswarm.agent.cluster.state). Then it runs
the agent daemon in cluster mode, exactly as `pyswarm agent` with the same flags would
afterwards. A wrong token or a manager of another cluster: a one-line error, exit 1,
nothing written. A node that has already joined this cluster just starts its agent.

With the manager token the node is a manager node: its agent also runs the node's
manager, whose etcd member joins the managers' etcd cluster (agent/cluster/
local_manager.py; `--manager-state-dir`, `--manager-port`, `--manager-etcd-port`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from pyswarm.agent.config import AgentConfig
from pyswarm.cli import agent_flags as flags
from pyswarm.cli.agent_advertise import LabelOption, NodeGenericResourceOption
from pyswarm.cli.manager_node import (
    MANAGER_ETCD_PORT,
    MANAGER_METRICS_PORT,
    MANAGER_PORT,
    ManagerEtcdPort,
    ManagerMetricsPort,
    ManagerPort,
    ManagerStateDir,
)

DEFAULT_METRICS_ADDR = "0.0.0.0:9324"


def join(
    manager: Annotated[str, typer.Argument(metavar="MANAGER:PORT", help="A manager's join port")],
    token: Annotated[
        str | None,
        typer.Option(help="The join token, or '-' to read it from stdin (prefer --token-file)"),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(help="A file holding the join token (or set $PYSWARM_JOIN_TOKEN)"),
    ] = None,
    advertise_addr: Annotated[
        str, typer.Option(help="The address other nodes and managers reach this node at")
    ] = "",
    metrics_addr: Annotated[
        str, typer.Option(help="Serve Prometheus /metrics on HOST:PORT (empty: off)")
    ] = DEFAULT_METRICS_ADDR,
    hostname: Annotated[str, typer.Option(help="The node's name (default: the hostname)")] = "",
    state_dir: flags.StateDir = flags.STATE_DIR,
    socket: flags.Socket = flags.SOCKET,
    bridge: flags.Bridge = flags.BRIDGE,
    cgroup_parent: flags.CgroupParent = flags.CGROUP_PARENT,
    netns_dir: flags.NetnsDir = flags.NETNS_DIR,
    iptables_chain: flags.IptablesChain = flags.IPTABLES_CHAIN,
    log_level: flags.LogLevel = flags.LOG_LEVEL,
    insecure_registry: flags.InsecureRegistry = None,
    dns_upstream: flags.DnsUpstream = None,
    log_opt: flags.LogOpt = None,
    label: LabelOption = None,
    node_generic_resource: NodeGenericResourceOption = None,
    manager_state_dir: ManagerStateDir = None,
    manager_port: ManagerPort = MANAGER_PORT,
    manager_etcd_port: ManagerEtcdPort = MANAGER_ETCD_PORT,
    manager_metrics_port: ManagerMetricsPort = MANAGER_METRICS_PORT,
) -> None:
    """Join a cluster and run this node's agent in the foreground."""
    import asyncio

    from pyswarm.agent.daemon import serve
    from pyswarm.cli.join_token_input import JOIN_TOKEN_ENV, read_join_token

    config = flags.agent_config(
        state_dir=state_dir, socket=socket, bridge=bridge, cgroup_parent=cgroup_parent,
        netns_dir=netns_dir, iptables_chain=iptables_chain,
        insecure_registry=insecure_registry, dns_upstream=dns_upstream, log_opt=log_opt,
        label=label, node_generic_resource=node_generic_resource,
        manager=(manager_state_dir, manager_port, manager_etcd_port, manager_metrics_port),
    )  # fmt: skip
    join_token = read_join_token(token, token_file)
    os.environ.pop(JOIN_TOKEN_ENV, None)  # the agent's children do not inherit it
    flags.setup_logging(log_level)
    asyncio.run(_join(config, manager, join_token, advertise_addr, metrics_addr, hostname))
    asyncio.run(serve(config))


async def _join(
    config: AgentConfig,
    manager: str,
    token: str,
    advertise_addr: str,
    metrics_addr: str,
    hostname: str,
) -> None:
    """Join unless this node already belongs to the token's cluster; write cluster.json."""
    import logging

    from pyswarm.agent.cluster.state import ClusterState, cluster_dir, main_address_for_join
    from pyswarm.cli.parse import parse_listen_address
    from pyswarm.common.errors import FailedPrecondition
    from pyswarm.common.join import join_cluster, split_address
    from pyswarm.common.join_token import ca_fingerprint, parse_join_token
    from pyswarm.common.node_identity import role_name

    parsed = parse_join_token(token)
    split_address(manager)
    parse_listen_address(metrics_addr, "--metrics-addr")
    if ClusterState.exists(config.state_dir):
        state = ClusterState.load(config.state_dir)
        identity = state.identity()
        if ca_fingerprint(identity.ca_pem) != parsed.ca_digest:
            raise FailedPrecondition(
                f"this node is already part of another cluster (node {identity.node_id});"
                f" remove {cluster_dir(config.state_dir)} to leave it"
            )
        logging.getLogger(__name__).info(
            "already joined as node %s; starting the agent", identity.node_id
        )
        return
    directory = cluster_dir(config.state_dir)
    identity = await join_cluster(manager, token, directory)
    ClusterState(
        directory,
        managers=[main_address_for_join(manager)],
        node_id=identity.node_id,
        advertise_addr=advertise_addr,
        metrics_addr=metrics_addr,
        hostname=hostname,
    ).save()
    role = role_name(identity.role)
    print(f"This node joined the cluster as a {role} (node {identity.node_id}).", flush=True)
