"""`pyswarm node ...`: the cluster's nodes, through the manager."""

from __future__ import annotations

from typing import Annotated

import typer

from pyswarm.cli.output import Format, print_json, print_json_lines, print_table
from pyswarm.cli.parse import CliInputError, parse_filters
from pyswarm.common.manager_client import control
from pyswarm.proto import control_pb2, types_pb2

app = typer.Typer(help="Manage the cluster's nodes.", no_args_is_help=True)

_AVAILABILITY = {
    "active": types_pb2.NodeSpec.ACTIVE,
    "pause": types_pb2.NodeSpec.PAUSE,
    "drain": types_pb2.NodeSpec.DRAIN,
}
_STATUS = {v: k.capitalize() for k, v in types_pb2.NodeStatus.State.items()}


_REACHABILITY = {
    types_pb2.ManagerStatus.REACHABLE: "Reachable",
    types_pb2.ManagerStatus.UNREACHABLE: "Unreachable",
}


def manager_status(node: types_pb2.Node, leader_id: str) -> str:
    """docker's MANAGER STATUS: Leader, Reachable, Unreachable ("" for a worker)."""
    if node.role != types_pb2.NodeSpec.MANAGER:
        return ""
    if node.HasField("manager_status"):
        status = node.manager_status
        if status.leader:
            return "Leader"
        return _REACHABILITY.get(status.reachability, "Unknown")
    return "Leader" if node.id == leader_id else "Reachable"  # a manager from before HA


def _node_row(node: types_pb2.Node, leader_id: str) -> list[str]:
    availability = types_pb2.NodeSpec.Availability.Name(node.spec.availability).capitalize()
    manager = manager_status(node, leader_id)
    return [
        node.id[:25], node.description.hostname, _STATUS.get(node.status.state, "Unknown"),
        availability, manager, node.status.addr,
    ]  # fmt: skip


FilterOption = Annotated[
    list[str] | None, typer.Option("-f", "--filter", help="Filter output (KEY=VALUE)")
]


@app.command("ls")
def ls(
    quiet: Annotated[bool, typer.Option("-q", "--quiet")] = False,
    format: Annotated[Format, typer.Option("--format")] = Format.table,
    filter: FilterOption = None,
) -> None:
    """List nodes (--filter id=, label=, node.label=KEY[=VALUE], membership=, name=, role=)."""
    stub = control()
    request = control_pb2.ListNodesRequest(filters=parse_filters(filter))
    nodes = stub.ListNodes(request).nodes
    leader = stub.GetCluster(control_pb2.GetClusterRequest()).leader_id
    if quiet:
        for node in nodes:
            print(node.id)
        return
    rows = [_node_row(n, leader) for n in sorted(nodes, key=lambda n: n.description.hostname)]
    headers = ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "ADDRESS"]
    if format == Format.json:
        keys = ["ID", "Hostname", "Status", "Availability", "ManagerStatus", "Address"]
        print_json_lines([dict(zip(keys, row, strict=True)) for row in rows])
        return
    print_table(headers, rows)


@app.command("ps")
def ps(
    nodes: Annotated[list[str] | None, typer.Argument(help="Nodes (default: self)")] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only display task IDs")] = False,
    format: Annotated[Format, typer.Option("--format")] = Format.table,
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Do not truncate output")] = False,
    filter: FilterOption = None,
) -> None:
    """List the tasks on nodes (default: the node this CLI's manager runs on), with
    --filter id=, name=, node=, desired-state=, as `service ps`."""
    from pyswarm.cli.task_rows import print_tasks, task_rows

    filters = parse_filters(filter)
    stub = control()
    tasks: list[types_pb2.Task] = []
    for node in nodes or ["self"]:
        request = control_pb2.ListTasksRequest(node_id=node, filters=filters)
        tasks.extend(stub.ListTasks(request).tasks)
    print_tasks(task_rows(stub, tasks, no_trunc=no_trunc), quiet=quiet, format=format)


@app.command("inspect")
def inspect(
    nodes: Annotated[list[str], typer.Argument()],
    pretty: Annotated[bool, typer.Option("--pretty", help="Print for people, not JSON")] = False,
) -> None:
    """Show nodes in detail (JSON, or --pretty), their certificate's expiry and issuer too."""
    from google.protobuf.json_format import MessageToDict

    stub = control()
    found = [stub.GetNode(control_pb2.GetNodeRequest(node_id=n)) for n in nodes]
    if not pretty:
        print_json([MessageToDict(node) for node in found])
        return
    print("\n\n".join(_pretty(node) for node in found))


