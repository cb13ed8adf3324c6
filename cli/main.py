"""The `pyswarm` command: one typer sub-app per noun, plus docker's short forms."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from pyswarm.cli import client, container, image, system
from pyswarm.cli.agent import agent

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
        typer.Option("--socket", "-H", help="Agent socket (or $PYSWARM_AGENT_SOCKET)"),
    ] = None,
) -> None:
    client.set_socket(socket.removeprefix("unix://") if socket else None)


app.add_typer(container.app, name="container")
app.add_typer(image.app, name="image")
app.add_typer(system.app, name="system")
app.command("agent")(agent)

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
