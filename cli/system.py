"""`pyswarm system df` (what images, containers and volumes use on disk) and `system info`
(the cluster's summary, as `docker info`'s Swarm part, and this host's facts)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from pyswarm.cli import client
from pyswarm.cli.output import Format, human_size, print_json_lines, print_table
from pyswarm.proto import agent_pb2

app = typer.Typer(help="Manage pyswarm on this host.", no_args_is_help=True)


def _pct(part: int, whole: int) -> str:
    return f"{human_size(part)} ({100 * part // whole if whole else 0}%)"


def _volumes_row() -> list[str]:
    """docker's "Local Volumes" row: active = used by a container; reclaimable = the
    size of the unused ones."""
    volumes = client.volumes().List(agent_pb2.VolumeListRequest(usage=True)).volumes
    size = sum(v.size for v in volumes)
    active = sum(1 for v in volumes if v.ref_count > 0)
    reclaimable = sum(v.size for v in volumes if v.ref_count == 0)
    return [
        "Local Volumes", str(len(volumes)), str(active), human_size(size),
        _pct(reclaimable, size), "-", "-",
    ]  # fmt: skip


@app.command("df")
def df(format: Annotated[Format, typer.Option("--format")] = Format.table) -> None:
    """Show disk usage: images (real and shared size), containers' writable layers and
    local volumes."""
    usage = client.images().DiskUsage(agent_pb2.DiskUsageRequest())
    rows = [
        [
            "Images", str(usage.images_count), str(usage.images_active),
            human_size(usage.images_size), _pct(usage.images_reclaimable, usage.images_size),
            human_size(usage.images_shared_size), human_size(usage.images_unique_size),
        ],
        [
            "Containers", str(usage.containers_count), str(usage.containers_running),
            human_size(usage.containers_size),
            _pct(usage.containers_reclaimable, usage.containers_size), "-", "-",
        ],
    ]  # fmt: skip
    rows.append(_volumes_row())
    headers = ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE", "SHARED", "UNIQUE"]
    if format == Format.json:
        keys = ["Type", "TotalCount", "Active", "Size", "Reclaimable", "Shared", "Unique"]
        print_json_lines([dict(zip(keys, row, strict=True)) for row in rows])
        return
    print_table(headers, rows)


def _local_facts() -> tuple[dict[str, Any], str]:
    """This host's part of `docker info` from its agent (containers, images) and its
    kernel; with a warning instead when no agent answers here."""
    import grpc

    from pyswarm.proto import types_pb2

    facts: dict[str, Any] = {
        "ServerVersion": _version(),
        "KernelVersion": os.uname().release,
        "OperatingSystem": _os_name(),
        "Architecture": os.uname().machine,
        "NCPU": os.cpu_count() or 0,
        "CgroupDriver": "cgroupfs",
        # docker's test: a pure v2 host has cgroup.controllers at the cgroup root.
        "CgroupVersion": "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1",
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=no-new-privileges"],
    }
    try:
        containers = client.containers().List(agent_pb2.ListContainersRequest(all=True))
        images = client.images().List(agent_pb2.ImageRef()).images
    except client.AgentUnavailable as err:
        return facts, f"{err} (containers and images not shown)"
    except grpc.RpcError as err:
        detail = err.details() if isinstance(err, grpc.Call) else str(err)
        return facts, f"no local agent answers ({detail}): containers and images not shown"
    states = [c.state for c in containers.containers]
    running = types_pb2.Container.RUNNING
    facts.update({
        "Containers": len(states),
        "ContainersRunning": states.count(running),
        "ContainersPaused": 0,
        "ContainersStopped": len(states) - states.count(running),
        "Images": len(images),
    })  # fmt: skip
    if any(c.user_namespace for c in containers.containers):
        facts["SecurityOptions"].append("name=userns")
    return facts, ""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pyswarm")
    except PackageNotFoundError:
        return "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.partition("=")[2].strip('"')
    except OSError:
        pass
    return os.uname().sysname


def _duration(value: Any) -> str:
    from pyswarm.cli.output import human_duration

    return human_duration(value.ToTimedelta().total_seconds()).lower()


def swarm_facts(info: Any) -> dict[str, Any]:
    """The Swarm part of `docker info --format json` from a SystemInfo."""
    return {
        "LocalNodeState": "active",
        "NodeID": info.node_id,
        "NodeAddr": info.node_address,
        "ControlAvailable": info.is_manager,
        "Managers": info.managers,
        "Nodes": info.nodes,
        "Cluster": {
            "ID": info.cluster_id,
            "DefaultAddrPool": list(info.default_addr_pool),
            "SubnetSize": info.subnet_size,
            "Orchestration": {"TaskHistoryRetentionLimit": info.task_history_retention_limit},
            "Dispatcher": {"HeartbeatPeriod": info.heartbeat_period.ToNanoseconds()},
            "CAConfig": {"NodeCertExpiry": info.node_cert_expiry.ToNanoseconds()},
            "EncryptionConfig": {"AutoLockManagers": info.autolock},
            "RootRotationInProgress": info.root_rotation_in_progress,
            "Etcd": {
                "Endpoints": list(info.store.endpoints),
                "Embedded": info.store.embedded,
                "Revision": info.store.revision,
                "Compaction": info.store.compaction,
                "Leader": info.store.leader_id,
            },
        },
        "RemoteManagers": [{"Addr": a} for a in info.manager_addresses],
    }


def swarm_lines(info: Any) -> list[str]:
    """The Swarm part of `docker info`, as docker indents it."""
    store = info.store
    lines = [
        "Swarm: active",
        f" NodeID: {info.node_id}",
        f" Is Manager: {str(info.is_manager).lower()}",
        f" ClusterID: {info.cluster_id}",
        f" Managers: {info.managers}",
        f" Nodes: {info.nodes}",
        " Default Address Pool: " + " ".join(info.default_addr_pool),
        f" SubnetSize: {info.subnet_size}",
        " Orchestration:",
        f"  Task History Retention Limit: {info.task_history_retention_limit}",
        " etcd:",
        f"  Embedded: {str(store.embedded).lower()}",
        f"  Endpoints: {', '.join(store.endpoints)}",
        f"  Revision: {store.revision}",
        f"  Auto-compaction: {store.compaction or 'set by the etcd operator'}",
        f"  Leader: {store.leader_id or 'none'}",
        " Dispatcher:",
        f"  Heartbeat Period: {_duration(info.heartbeat_period)}",
        " CA Configuration:",
        f"  Expiry Duration: {_duration(info.node_cert_expiry)}",
        f" Autolock Managers: {str(info.autolock).lower()}",
        f" Root Rotation In Progress: {str(info.root_rotation_in_progress).lower()}",
        f" Node Address: {info.node_address}",
        " Manager Addresses:",
        *(f"  {address}" for address in info.manager_addresses),
    ]
    return lines


def _security_lines(options: list[str]) -> list[str]:
    """docker's `name=seccomp,profile=builtin` as "  seccomp" and "   Profile: builtin"."""
    lines = []
    for option in options:
        fields = dict(part.partition("=")[::2] for part in option.split(","))
        lines.append(f"  {fields.pop('name', option)}")
        lines += [f"   {key.capitalize()}: {value}" for key, value in fields.items()]
    return lines


