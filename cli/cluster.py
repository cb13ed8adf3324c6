"""`pyswarm init` (a manager, in the foreground) and `pyswarm join-token`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pyswarm.cli.parse import CliInputError
from pyswarm.common.durations import parse_duration_ns

DEFAULT_MANAGER_DIR = Path("/var/lib/pyswarm/manager")


def etcd_flags(etcd: str, cacert: Path | None, cert: Path | None, key: Path | None) -> list[str]:
    """The --etcd endpoints, checked with their TLS files before anything starts: etcd
    is spoken to only over TLS with a client certificate (etcdctl's flag names)."""
    tls = {"--cacert": cacert, "--cert": cert, "--key": key}
    if not etcd:
        given = [flag for flag, path in tls.items() if path is not None]
        if given:
            raise CliInputError(f"{given[0]} is for an existing etcd: give --etcd", field=given[0])
        return []
    from pyswarm.manager.store import StoreError
    from pyswarm.manager.store.etcd_channel import parse_endpoints

    try:
        parse_endpoints(etcd)
    except StoreError as err:
        raise CliInputError(f"--etcd: {err.message}", field="--etcd") from err
    for flag, path in tls.items():
        if path is None:
            raise CliInputError(
                f"--etcd needs {flag}: etcd is spoken to only over TLS with a client"
                " certificate (--cacert, --cert, --key)",
                field=flag,
            )
        if not path.is_file():
            raise CliInputError(f"{flag}: no such file {path}", field=flag)
    return [e.strip() for e in etcd.split(",") if e.strip()]


def _address_pools(pools: list[str], mask_length: int) -> int:
    """--default-addr-pool values checked (a clear error naming the flag); the mask."""
    from pyswarm.manager.network.errors import InvalidIPAM
    from pyswarm.manager.network.ipam import check_pools

    if not pools and not mask_length:
        return 0
    try:
        check_pools(pools, mask_length)
    except InvalidIPAM as err:
        raise CliInputError(str(err), field=f"--{err.field}") from None
    return mask_length


def init(
    state_dir: Annotated[Path, typer.Option(help="Manager state")] = Path(
        "/var/lib/pyswarm/manager"
    ),
    advertise_addr: Annotated[str, typer.Option(help="Address other hosts reach")] = "",
    listen_addr: Annotated[str, typer.Option(help="Main port (mutual TLS)")] = "0.0.0.0:4242",
    join_addr: Annotated[str, typer.Option(help="Join port (TLS, tokens)")] = "0.0.0.0:4243",
    etcd: Annotated[
        str, typer.Option(help="Existing etcd: https://HOST:PORT,... (default: embedded)")
    ] = "",
    cacert: Annotated[
        Path | None, typer.Option("--cacert", help="With --etcd: the CA to verify etcd with")
    ] = None,
    cert: Annotated[
        Path | None, typer.Option("--cert", help="With --etcd: this manager's etcd client cert")
    ] = None,
    key: Annotated[
        Path | None, typer.Option("--key", help="With --etcd: the key of --cert")
    ] = None,
    heartbeat_period: Annotated[str, typer.Option(help="Agent heartbeat, e.g. 5s")] = "5s",
    metrics_addr: Annotated[str, typer.Option(help="/metrics and /sd ('' = off)")] = (
        "0.0.0.0:9323"
    ),
    insecure_registry: Annotated[
        list[str] | None,
        typer.Option(help="Registry HOST[:PORT] to resolve digests from over plain http"),
    ] = None,
    autolock: Annotated[
        bool,
        typer.Option(
            "--autolock", help="A new cluster locks managers' keys: a restart needs the unlock key"
        ),
    ] = False,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="Manager join token (or $PYSWARM_JOIN_TOKEN), for a further manager on --etcd"
        ),
    ] = None,
    default_addr_pool: Annotated[
        list[str] | None,
        typer.Option(help="A new cluster's pool (CIDR, repeatable) for overlay subnets"),
    ] = None,
    default_addr_pool_mask_length: Annotated[
        int, typer.Option(help="Prefix length of each overlay subnet from the pools")
    ] = 0,
    etcd_port: Annotated[
        int, typer.Option(help="The embedded etcd's client port (0: a free one)")
    ] = 2379,
    etcd_peer_port: Annotated[
        int, typer.Option(help="The embedded etcd's peer port (0: a free one)")
    ] = 2380,
    join_manager: Annotated[
        list[str] | None,
        typer.Option(
            hidden=True, help="A running manager's main address: join its etcd (a manager node)"
        ),
    ] = None,
    node_cert_dir: Annotated[
        Path | None,
        typer.Option(hidden=True, help="The identity of the manager node this manager is for"),
    ] = None,
    no_context: Annotated[bool, typer.Option("--no-context", hidden=True)] = False,
) -> None:
    """Start a manager (and its embedded etcd) in the foreground, as a new cluster or an
    existing one's when its state dir or --etcd already holds one."""
    import asyncio
    import logging

    from pyswarm.cli.parse import parse_listen_address
    from pyswarm.manager.config import ManagerConfig, port_of
    from pyswarm.manager.seal.keyfile import key_file_path
    from pyswarm.manager.server import serve

    endpoints = etcd_flags(etcd, cacert, cert, key)
    pools = _address_pools(default_addr_pool or [], default_addr_pool_mask_length)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    heartbeat_ns = parse_duration_ns(heartbeat_period, "--heartbeat-period", bare_seconds=True)
    config = ManagerConfig(
        state_dir=state_dir,
        advertise_addr=advertise_addr,
        listen_addr=listen_addr,
        join_addr=join_addr,
        etcd_endpoints=endpoints,
        etcd_cacert=cacert,
        etcd_cert=cert,
        etcd_key=key,
        heartbeat_period=heartbeat_ns / 1e9,
        metrics_addr=parse_listen_address(metrics_addr, "--metrics-addr"),
        insecure_registries=tuple(insecure_registry or ()),
        autolock=autolock,
        join_token=_manager_token(token_file),
        default_addr_pool=tuple(default_addr_pool or ()),
        default_addr_pool_mask_length=pools,
        etcd_port=_port(etcd_port, "--etcd-port"),
        etcd_peer_port=_port(etcd_peer_port, "--etcd-peer-port"),
        join_managers=list(join_manager or ()),
        node_cert_dir=node_cert_dir,
    )
    new_key = not key_file_path(state_dir).exists()

    async def run() -> None:
        ready, locked = asyncio.Event(), asyncio.Event()
        server = asyncio.create_task(serve(config, ready=ready, locked=locked))
        waiter = asyncio.create_task(ready.wait())
        locked_waiter = asyncio.create_task(locked.wait())
        await asyncio.wait({server, waiter, locked_waiter}, return_when=asyncio.FIRST_COMPLETED)
        if locked.is_set() and not ready.is_set():
            print(
                "This manager is locked: run `pyswarm swarm unlock` with the unlock key.",
                file=sys.stderr,
                flush=True,
            )
        await asyncio.wait({server, waiter}, return_when=asyncio.FIRST_COMPLETED)
        for pending in (waiter, locked_waiter):
            pending.cancel()
        await asyncio.gather(waiter, locked_waiter, return_exceptions=True)
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
            if autolock and new_key:
                # A blocking call: in a thread, since this loop serves the manager.
                await asyncio.to_thread(_announce_unlock_key, state_dir)
        await server

    asyncio.run(run())


