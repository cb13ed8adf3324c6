"""The task table of `service ps` and `node ps`: one implementation, docker's columns.

ID NAME IMAGE NODE DESIRED STATE CURRENT STATE ERROR PORTS; a slot's tasks newest
first, its older ones marked ` \\_ `. The tasks are asked of the manager with the
caller's filters, which the manager applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyswarm.cli.output import Format, ago, print_json_lines, print_table
from pyswarm.proto import control_pb2, types_pb2

__all__ = ["print_tasks", "shown_image", "task_rows"]

_STATE_NAMES = {v: k.lower() for k, v in types_pb2.TaskState.items()}
HEADERS = ["ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR", "PORTS"]
KEYS = ["ID", "Name", "Image", "Node", "DesiredState", "CurrentState", "Error", "Ports"]


def shown_image(image: str, no_trunc: bool) -> str:
    """`name:tag` of a pinned `name:tag@sha256:...`, as docker's ls and ps show it."""
    name, at, _ = image.partition("@")
    return image if no_trunc or not at or not name else name


def _ports(task: types_pb2.Task) -> str:
    shown = []
    for port in task.ports:
        if port.publish_mode == types_pb2.PortConfig.HOST:
            proto = "udp" if port.protocol == types_pb2.PortConfig.UDP else "tcp"
            shown.append(f"*:{port.published_port}->{port.target_port}/{proto}")
    return ", ".join(shown)


def task_rows(
    stub: Any, tasks: Sequence[types_pb2.Task], *, no_trunc: bool
) -> list[dict[str, str]]:
    """docker's rows for `tasks`: grouped by service and slot (a global task's node),
    newest first within a slot."""
    services = {s.id: s for s in stub.ListServices(control_pb2.ListServicesRequest()).services}
    nodes = {n.id: n for n in stub.ListNodes(control_pb2.ListNodesRequest()).nodes}

    def service_name(task: types_pb2.Task) -> str:
        service = services.get(task.service_id)
        return service.spec.annotations.name if service else task.service_id[:12]

    def slot_of(task: types_pb2.Task) -> tuple[str, int, str]:
        return (service_name(task), task.slot, "" if task.slot else task.node_id)

    ordered = sorted(tasks, key=lambda t: (slot_of(t), -t.meta.created_at.seconds))
    rows = []
    previous: tuple[str, int, str] | None = None
    for task in ordered:
        name, slot, node_id = slot_of(task)
        label = f"{name}.{slot}" if slot else f"{name}.{node_id[:12]}"
        if slot_of(task) == previous:
            label = r" \_ " + label
        previous = slot_of(task)
        node = nodes.get(task.node_id)
        state = _STATE_NAMES.get(task.status.state, "?")
        since = ago(task.status.timestamp.seconds) if task.status.timestamp.seconds else ""
        since = since[:1].lower() + since[1:]  # "Running less than a second ago", as docker
        rows.append({
            "ID": task.id if no_trunc else task.id[:12], "Name": label,
            "Image": shown_image(task.spec.container.image, no_trunc),
            "Node": node.description.hostname if node else task.node_id[:12],
            "DesiredState": _STATE_NAMES.get(task.desired_state, "?").capitalize(),
            "CurrentState": f"{state.capitalize()} {since}".strip(),
            "Error": task.status.err, "Ports": _ports(task),
        })  # fmt: skip
    return rows


def print_tasks(rows: Sequence[dict[str, str]], *, quiet: bool, format: Format) -> None:
    if quiet:
        for row in rows:
            print(row["ID"])
    elif format == Format.json:
        print_json_lines(rows)
    else:
        print_table(HEADERS, [[row[k] for k in KEYS] for row in rows])