def _pretty(node: types_pb2.Node) -> str:
    role = "manager" if node.role == types_pb2.NodeSpec.MANAGER else "worker"
    availability = types_pb2.NodeSpec.Availability.Name(node.spec.availability).capitalize()
    lines = [
        f"ID:\t\t\t{node.id}",
        f"Hostname:\t\t{node.description.hostname}",
        "Status:",
        f" State:\t\t\t{_STATUS.get(node.status.state, 'Unknown')}",
        f" Availability:\t\t{availability}",
        f" Address:\t\t{node.status.addr}",
        f"Role:\t\t\t{role}",
    ]
    if node.HasField("manager_status"):
        status = node.manager_status
        lines += [
            "Manager Status:",
            f" Address:\t\t{status.addr}",
            f" Raft Status:\t\t{_REACHABILITY.get(status.reachability, 'Unknown')}",
            f" Leader:\t\t{'Yes' if status.leader else 'No'}",
        ]
    if node.HasField("certificate"):
        cert = node.certificate
        expires = cert.not_after.ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC")
        lines += [
            "TLS Info:",
            f" Expires:\t\t{expires}",
            f" Issuer Subject:\t{cert.issuer}",
            f" Issuer Key ID:\t\t{cert.issuer_key_id}",
        ]
    return "\n".join(lines)


@app.command("update")
def update(
    node: str,
    availability: Annotated[str, typer.Option("--availability")] = "",
    label_add: Annotated[list[str] | None, typer.Option("--label-add")] = None,
    label_rm: Annotated[list[str] | None, typer.Option("--label-rm")] = None,
    role: Annotated[str, typer.Option("--role")] = "",
) -> None:
    """Change a node's availability, labels or role."""
    stub = control()
    current = stub.GetNode(control_pb2.GetNodeRequest(node_id=node))
    spec = _updated_spec(current.spec, availability, label_add, label_rm, role)
    stub.UpdateNode(
        control_pb2.UpdateNodeRequest(node_id=current.id, version=current.meta.version, spec=spec)
    )
    print(node)


def _updated_spec(
    current: types_pb2.NodeSpec,
    availability: str,
    label_add: list[str] | None,
    label_rm: list[str] | None,
    role: str,
) -> types_pb2.NodeSpec:
    """`current` with the flags applied (CliInputError names a bad one)."""
    spec = types_pb2.NodeSpec()
    spec.CopyFrom(current)
    if availability:
        if availability not in _AVAILABILITY:
            raise CliInputError(
                f"invalid availability {availability!r}: active, pause or drain",
                field="--availability",
            )
        spec.availability = _AVAILABILITY[availability]
    for label in label_add or []:
        key, _, value = label.partition("=")
        if not key:
            raise CliInputError(f"invalid label {label!r}", field="--label-add")
        spec.annotations.labels[key] = value
    for key in label_rm or []:
        if key not in spec.annotations.labels:
            raise CliInputError(f"key {key} doesn't exist in node's labels", field="--label-rm")
        del spec.annotations.labels[key]
    if role:
        roles = {"worker": types_pb2.NodeSpec.WORKER, "manager": types_pb2.NodeSpec.MANAGER}
        if role not in roles:
            raise CliInputError(f"invalid role {role!r}: worker or manager", field="--role")
        spec.desired_role = roles[role]
    return spec


@app.command("promote")
def promote(nodes: Annotated[list[str], typer.Argument()]) -> None:
    """Make nodes managers (each starts a manager and joins the managers' etcd)."""
    for node in nodes:
        _set_role(node, "manager")
        print(f"Node {node} promoted to a manager in the swarm.")


def _set_role(node: str, role: str, *, force: bool = False) -> None:
    stub = control()
    current = stub.GetNode(control_pb2.GetNodeRequest(node_id=node))
    spec = _updated_spec(current.spec, "", None, None, role)
    stub.UpdateNode(
        control_pb2.UpdateNodeRequest(
            node_id=current.id, version=current.meta.version, spec=spec, force=force
        )
    )


@app.command("demote")
def demote(
    nodes: Annotated[list[str], typer.Argument()],
    force: Annotated[
        bool, typer.Option("-f", "--force", help="Even if the managers would lose quorum")
    ] = False,
) -> None:
    """Make managers workers (their manager leaves the managers' etcd cluster)."""
    for node in nodes:
        _set_role(node, "worker", force=force)
        print(f"Manager {node} demoted in the swarm.")


@app.command("rm")
def rm(
    nodes: Annotated[list[str], typer.Argument()],
    force: Annotated[bool, typer.Option("-f", "--force")] = False,
) -> None:
    """Remove nodes from the cluster."""
    stub = control()
    for node in nodes:
        stub.RemoveNode(control_pb2.RemoveNodeRequest(node_id=node, force=force))
        print(node)