@app.command("info")
def info(format: Annotated[Format, typer.Option("--format")] = Format.table) -> None:
    """Show the cluster's summary (docker info's Swarm part) and this host's facts."""
    from pyswarm.common.manager_client import control
    from pyswarm.proto import control_pb2

    cluster = control().GetSystemInfo(control_pb2.SystemInfoRequest())
    local, warning = _local_facts()
    if format == Format.json:
        warnings = [warning] if warning else []
        print_json_lines([{**local, "Swarm": swarm_facts(cluster), "Warnings": warnings}])
        return
    lines = ["Server:"]
    if "Containers" in local:
        lines += [
            f" Containers: {local['Containers']}",
            f"  Running: {local['ContainersRunning']}",
            f"  Paused: {local['ContainersPaused']}",
            f"  Stopped: {local['ContainersStopped']}",
            f" Images: {local['Images']}",
        ]
    lines += [
        f" Server Version: {local['ServerVersion']}",
        f" Cgroup Driver: {local['CgroupDriver']}",
        f" Cgroup Version: {local['CgroupVersion']}",
        *(" " + line for line in swarm_lines(cluster)),
        " Security Options:",
        *_security_lines(local["SecurityOptions"]),
        f" Kernel Version: {local['KernelVersion']}",
        f" Operating System: {local['OperatingSystem']}",
        f" Architecture: {local['Architecture']}",
        f" CPUs: {local['NCPU']}",
    ]
    print("\n".join(lines))
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
