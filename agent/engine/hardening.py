"""The container security floor, in one place: what every process started in a
container gets (run, exec, health probes, build steps, service tasks).

docker's defaults: 14 capabilities, masked and read-only /proc and /sys paths, a
device allowlist with only the standard nodes (less /dev/net/tun), then the user's
--cap-add/--cap-drop/--device on top, and --privileged as the one way out: every
capability, no masks, /sys read-write, every host device made and allowed.
The seccomp filter and no_new_privs come from confinement.py, for the capability
set decided here.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from pyswarm.agent.engine.confinement import confine_exec, confine_runtime, process_filter
from pyswarm.agent.engine.errors import BadSpec
from pyswarm.agent.runtime.cgroups import (
    ALLOW_ALL,
    DEFAULT_DEVICE_RULES,
    DeviceRule,
    InvalidLimit,
    device_kind,
    rule_for_node,
)
from pyswarm.agent.runtime.container.capabilities import (
    CAPABILITIES,
    DEFAULT_CAPABILITIES,
    bounding_set,
    last_capability,
    normalize,
)
from pyswarm.agent.runtime.container.rootfs import DEVICES as STANDARD_DEVICES
from pyswarm.common.errors import InvalidArgument
from pyswarm.common.sysctls import validate_sysctls
from pyswarm.common.ulimits import validate_ulimit
from pyswarm.proto import runtime_pb2, types_pb2

MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)
# Host /dev entries --privileged does not copy: the container has its own of these.
_PRIVATE_DEV = frozenset({"pts", "shm", "mqueue", "fd", "console", "ptmx", *STANDARD_DEVICES})
_ALL = "ALL"


def _is_all(name: str) -> bool:
    return name.strip().upper() in (_ALL, "CAP_ALL")


def _known_capabilities() -> list[str]:
    """Every capability this kernel has and this host lets us give (capset refuses the
    others), as docker's "ALL"."""
    last, bounding = last_capability(), bounding_set()
    return [n for n, bit in CAPABILITIES.items() if bit <= last and bounding >> bit & 1]


def _canonical(names: list[str], flag: str) -> list[str]:
    result: list[str] = []
    for name in names:
        canonical = _ALL if _is_all(name) else normalize(name)
        if canonical != _ALL and canonical not in CAPABILITIES:
            raise BadSpec(f"{flag} {name}: unknown capability", field=flag.lstrip("-"))
        if canonical not in result:
            result.append(canonical)
    return result


def capabilities(spec: types_pb2.ContainerSpec) -> list[str]:
    """The container's capability set: docker's default 14 with --cap-add/--cap-drop
    applied (ALL on either side as docker reads it), or all of them if privileged."""
    if spec.privileged:
        return _known_capabilities()
    adds = _canonical(list(spec.capability_add), "--cap-add")
    drops = _canonical(list(spec.capability_drop), "--cap-drop")
    if _ALL in adds:
        return [c for c in _known_capabilities() if c not in drops]
    if _ALL in drops:
        return [c for c in adds if c != _ALL]
    kept = [c for c in DEFAULT_CAPABILITIES if c not in drops]
    return kept + [c for c in adds if c not in kept]


def _device_mapping(mapping: types_pb2.DeviceMapping) -> tuple[str, DeviceRule]:
    """The container path and cgroup rule of one --device (its host node read now)."""
    flag = f"--device {mapping.path_on_host}"
    if not mapping.path_on_host.startswith("/"):
        raise BadSpec(f"{flag}: the host path must be absolute", field="device")
    in_container = mapping.path_in_container or mapping.path_on_host
    if not in_container.startswith("/") or ".." in in_container.split("/"):
        raise BadSpec(f"{flag}: invalid container path {in_container!r}", field="device")
    try:
        rule = rule_for_node(mapping.path_on_host, mapping.permissions or "rwm")
    except InvalidLimit as err:
        reason = str(err).removeprefix(f"{mapping.path_on_host}: ")
        raise BadSpec(f"{flag}: {reason}", field="device") from err
    return in_container, rule


