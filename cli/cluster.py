"""`pyswarm init` (a manager, in the foreground) and `pyswarm join-token`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pyswarm.cli.parse import CliInputError
from pyswarm.common.durations import parse_duration_ns

DEFAULT_MANAGER_DIR = Path("/var/lib/pyswarm/manager")


def init(
    state_dir: Annotated[Path, typer.Option(help="Manager state")] = Path(
        "/var/lib/pyswarm/manager"
    ),
    advertise_addr: Annotated[str, typer.Option(help="Address other hosts reach")] = "",
    listen_addr: Annotated[str, typer.Option(help="Main port (mutual TLS)")] = "0.0.0.0:4242",
    join_addr: Annotated[str, typer.Option(help="Join port (TLS, tokens)")] = "0.0.0.0:4243",
    etcd: Annotated[str, typer.Option(help="Existing etcd: URL,URL (default: embedded)")] = "",
    heartbeat_period: Annotated[str, typer.Option(help="Agent heartbeat, e.g. 5s")] = "5s",
    metrics_addr: Annotated[str, typer.Option(help="/metrics and /sd ('' = off)")] = (
        "0.0.0.0:9323"
    ),
    insecure_registry: Annotated[
        list[str] | None,
        typer.Option(help="Registry HOST[:PORT] to resolve digests from over plain http"),
    ] = None,
    no_context: Annotated[bool, typer.Option("--no-context", hidden=True)] = False,
) -> None:
    """Start a manager (and its embedded etcd) in the foreground, as a new cluster or an
    existing one's when its state dir or --etcd already holds one."""
    import asyncio
    import logging

    from pyswarm.manager.config import ManagerConfig, port_of
    from pyswarm.manager.server import serve

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    heartbeat_ns = parse_duration_ns(heartbeat_period, "--heartbeat-period", bare_seconds=True)
    config = ManagerConfig(
        state_dir=state_dir,
        advertise_addr=advertise_addr,
        listen_addr=listen_addr,
        join_addr=join_addr,
        etcd_endpoints=[e for e in etcd.split(",") if e],
        heartbeat_period=heartbeat_ns / 1e9,
        metrics_addr=metrics_addr,
        insecure_registries=tuple(insecure_registry or ()),
    )

    async def run() -> None:
        ready = asyncio.Event()
        server = asyncio.create_task(serve(config, ready=ready))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({server, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set():
            address = f"{config.advertise_addr}:{port_of(config.listen_addr)}"
            if not no_context:
                from pyswarm.common.context import Context, save_context

                save_context(Context("default", address, str(state_dir / "client")))
            print(
                f"Manager ready at {address}. Add a worker with:\n\n"
                f"    pyswarm join-token worker\n",
                file=sys.stderr,
                flush=True,
            )
        await server

    asyncio.run(run())


def join_token(
    role: Annotated[str, typer.Argument(help="worker or manager")],
    rotate: Annotated[bool, typer.Option("--rotate")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only the token")] = False,
) -> None:
    """Show (or rotate) the token a new node joins with."""
    from pyswarm.common.context import current
    from pyswarm.common.manager_client import control
    from pyswarm.proto import control_pb2, types_pb2

    roles = {"worker": types_pb2.NodeSpec.WORKER, "manager": types_pb2.NodeSpec.MANAGER}
    if role not in roles:
        raise CliInputError(f"unknown role {role}: worker or manager", field="role")
    stub = control()
    if rotate:
        tokens = stub.RotateJoinToken(control_pb2.RotateJoinTokenRequest(role=roles[role]))
    else:
        tokens = stub.GetJoinTokens(control_pb2.GetJoinTokensRequest())
    token = tokens.worker if role == "worker" else tokens.manager
    if quiet:
        print(token)
        return
    host, _, port = current().manager.rpartition(":")
    join_port = int(port) + 1 if port.isdigit() else 4243
    if rotate:
        print(f"Successfully rotated {role} join token.\n")
    print(f"To add a {role} to this cluster, run the following command:\n")
    print(f"    pyswarm join --token {token} {host}:{join_port}\n")
