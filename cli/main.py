"""The `pyswarm` command: one typer sub-app per noun, plus docker's short forms."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from pyswarm.cli import client, container, context, image, lab, node, service, system
from pyswarm.cli.agent import agent
from pyswarm.cli.cluster import init, join_token
from pyswarm.cli.join import join

app = typer.Typer(
    help="pyswarm: containers on one host, services across many.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root(
    socket: Annotated[
        str | None,
        typer.Option("--socket", help="Agent socket (or $PYSWARM_AGENT_SOCKET)"),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option("--host", "-H", help="Manager host:port (or $PYSWARM_HOST, or the context)"),
    ] = None,
) -> None:
    client.set_socket(socket.removeprefix("unix://") if socket else None)
    context.set_host(host)


app.add_typer(container.app, name="container")
app.add_typer(image.app, name="image")
app.add_typer(system.app, name="system")
app.add_typer(service.app, name="service")
app.add_typer(node.app, name="node")
app.add_typer(lab.app, name="lab")
app.command("agent")(agent)
app.command("join")(join)
app.command("init")(init)
app.command("join-token")(join_token)

# docker's short forms
for _name, _fn in container.COMMANDS.items():
    app.command(
        _name,
        hidden=_name not in ("run", "ps"),
        context_settings=container.PASSTHROUGH if _name in container.NEEDS_PASSTHROUGH else None,
    )(_fn)
app.command("images")(image.ls)
app.command("rmi")(image.rm)


def main() -> None:
    from pyswarm.cli.errors import report

    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as err:
        sys.exit(report(err))


if __name__ == "__main__":
    main()
