"""From an assigned task to the local container that runs it.

A task's container is named "<service-name>.<slot>.<task-id>" as in Docker Swarm (a
global task, which has no slot, uses the node id instead), carries the task id on its
record and docker's com.docker.swarm.* labels, and gets the task's environment,
command, limits and published ports.

The service name is read, in order, from the task's label
"com.docker.swarm.service.name", its annotations name (the manager names tasks
"<service>.<slot-or-node-id>"; the tail is dropped, and a bare "web" works too) or,
failing both, the service id.
"""

from __future__ import annotations

from pyswarm.agent.engine.spec import SERVICE_ID_LABEL
from pyswarm.common.task_templates import expand
from pyswarm.proto import agent_pb2, types_pb2

SERVICE_NAME_LABEL = "com.docker.swarm.service.name"
TASK_ID_LABEL = "com.docker.swarm.task.id"
TASK_NAME_LABEL = "com.docker.swarm.task.name"
NODE_ID_LABEL = "com.docker.swarm.node.id"
DEFAULT_GRACE_S = 10


def service_name(task: types_pb2.Task) -> str:
    labelled = task.annotations.labels.get(SERVICE_NAME_LABEL, "")
    if labelled:
        return labelled
    name = task.annotations.name
    if name:
        head, dot, tail = name.rpartition(".")
        return head if dot and head and tail in (str(task.slot), task.node_id) else name
    return task.service_id or "task"


def container_name(task: types_pb2.Task) -> str:
    """docker's task container name, "<service>.<slot>.<task-id>"."""
    middle = str(task.slot) if task.slot else (task.node_id or "0")
    return f"{service_name(task)}.{middle}.{task.id}"


def stop_grace_seconds(task: types_pb2.Task) -> int:
    """The spec's stop grace period in whole seconds (rounded up), 10 s if unset."""
    spec = task.spec.container
    if not spec.HasField("stop_grace_period"):
        return DEFAULT_GRACE_S
    nanos = spec.stop_grace_period.ToNanoseconds()
    return max(0, -(-nanos // 1_000_000_000))


def template_values(task: types_pb2.Task, node: types_pb2.NodeDescription) -> dict[str, str]:
    """What Swarm's templates ({{.Service.Name}}, {{.Task.Slot}}, ...) read for `task`
    on the node described by `node`."""
    return {
        ".Service.ID": task.service_id,
        ".Service.Name": service_name(task),
        ".Node.ID": task.node_id,
        ".Node.Hostname": node.hostname,
        ".Node.Platform.OS": node.platform.os,
        ".Node.Platform.Architecture": node.platform.architecture,
        ".Task.ID": task.id,
        ".Task.Name": container_name(task),
        ".Task.Slot": str(task.slot) if task.slot else "",
    }


def expand_templates(spec: types_pb2.ContainerSpec, values: dict[str, str]) -> None:
    """The hostname, environment values and mount sources with their templates expanded,
    as SwarmKit's agent does; InvalidTemplate (the task is rejected) for a bad one."""
    spec.hostname = expand(spec.hostname, values, "hostname")
    env = [expand(item, values, "env") for item in spec.env]
    del spec.env[:]
    spec.env.extend(env)
    for mount in spec.mounts:
        mount.source = expand(mount.source, values, "mounts")


def create_request(
    task: types_pb2.Task, image: str = "", node: types_pb2.NodeDescription | None = None
) -> agent_pb2.CreateContainerRequest:
    """The CreateContainerRequest for `task` (not started: the executor starts it), from
    `image` if given (what the store found the task's image as), else the task's image;
    its templates expanded for `node` (this node's description).

    The registry credentials stay out: the container record is shown by `inspect`.
    """
    spec = types_pb2.ContainerSpec()
    spec.CopyFrom(task.spec.container)
    spec.ClearField("registry_auth")
    expand_templates(spec, template_values(task, node or types_pb2.NodeDescription()))
    name = container_name(task)
    spec.labels[SERVICE_NAME_LABEL] = service_name(task)
    spec.labels[SERVICE_ID_LABEL] = task.service_id
    spec.labels[TASK_ID_LABEL] = task.id
    spec.labels[TASK_NAME_LABEL] = name.rsplit(".", 1)[0]
    if task.node_id:
        spec.labels[NODE_ID_LABEL] = task.node_id
    # Host-mode ports are the container's own (kernel DNAT on this node); ingress-mode
    # ports are the routing mesh's, open on every node (load_balancing.py).
    ports = [
        _published(port)
        for port in task.ports
        if port.published_port and port.publish_mode == types_pb2.PortConfig.HOST
    ]
    return agent_pb2.CreateContainerRequest(
        name=name,
        image=image or spec.image,
        spec=spec,
        limits=task.spec.resources.limits,
        ports=ports,
        entrypoint_set=bool(spec.command),
        start=False,
        overlays=overlay_attachments(task),
    )


def overlay_attachments(task: types_pb2.Task) -> list[types_pb2.ContainerNetworkAttachment]:
    """The task's addresses on its networks (Task.networks, in the task's order)."""
    return [
        types_pb2.ContainerNetworkAttachment(network_id=a.network_id, address=a.addresses[0])
        for a in task.networks
        if a.addresses
    ]


def _published(port: types_pb2.PortConfig) -> types_pb2.PortConfig:
    # No routing mesh: ingress and host mode alike publish on this node's addresses.
    copy = types_pb2.PortConfig()
    copy.CopyFrom(port)
    copy.host_ip = ""
    return copy
