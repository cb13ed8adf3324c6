"""`pyswarm pull`, `push`, `login`, `logout` and `search`: images to and from registries.

The agent does the transfer; the CLI sends the credentials `login` stored for the
image's registry and renders the agent's per-layer progress: a rich progress bar
per layer on a terminal, docker's "ID: Status" lines otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Annotated

import typer

from pyswarm.cli import client
from pyswarm.cli.parse import CliInputError
from pyswarm.common import credentials
from pyswarm.proto import agent_pb2


def _login_for(reference: str) -> tuple[str, str]:
    found = credentials.lookup(credentials.registry_of(reference))
    return (found.username, found.password) if found else ("", "")


def _render(events: Iterable[agent_pb2.PullProgress]) -> agent_pb2.PullProgress:
    """Show layer events; return the final (result) event."""
    if sys.stdout.isatty():
        return _render_bars(events)
    last_status: dict[str, str] = {}
    for event in events:
        if not event.id:
            return event
        if last_status.get(event.id) != event.status:
            last_status[event.id] = event.status
            print(f"{event.id}: {event.status}", flush=True)
    raise CliInputError("the agent ended the transfer without a result", field="reference")


def _render_bars(events: Iterable[agent_pb2.PullProgress]) -> agent_pb2.PullProgress:
    from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    tasks: dict[str, TaskID] = {}
    with Progress(*columns, transient=False) as bars:
        for event in events:
            if not event.id:
                return event
            description = f"{event.id}: {event.status}"
            total = event.total or None
            if event.id not in tasks:
                tasks[event.id] = bars.add_task(description, total=total)
            bars.update(tasks[event.id], description=description, completed=event.current)
    raise CliInputError("the agent ended the transfer without a result", field="reference")


def pull(
    name: Annotated[str, typer.Argument(help="[REGISTRY/]NAME[:TAG][@DIGEST]")],
) -> None:
    """Pull an image from a registry, fetching only the layers this host lacks."""
    username, password = _login_for(name)
    reference = name if (":" in name.rsplit("/", 1)[-1] or "@" in name) else f"{name}:latest"
    if reference != name:
        print("Using default tag: latest")
    request = agent_pb2.PullRequest(reference=reference, username=username, password=password)
    result = _render(client.images().Pull(request))
    print(f"Digest: {result.digest}")
    if result.updated:
        print(f"Status: Downloaded newer image for {reference}")
    else:
        print(f"Status: Image is up to date for {reference}")
    print(reference)


def push(
    name: Annotated[str, typer.Argument(help="REGISTRY/NAME[:TAG]")],
) -> None:
    """Push an image to its registry, uploading only the layers the registry lacks."""
    username, password = _login_for(name)
    request = agent_pb2.PushRequest(reference=name, username=username, password=password)
    result = _render(client.images().Push(request))
    print(f"{result.status}: digest: {result.digest} size: {result.size}")


def login(
    registry: Annotated[str, typer.Argument(help="Registry host[:port]")],
    username: Annotated[str, typer.Option("--username", "-u")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin")
    ] = False,
) -> None:
    """Check credentials against a registry and store them (mode 0600) for pulls and pushes."""
    if not username:
        username = typer.prompt("Username")
    if password_stdin:
        password = sys.stdin.read().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True)
    if not username or not password:
        raise CliInputError("login needs a username and a password", field="password")
    request = agent_pb2.LoginRequest(registry=registry, username=username, password=password)
    status = client.images().Login(request).status
    credentials.store(registry, credentials.Credentials(username, password))
    print(f"Credentials saved to {credentials.auth_file()}")
    print(status)


def logout(
    registry: Annotated[str, typer.Argument(help="Registry host[:port]")],
) -> None:
    """Forget the stored credentials for a registry."""
    if credentials.forget(registry):
        print(f"Removing login credentials for {registry}")
    else:
        print(f"Not logged in to {registry}")


def search(
    term: Annotated[str, typer.Argument(help="REGISTRY/TERM: repositories whose name holds TERM")],
    limit: Annotated[int, typer.Option(help="At most this many results")] = 25,
) -> None:
    """Search a registry's catalog for repositories."""
    username, password = _login_for(term)
    request = agent_pb2.SearchRequest(term=term, username=username, password=password, limit=limit)
    print("NAME")
    for name in client.images().Search(request).names:
        print(name)
