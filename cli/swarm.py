"""`pyswarm swarm ...`: docker's swarm group. init, join and join-token are the same
commands as the top-level ones; the cluster-wide settings (update, ca, unlock,
unlock-key) and leave live here. `swarm ca` is in swarm_ca.py."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from pyswarm.cli.cluster import init, join_token
from pyswarm.cli.join import join
from pyswarm.cli.parse import CliInputError
from pyswarm.cli.swarm_lock import unlock, unlock_key

app = typer.Typer(help="Manage the swarm", no_args_is_help=True)
app.command("init")(init)
app.command("join")(join)
app.command("join-token")(join_token)
app.command("unlock")(unlock)
app.command("unlock-key")(unlock_key)


@app.command("update")
def update(
    autolock: Annotated[
        str | None,
        typer.Option("--autolock", help="Lock managers' keys: true|false", metavar="BOOL"),
    ] = None,
    cert_expiry: Annotated[
        str | None, typer.Option("--cert-expiry", help="Node certificate lifetime, e.g. 2160h")
    ] = None,
) -> None:
    """Change cluster-wide settings (docker swarm update)."""
    if autolock is None and cert_expiry is None:
        raise CliInputError("nothing to update: give --autolock or --cert-expiry", field="flags")
    if cert_expiry is not None:
        from pyswarm.cli.swarm_ca import set_cert_expiry

        set_cert_expiry(cert_expiry)
    if autolock is not None:
        from pyswarm.cli.swarm_lock import set_autolock

        set_autolock(_boolean(autolock, "--autolock"))


@app.command("leave")
def leave(
    force: Annotated[
        bool, typer.Option("-f", "--force", help="Leave even if this node is a manager")
    ] = False,
) -> None:
    """Leave the swarm: asks the local agent (--socket), which stops its tasks and goes
    on as a standalone agent (docker swarm leave)."""
    from pyswarm.cli import client
    from pyswarm.proto import agent_pb2

    response = client.swarm().LeaveSwarm(agent_pb2.LeaveSwarmRequest(force=force))
    if response.warning:
        print(f"Warning: {response.warning}", file=sys.stderr)
    print("Node left the swarm.")


def _boolean(text: str, flag: str) -> bool:
    """docker's boolean flag values: --autolock=true|false (and 1|0)."""
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise CliInputError(f'invalid value "{text}" for {flag}: true or false', field=flag)


@app.command("ca")
def ca(
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Move the cluster to a new root CA")
    ] = False,
    detach: Annotated[
        bool, typer.Option("-d", "--detach", help="Return at once instead of following")
    ] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print no progress")] = False,
    cert_expiry: Annotated[
        str | None, typer.Option("--cert-expiry", help="Node certificate lifetime, e.g. 2160h")
    ] = None,
    clients: Annotated[
        bool, typer.Option("--clients", help="List the CLI identities managers issued")
    ] = False,
    revoke_client: Annotated[
        str | None, typer.Option("--revoke-client", help="Revoke the CLI identity with this ID")
    ] = None,
) -> None:
    """Show the root CA, rotate it, or manage client certificates (docker swarm ca)."""
    from pyswarm.cli.swarm_ca import show_ca

    show_ca(
        rotate=rotate,
        detach=detach,
        quiet=quiet,
        cert_expiry=cert_expiry,
        clients=clients,
        revoke_client=revoke_client,
    )
