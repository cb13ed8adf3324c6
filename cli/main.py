"""The `pyswarm` command: one typer sub-app per noun, plus docker's short forms.

Typer builds every command it knows on each start, which costs more than the work of
most commands; so `main` builds only the part the command line names (the whole tree
for `--help` or an unknown word), and imports that part's module alone.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from pyswarm.cli import client
from pyswarm.common import context

GROUPS = {
    "container": "pyswarm.cli.container",
    "image": "pyswarm.cli.image",
    "system": "pyswarm.cli.system",
    "service": "pyswarm.cli.service",
    "node": "pyswarm.cli.node",
    "network": "pyswarm.cli.network",
    "secret": "pyswarm.cli.secret",
    "config": "pyswarm.cli.config",
    "volume": "pyswarm.cli.volume",
    "lab": "pyswarm.cli.lab",
    "swarm": "pyswarm.cli.swarm",
    "stack": "pyswarm.cli.stack",
}
COMMANDS = {
    "agent": ("pyswarm.cli.agent", "agent"),
    "join": ("pyswarm.cli.join", "join"),
    "init": ("pyswarm.cli.cluster", "init"),
    "join-token": ("pyswarm.cli.cluster", "join_token"),
    "events": ("pyswarm.cli.events", "events"),
    "images": ("pyswarm.cli.image", "ls"),
    "rmi": ("pyswarm.cli.image", "rm"),
    "build": ("pyswarm.cli.build", "build"),
    "history": ("pyswarm.cli.image", "history"),
    "pull": ("pyswarm.cli.registry", "pull"),
    "push": ("pyswarm.cli.registry", "push"),
    "login": ("pyswarm.cli.registry", "login"),
    "logout": ("pyswarm.cli.registry", "logout"),
    "search": ("pyswarm.cli.registry", "search"),
}
# docker's short forms of the container commands (run and ps shown in --help)
SHORT_FORMS = (
    "run", "ps", "stop", "start", "restart", "kill", "rm", "rename", "logs", "exec",
    "attach", "port", "inspect", "stats",
)  # fmt: skip
ROOT_OPTIONS_WITH_VALUE = {"--socket", "--host", "-H"}


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


def _attr(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def build_app(word: str | None = None) -> typer.Typer:
    """The command tree for a command line whose first word is `word` (None: all)."""
    app = typer.Typer(
        help="pyswarm: containers on one host, services across many.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    app.callback()(root)
    everything = word not in GROUPS and word not in COMMANDS and word not in SHORT_FORMS
    for name, module in GROUPS.items():
        if everything or word == name:
            app.add_typer(_attr(module, "app"), name=name)
    for name, (module, attribute) in COMMANDS.items():
        if everything or word == name:
            app.command(name)(_attr(module, attribute))
    if everything or word in SHORT_FORMS:
        container = importlib.import_module("pyswarm.cli.container")
        for name in SHORT_FORMS:
            if everything or word == name:
                command: Callable[..., Any] = container.COMMANDS[name]
                settings = container.PASSTHROUGH if name in container.NEEDS_PASSTHROUGH else None
                app.command(name, hidden=name not in ("run", "ps"), context_settings=settings)(
                    command
                )
    return app


def command_word(argv: list[str]) -> str | None:
    """The first word that is not a root option (or its value)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ROOT_OPTIONS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def go_bool_flags(argv: list[str]) -> list[str]:
    """docker's (Go's) `--detach=false` / `--detach=true` spelling of a boolean flag,
    which click does not take: `=true` is the flag itself, `=false` its absence."""
    out = []
    for index, arg in enumerate(argv):
        if arg == "--":
            out.extend(argv[index:])
            break
        if arg in ("--detach=false", "--detach=true"):
            if arg.endswith("true"):
                out.append("--detach")
            continue
        out.append(arg)
    return out


def main() -> None:
    from pyswarm.cli.errors import report

    sys.argv[1:] = go_bool_flags(sys.argv[1:])
    try:
        build_app(command_word(sys.argv[1:]))()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as err:
        sys.exit(report(err))


if __name__ == "__main__":
    main()
