"""`pyswarm agent`: run the per-host daemon in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pyswarm.agent.config import DEFAULT_SOCKET, DEFAULT_STATE_DIR
from pyswarm.cli.agent_advertise import (
    LabelOption,
    NodeGenericResourceOption,
    parse_engine_labels,
    parse_node_generic_resources,
)


def agent(
    state_dir: Annotated[Path, typer.Option(help="Where images and containers live")] = (
        DEFAULT_STATE_DIR
    ),
    socket: Annotated[Path, typer.Option(help="The local API's unix socket")] = DEFAULT_SOCKET,
    bridge: Annotated[str, typer.Option(help="This host's container bridge")] = "pyswarm0",
    subnet: Annotated[str, typer.Option(help="Container addresses")] = "10.209.0.0/16",
    cgroup_parent: Annotated[str, typer.Option(help="Parent cgroup of containers")] = "pyswarm",
    netns_dir: Annotated[Path, typer.Option(help="Where network namespaces are pinned")] = Path(
        "/run/pyswarm/netns"
    ),
    iptables_chain: Annotated[str, typer.Option(help="Prefix of our iptables chains")] = (
        "PYSWARM"
    ),
    metrics_addr: Annotated[
        str, typer.Option(help="Serve Prometheus /metrics on HOST:PORT (off if empty)")
    ] = "",
    teardown: Annotated[
        bool, typer.Option("--teardown", help="Kill every container and remove what we made")
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
    insecure_registry: Annotated[
        list[str] | None,
        typer.Option(help="Registry HOST[:PORT] to reach over plain http (repeatable)"),
    ] = None,
    dns_upstream: Annotated[
        list[str] | None,
        typer.Option(
            help="Resolver ADDR[:PORT] that containers' names not in the cluster are"
            " forwarded to (repeatable; default: the host's /etc/resolv.conf)",
        ),
    ] = None,
    log_opt: Annotated[
        list[str] | None,
        typer.Option(
            "--log-opt",
            help="Default json-file log option for containers: max-size=10m, max-file=3",
        ),
    ] = None,
    label: LabelOption = None,
    node_generic_resource: NodeGenericResourceOption = None,
) -> None:
    """Run the agent daemon in the foreground (containers outlive it)."""
    import asyncio
    import logging

    from pyswarm.agent.config import AgentConfig
    from pyswarm.agent.daemon import serve
    from pyswarm.agent.daemon import teardown as teardown_host
    from pyswarm.common.log_options import parse_log_opts

    log_options = tuple(parse_log_opts(log_opt or []).items())

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from pyswarm.cli.parse import parse_dns_upstreams, parse_listen_address

    config = AgentConfig(
        state_dir=state_dir, socket=socket, bridge=bridge, subnet=subnet,
        cgroup_parent=cgroup_parent, netns_dir=netns_dir, iptables_chain=iptables_chain,
        metrics_addr=parse_listen_address(metrics_addr, "--metrics-addr"),
        insecure_registries=tuple(insecure_registry or ()), log_options=log_options,
        dns_upstreams=parse_dns_upstreams(dns_upstream or [], "--dns-upstream"),
        engine_labels=parse_engine_labels(label or []),
        generic_resources=parse_node_generic_resources(node_generic_resource or []),
    )  # fmt: skip
    asyncio.run(teardown_host(config) if teardown else serve(config))
