"""`pyswarm swarm ...`: docker's swarm group. init, join and join-token are the same
commands as the top-level ones; the cluster-wide settings (update, ca, unlock,
unlock-key) and leave live here."""

from __future__ import annotations

import typer

from pyswarm.cli.cluster import init, join_token
from pyswarm.cli.join import join

app = typer.Typer(help="Manage the swarm", no_args_is_help=True)
app.command("init")(init)
app.command("join")(join)
app.command("join-token")(join_token)
