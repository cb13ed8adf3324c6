"""`pyswarm agent`: run the per-host daemon in the foreground."""

from __future__ import annotations

from typing import Annotated

import typer

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


def agent(
    state_dir: flags.StateDir = flags.STATE_DIR,
    socket: flags.Socket = flags.SOCKET,
    bridge: flags.Bridge = flags.BRIDGE,
    subnet: Annotated[str, typer.Option(help="Container addresses")] = "10.209.0.0/16",
    cgroup_parent: flags.CgroupParent = flags.CGROUP_PARENT,
    netns_dir: flags.NetnsDir = flags.NETNS_DIR,
    iptables_chain: flags.IptablesChain = flags.IPTABLES_CHAIN,
    metrics_addr: Annotated[
        str, typer.Option(help="Serve Prometheus /metrics on HOST:PORT (off if empty)")
    ] = "",
    teardown: Annotated[
        bool, typer.Option("--teardown", help="Kill every container and remove what we made")
    ] = False,
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
    """Run the agent daemon in the foreground (containers outlive it)."""
    import asyncio
    import dataclasses

    from pyswarm.agent.daemon import serve
    from pyswarm.agent.daemon import teardown as teardown_host
    from pyswarm.cli.parse import parse_listen_address

    config = flags.agent_config(
        state_dir=state_dir, socket=socket, bridge=bridge, cgroup_parent=cgroup_parent,
        netns_dir=netns_dir, iptables_chain=iptables_chain,
        insecure_registry=insecure_registry, dns_upstream=dns_upstream, log_opt=log_opt,
        label=label, node_generic_resource=node_generic_resource,
        manager=(manager_state_dir, manager_port, manager_etcd_port, manager_metrics_port),
    )  # fmt: skip
    config = dataclasses.replace(
        config, subnet=subnet, metrics_addr=parse_listen_address(metrics_addr, "--metrics-addr")
    )
    flags.setup_logging(log_level)
    asyncio.run(teardown_host(config) if teardown else serve(config))