def validate(spec: types_pb2.ContainerSpec, *, host_network: bool = False) -> None:
    """BadSpec (or ProfileError) naming the flag at fault for a bad capability, device,
    seccomp profile, sysctl (only namespaced ones; no net.* on the host's network) or
    ulimit; changes nothing."""
    process_filter(spec, capabilities(spec))
    for mapping in spec.devices:
        _device_mapping(mapping)
    try:
        validate_sysctls(dict(spec.sysctls), host_network=host_network)
        for ulimit in spec.ulimits:
            validate_ulimit(ulimit.name, ulimit.soft, ulimit.hard)
    except InvalidArgument as err:
        raise BadSpec(err.message, field=err.field) from None


def device_rules(spec: types_pb2.ContainerSpec) -> list[DeviceRule]:
    """The container's device cgroup allowlist."""
    if spec.privileged:
        return list(ALLOW_ALL)
    return [*DEFAULT_DEVICE_RULES, *(_device_mapping(m)[1] for m in spec.devices)]


def _node(path_on_host: str, path_in_container: str) -> runtime_pb2.DeviceNode | None:
    try:
        info = os.stat(path_on_host)
    except OSError:
        return None
    kind = device_kind(info)
    if not kind:
        return None
    return runtime_pb2.DeviceNode(
        path=path_in_container,
        type=kind,
        major=os.major(info.st_rdev),
        minor=os.minor(info.st_rdev),
        file_mode=stat.S_IMODE(info.st_mode),
        uid=info.st_uid,
        gid=info.st_gid,
    )


def host_devices(dev: str = "/dev") -> Iterator[tuple[str, str]]:
    """(host path, container path) of every device node under the host's /dev that a
    privileged container gets; symlinks and the container's own nodes are skipped."""
    for directory, subdirs, names in os.walk(dev):
        if directory == dev:
            subdirs[:] = [d for d in subdirs if d not in _PRIVATE_DEV]
        for name in names:
            if directory == dev and name in _PRIVATE_DEV:
                continue
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                yield path, "/dev" + path[len(dev) :]


def device_nodes(spec: types_pb2.ContainerSpec) -> list[runtime_pb2.DeviceNode]:
    """The extra nodes the container's /dev gets: its --device list, and with
    --privileged every host device."""
    nodes: list[runtime_pb2.DeviceNode] = []
    for mapping in spec.devices:
        node = _node(mapping.path_on_host, _device_mapping(mapping)[0])
        if node is not None:
            nodes.append(node)
    if spec.privileged:
        taken = {n.path for n in nodes}
        for host_path, container_path in host_devices():
            node = _node(host_path, container_path)
            if node is not None and container_path not in taken:
                nodes.append(node)
    return nodes


def apply_to_runtime(spec: types_pb2.ContainerSpec, runtime: runtime_pb2.RuntimeSpec) -> None:
    """Fill the container's security fields of `runtime` from its ContainerSpec."""
    del runtime.capabilities[:]
    runtime.capabilities.extend(capabilities(spec))
    del runtime.masked_paths[:]
    del runtime.readonly_paths[:]
    if not spec.privileged:
        runtime.masked_paths.extend(MASKED_PATHS)
        runtime.readonly_paths.extend(READONLY_PATHS)
    del runtime.devices[:]
    runtime.devices.extend(device_nodes(spec))
    runtime.privileged = spec.privileged
    # Checked again here: a record written by an older agent reaches the kernel too.
    validate_sysctls(
        dict(spec.sysctls), host_network=not (runtime.netns_path or runtime.private_network)
    )
    runtime.sysctls.clear()
    runtime.sysctls.update(spec.sysctls)
    del runtime.rlimits[:]
    runtime.rlimits.extend(
        runtime_pb2.Rlimit(name=u.name, soft=u.soft, hard=u.hard) for u in spec.ulimits
    )
    confine_runtime(runtime, spec)


def apply_to_exec(spec: types_pb2.ContainerSpec, process: runtime_pb2.ExecProcess) -> None:
    """Give an exec'd process (exec, health probe) the container's own confinement."""
    del process.capabilities[:]
    process.capabilities.extend(capabilities(spec))
    confine_exec(process, spec)