def _port(port: int, flag: str) -> int:
    if not 0 <= port < 65536:
        raise CliInputError(f"invalid {flag} {port}: a port from 0 to 65535", field=flag)
    return port


def _manager_token(token_file: Path | None) -> str:
    """The manager join token from --token-file or $PYSWARM_JOIN_TOKEN (never argv)."""
    import os

    if token_file is not None:
        try:
            return token_file.read_text().strip()
        except OSError as err:
            raise CliInputError(
                f"cannot read --token-file {token_file}: {err.strerror}", field="--token-file"
            ) from None
    return os.environ.get("PYSWARM_JOIN_TOKEN", "").strip()


def _announce_unlock_key(state_dir: Path) -> None:
    """Print a new cluster's unlock key once, as docker's init --autolock does."""
    import grpc

    from pyswarm.cli.swarm_lock import print_unlock_key
    from pyswarm.common.context import Context
    from pyswarm.common.manager_client import manager_channel_for
    from pyswarm.common.rpc_errors import describe
    from pyswarm.manager.server import read_endpoint
    from pyswarm.proto import seal_pb2, seal_pb2_grpc

    endpoint = read_endpoint(state_dir)
    context = Context("init", endpoint.address, endpoint.client_cert_dir)
    stub = seal_pb2_grpc.ManagerUnlockStub(manager_channel_for(context))
    try:
        answer = stub.GetUnlockKey(seal_pb2.UnlockKeyRequest(), timeout=10)
    except grpc.RpcError as err:  # e.g. --autolock given to an existing cluster's manager
        print(f"Warning: no unlock key shown: {describe(err)[0]}", file=sys.stderr)
        return
    print_unlock_key(answer.unlock_key)


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
    # The token goes in the environment, not the arguments, which every local user sees.
    print(f"To add a {role} to this cluster, run the following command:\n")
    print(f"    PYSWARM_JOIN_TOKEN={token} pyswarm join {host}:{join_port}\n")
