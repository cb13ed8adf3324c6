"""`pyswarm stack ...`: compose files deployed as stacks (docker stack's commands)."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from pyswarm.cli.output import Format, print_json_lines, print_table
from pyswarm.cli.parse import CliInputError
from pyswarm.stack.deploy import ResolveImage

app = typer.Typer(help="Manage stacks (compose files deployed across the cluster).",
                  no_args_is_help=True)  # fmt: skip

ComposeFiles = Annotated[
    list[str], typer.Option("-c", "--compose-file", help="Path to a compose file, or - for stdin")
]
# How long `stack deploy` waits for dependencies and convergence, and `stack rm` for
# networks to be free of the removed services' tasks.
WAIT_SECONDS = 300.0


def _project(files: list[str]) -> Any:
    from pyswarm.stack.compose.loader import load_project, sources_from_paths

    stdin_text = sys.stdin.read() if "-" in files else None
    project = load_project(sources_from_paths(files, stdin_text))
    if project.warning():
        print(project.warning(), file=sys.stderr)
    return project


def _stack_name(name: str) -> str:
    from pyswarm.common.errors import InvalidArgument
    from pyswarm.common.names import validate_name

    try:
        validate_name(name, "stack")
    except InvalidArgument as err:
        raise CliInputError(err.message, field="STACK") from None
    return name


@app.command("config")
def config(files: ComposeFiles) -> None:
    """Print the merged, interpolated compose file, as the deploy would read it."""
    import yaml

    project = _project(files)
    print(yaml.safe_dump(project.document, sort_keys=False, default_flow_style=False), end="")


@app.command("deploy")
def deploy_(
    stack: Annotated[str, typer.Argument(metavar="STACK")],
    files: ComposeFiles,
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove services no longer in the file")
    ] = False,
    with_registry_auth: Annotated[bool, typer.Option("--with-registry-auth")] = False,
    resolve_image: Annotated[ResolveImage, typer.Option("--resolve-image")] = ResolveImage.changed,
    detach: Annotated[bool, typer.Option("-d", "--detach",
                                         help="Return at once, without waiting")] = False,
) -> None:  # fmt: skip
    """Deploy a new stack or update an existing one."""
    from pyswarm.cli.service_spec import registry_auth_for
    from pyswarm.cli.stack_progress import StackProgress
    from pyswarm.common.manager_client import control
    from pyswarm.stack.deploy import DeployOptions, deploy

    name = _stack_name(stack)
    project = _project(files)
    stub = control()
    progress = StackProgress(stub, WAIT_SECONDS)
    options = DeployOptions(
        prune=prune, resolve_image=resolve_image,
        registry_auth=registry_auth_for if with_registry_auth else None,
        wait_for=None if detach else progress.wait_for_dependencies,
    )  # fmt: skip
    touched = deploy(stub, project, name, options, print)
    if not detach:
        progress.converge(name, touched)


@app.command("ls")
def ls(format: Annotated[Format, typer.Option("--format")] = Format.table) -> None:
    """List stacks."""
    from pyswarm.common.manager_client import control
    from pyswarm.stack.inventory import list_stacks

    rows = [[name, str(count), "Swarm"] for name, count in list_stacks(control()).items()]
    if format == Format.json:
        print_json_lines([{"Name": r[0], "Services": r[1], "Orchestrator": r[2]} for r in rows])
        return
    print_table(["NAME", "SERVICES", "ORCHESTRATOR"], rows)


@app.command("services")
def services(
    stack: Annotated[str, typer.Argument(metavar="STACK")],
    quiet: Annotated[bool, typer.Option("-q", "--quiet")] = False,
    format: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """List the services of a stack."""
    from pyswarm.cli.service import service_rows
    from pyswarm.common.manager_client import control
    from pyswarm.stack.inventory import stack_statuses

    pairs = stack_statuses(control(), stack)
    if not pairs:
        print(f"Nothing found in stack: {stack}", file=sys.stderr)
        return
    if quiet:
        for service, _ in pairs:
            print(service.id[:12])
        return
    rows = service_rows(pairs, no_trunc=False)
    if format == Format.json:
        keys = ["ID", "Name", "Mode", "Replicas", "Image", "Ports"]
        print_json_lines([dict(zip(keys, row, strict=True)) for row in rows])
        return
    print_table(["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"], rows)


@app.command("ps")
def ps(
    stack: Annotated[str, typer.Argument(metavar="STACK")],
    quiet: Annotated[bool, typer.Option("-q", "--quiet")] = False,
    no_trunc: Annotated[bool, typer.Option("--no-trunc")] = False,
    format: Annotated[Format, typer.Option("--format")] = Format.table,
    filter: Annotated[
        list[str] | None,
        typer.Option("-f", "--filter", help="id=, name=, node=, desired-state=running|shutdown"),
    ] = None,
) -> None:
    """List the tasks of a stack."""
    from pyswarm.cli.parse import parse_filters
    from pyswarm.cli.task_rows import print_tasks, task_rows
    from pyswarm.common.manager_client import control
    from pyswarm.proto import control_pb2
    from pyswarm.stack.inventory import stack_services

    stub = control()
    found = stack_services(stub, stack)
    if not found:
        raise CliInputError(f"nothing found in stack: {stack}", field="STACK")
    filters = parse_filters(filter)
    tasks = [
        task for service in found
        for task in stub.ListTasks(
            control_pb2.ListTasksRequest(service_id=service.id, filters=filters)).tasks
    ]  # fmt: skip
    print_tasks(task_rows(stub, tasks, no_trunc=no_trunc), quiet=quiet, format=format)


@app.command("rm")
def rm(stacks: Annotated[list[str], typer.Argument(metavar="STACK...")]) -> None:
    """Remove stacks: their services, then their networks (volumes are kept)."""
    from pyswarm.common.manager_client import control
    from pyswarm.stack.inventory import remove_stack

    stub = control()
    for stack in stacks:
        remove_stack(stub, stack, print, deadline=time.monotonic() + WAIT_SECONDS)
