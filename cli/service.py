"""`pyswarm service ...`: services across the cluster, through the manager."""

from __future__ import annotations

from typing import Annotated

import typer

from pyswarm.cli.errors import apply_each, expect_failure_code
from pyswarm.cli.output import Format, print_json, print_json_lines, print_table
from pyswarm.cli.parse import CliInputError, parse_filters
from pyswarm.cli.service_change import rollback_, update
from pyswarm.cli.service_create import create
from pyswarm.cli.service_inspect import print_pretty
from pyswarm.cli.service_orchestration import mode_name, replicas_cell
from pyswarm.cli.service_update import converge
from pyswarm.cli.task_rows import print_tasks, shown_image, task_rows
from pyswarm.common.manager_client import control
from pyswarm.proto import control_pb2, types_pb2

app = typer.Typer(help="Manage services across the cluster.", no_args_is_help=True)
PASSTHROUGH = {"allow_interspersed_args": False}
app.command("create", context_settings=PASSTHROUGH)(create)


def _mode(service: types_pb2.Service) -> str:
    return mode_name(service)


def _ports(service: types_pb2.Service) -> str:
    parts = []
    for p in service.spec.endpoint.ports:
        proto = "udp" if p.protocol == types_pb2.PortConfig.UDP else "tcp"
        parts.append(f"*:{p.published_port}->{p.target_port}/{proto}")
    return ", ".join(parts)


NoTrunc = Annotated[bool, typer.Option("--no-trunc", help="Do not truncate output")]
FilterOption = Annotated[
    list[str] | None, typer.Option("-f", "--filter", help="Filter output (KEY=VALUE)")
]


@app.command("ls")
def ls(
    quiet: Annotated[bool, typer.Option("-q", "--quiet")] = False,
    format: Annotated[Format, typer.Option("--format")] = Format.table,
    no_trunc: NoTrunc = False,
    filter: FilterOption = None,
) -> None:
    """List services (--filter id=, label=KEY[=VALUE], mode=, name=)."""
    request = control_pb2.ListServicesRequest(filters=parse_filters(filter))
    response = control().ListServices(request)
    pairs = list(zip(response.services, response.statuses, strict=True))
    if quiet:
        for service, _ in pairs:
            print(service.id if no_trunc else service.id[:12])
        return
    rows = service_rows(pairs, no_trunc)
    if format == Format.json:
        keys = ["ID", "Name", "Mode", "Replicas", "Image", "Ports"]
        print_json_lines([dict(zip(keys, row, strict=True)) for row in rows])
        return
    print_table(["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"], rows)


def service_rows(
    pairs: list[tuple[types_pb2.Service, control_pb2.ServiceStatus]], no_trunc: bool
) -> list[list[str]]:
    """`service ls` rows: ID, NAME, MODE, REPLICAS, IMAGE, PORTS."""
    return [
        [s.id[:12], s.spec.annotations.name, _mode(s),
         replicas_cell(s, st),
         shown_image(s.spec.task.container.image, no_trunc), _ports(s)]
        for s, st in pairs
    ]  # fmt: skip


@app.command("ps")
def ps(
    services: Annotated[list[str], typer.Argument()],
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only display task IDs")] = False,
    format: Annotated[Format, typer.Option("--format")] = Format.table,
    no_trunc: NoTrunc = False,
    filter: FilterOption = None,
) -> None:
    """List the tasks of services, newest per slot first, with their history
    (--filter id=, name=, node=, desired-state=running|shutdown|accepted)."""
    filters = parse_filters(filter)
    stub = control()
    tasks: list[types_pb2.Task] = []
    for ref in services:
        request = control_pb2.ListTasksRequest(service_id=ref, filters=filters)
        tasks.extend(stub.ListTasks(request).tasks)
    print_tasks(task_rows(stub, tasks, no_trunc=no_trunc), quiet=quiet, format=format)


@app.command("inspect")
def inspect(
    services: Annotated[list[str], typer.Argument()],
    pretty: Annotated[bool, typer.Option("--pretty")] = False,
) -> None:
    """Show services in detail."""
    from google.protobuf.json_format import MessageToDict

    stub = control()
    found = [stub.GetService(control_pb2.GetServiceRequest(service_id=r)) for r in services]
    if not pretty:
        print_json([MessageToDict(s) for s in found])
        return
    for s in found:
        print_pretty(s)


@app.command("scale")
def scale(
    pairs: Annotated[list[str], typer.Argument(help="SERVICE=REPLICAS ...")],
    detach: Annotated[bool, typer.Option("-d", "--detach")] = False,
) -> None:
    """Scale replicated services: `pyswarm service scale api=5 web=2`."""
    expect_failure_code(1)
    requests = []
    for pair in pairs:
        name, sep, number = pair.partition("=")
        if not sep or not name or not number.isdigit():
            raise CliInputError(
                f"invalid scale specifier '{pair}': expected SERVICE=REPLICAS", field="scale"
            )
        requests.append((name, int(number)))
    stub = control()
    scaled = []
    for name, count in requests:
        service = stub.ScaleService(
            control_pb2.ScaleServiceRequest(service_id=name, replicas=count)
        )
        print(f"{name} scaled to {count}")
        scaled.append(service.id)
    if not detach:
        converge(stub, scaled)


app.command("update")(update)
app.command("rollback")(rollback_)


@app.command("rm")
def rm(services: Annotated[list[str], typer.Argument()]) -> None:
    """Remove services (their tasks are shut down)."""
    stub = control()
    apply_each(
        services,
        lambda ref: stub.RemoveService(control_pb2.RemoveServiceRequest(service_id=ref)),
    )


from pyswarm.cli import service_logs  # noqa: E402, F401  (registers `service logs`)
