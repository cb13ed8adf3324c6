"""From what the user asked for to what the runtime runs.

`build_container` validates a create request and merges it with the image's config
the way docker does (entrypoint, cmd, env, workdir, user); `runtime_spec` turns a
stored Container into the supervisor's RuntimeSpec with host paths filled in.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import signal
from collections.abc import Sequence
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from pyswarm.agent.dns.resolv_conf import container_resolv_conf, read_host_resolv_conf
from pyswarm.agent.engine import hardening
from pyswarm.agent.engine.errors import BadSpec
from pyswarm.common.errors import InvalidArgument
from pyswarm.common.mounts import MountError, validate_mounts
from pyswarm.common.name_resolution import validate_dns, validate_hosts
from pyswarm.common.signals import InvalidSignal, parse_signal
from pyswarm.proto import agent_pb2, runtime_pb2, types_pb2

# A cluster task's container carries its service's id under docker's label; replicas of
# one service on a host share their ingress-published ports (see BridgeNetwork.publish).
SERVICE_ID_LABEL = "com.docker.swarm.service.id"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MIN_MEMORY = 6 * 1024 * 1024
DEFAULT_STOP_SIGNAL = "SIGTERM"
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_HOSTNAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,62})(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,62}))*$")
_ADJECTIVES = ("brave", "calm", "eager", "fond", "keen", "lucid", "merry", "quiet", "swift")
_NOUNS = ("turing", "hopper", "lovelace", "ritchie", "thompson", "knuth", "liskov", "perlman")


def random_name() -> str:
    return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}_{secrets.token_hex(2)}"


def validate_name(name: str) -> None:
    if not _NAME.match(name):
        raise BadSpec(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
            field="name",
        )


def _merge_env(base: list[str], override: list[str]) -> list[str]:
    merged: dict[str, str] = {}
    for item in [*base, *override]:
        key, sep, value = item.partition("=")
        if not key:
            raise BadSpec(f'invalid environment variable "{item}"', field="env")
        merged[key] = f"{key}={value}" if sep else f"{key}={os.environ.get(key, '')}"
    return list(merged.values())


@functools.cache
def _host_cpus() -> int:
    """The host's CPUs, counted once per process as docker's daemon does: under a burst
    of starts, reading sysfs on every create cost more than the rest of the checks."""
    return os.cpu_count() or 1


def _validate_limits(limits: types_pb2.Resources) -> None:
    if limits.memory_bytes < 0 or 0 < limits.memory_bytes < MIN_MEMORY:
        raise BadSpec("Minimum memory limit allowed is 6MB", field="memory")
    cpus = _host_cpus()
    if limits.nano_cpus < 0 or limits.nano_cpus > cpus * 1_000_000_000:
        raise BadSpec(
            f"Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available",
            field="cpus",
        )
    if limits.pids < 0:
        raise BadSpec("pids limit must be positive", field="pids-limit")


def _validate_mounts(mounts: list[types_pb2.Mount]) -> None:
    try:
        validate_mounts(mounts, "mount")
    except MountError as err:
        raise BadSpec(err.message, field=err.field) from None


def _validate_ports(ports: list[types_pb2.PortConfig]) -> None:
    for port in ports:
        if not 0 < port.target_port <= 65535:
            raise BadSpec(f"invalid container port {port.target_port}", field="publish")
        if not 0 <= port.published_port <= 65535:
            raise BadSpec(f"invalid host port {port.published_port}", field="publish")


def build_container(
    request: agent_pb2.CreateContainerRequest, image: types_pb2.Image
) -> types_pb2.Container:
    """A new CREATED container for `request`, merged with the image's config."""
    name = request.name or random_name()
    validate_name(name)
    _validate_limits(request.limits)
    _validate_mounts(list(request.spec.mounts))
    _validate_ports(list(request.ports))
    bridged = request.network_mode == types_pb2.Container.BRIDGE
    if (request.overlays or request.networks) and not bridged:
        raise BadSpec("overlay networks need the bridge network mode", field="network")
    if request.network_mode == types_pb2.Container.HOST and request.ports:
        raise BadSpec("published ports are discarded when using host network mode", field="publish")
    if request.spec.hostname and not _HOSTNAME.match(request.spec.hostname):
        raise BadSpec(f"invalid hostname {request.spec.hostname!r}", field="hostname")
    hardening.validate(request.spec, host_network=request.network_mode == types_pb2.Container.HOST)
    validate_name_settings(request.spec)
    if request.spec.privileged and request.user_namespace:
        # As docker: host devices and capabilities mean nothing to a mapped root.
        raise BadSpec("--privileged is incompatible with --userns", field="privileged")

    config = image.config
    if request.entrypoint_set:
        command = list(request.spec.command)
        args = list(request.spec.args)
    else:
        command = list(config.entrypoint)
        args = list(request.spec.args) or list(config.cmd)
    if not command and not args:
        raise BadSpec("no command specified", field="command")

    container_id = secrets.token_hex(32)
    spec = types_pb2.ContainerSpec()
    spec.CopyFrom(request.spec)
    spec.image = request.image
    del spec.command[:]
    spec.command.extend(command)
    del spec.args[:]
    spec.args.extend(args)
    env = _merge_env(list(config.env), list(request.spec.env))
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    del spec.env[:]
    spec.env.extend(env)
    spec.dir = request.spec.dir or config.working_dir or "/"
    spec.user = request.spec.user or config.user
    spec.hostname = request.spec.hostname or container_id[:12]
    spec.stop_signal = stop_signal(request.spec.stop_signal, config.stop_signal)

    created = Timestamp()
    created.GetCurrentTime()
    return types_pb2.Container(
        id=container_id,
        name=name,
        image=request.image,
        image_id=image.id,
        spec=spec,
        limits=request.limits,
        ports=request.ports,
        network_mode=request.network_mode,
        state=types_pb2.Container.CREATED,
        created_at=created,
        auto_remove=request.auto_remove,
        user_namespace=request.user_namespace,
        overlays=request.overlays,
    )


def stop_signal(requested: str, image: str) -> str:
    """The signal that stops the container: --stop-signal, else the image's STOPSIGNAL
    (when the kernel has it), else SIGTERM. Kept as written, as docker shows it."""
    if requested:
        parse_signal(requested, "stop-signal")
        return requested
    try:
        parse_signal(image, "STOPSIGNAL")
    except InvalidSignal:
        return DEFAULT_STOP_SIGNAL
    return image


def stop_settings(container: types_pb2.Container, timeout: int, default: int) -> tuple[int, float]:
    """The signal `stop` sends and the seconds of grace before SIGKILL: `timeout` when
    given (>= 0), else the container's stop grace period (run --stop-timeout), else
    `default`."""
    try:
        number = parse_signal(container.spec.stop_signal or DEFAULT_STOP_SIGNAL)
    except InvalidSignal:
        number = signal.SIGTERM
    if timeout >= 0:
        return number, timeout
    if container.spec.HasField("stop_grace_period"):
        return number, container.spec.stop_grace_period.ToNanoseconds() / 1e9
    return number, default


def validate_name_settings(spec: types_pb2.ContainerSpec) -> None:
    """--add-host, --dns*, --group-add: the same rules as the manager's (common/)."""
    dns = spec.dns_config
    try:
        validate_hosts(list(spec.hosts), "add-host")
        validate_dns(list(dns.nameservers), list(dns.search), list(dns.options), "dns")
    except InvalidArgument as err:
        raise BadSpec(err.message, field=err.field) from None
    for group in spec.groups:
        if not group or ":" in group or any(c.isspace() for c in group):
            raise BadSpec(f"invalid group {group!r}", field="group-add")


def port_group(container: types_pb2.Container) -> str:
    """The group whose members may publish the same host ports: the service, for
    ingress-mode ports of a cluster task; none for a plain container."""
    ingress = any(p.publish_mode == types_pb2.PortConfig.INGRESS for p in container.ports)
    return container.spec.labels.get(SERVICE_ID_LABEL, "") if ingress else ""


def write_etc_files(
    container: types_pb2.Container, directory: Path, *, embedded_resolver: bool = False
) -> list[runtime_pb2.BindMount]:
    """hosts, hostname and resolv.conf for the container, bind-mounted as docker does;
    with `embedded_resolver`, resolv.conf points to the agent's resolver (agent/dns)."""
    hostname = container.spec.hostname
    hosts = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    # --add-host lines ("IP HOST ..."), before the container's own, as docker writes them.
    hosts += ["\t".join(entry.split(maxsplit=1)) for entry in container.spec.hosts]
    if container.ip_address:
        hosts.append(f"{container.ip_address}\t{hostname}")
    elif container.network_mode != types_pb2.Container.HOST:
        hosts.append(f"127.0.1.1\t{hostname}")
    dns = container.spec.dns_config
    files = {
        "hosts": "\n".join(hosts) + "\n",
        "hostname": hostname + "\n",
        "resolv.conf": container_resolv_conf(
            read_host_resolv_conf(),
            embedded_resolver=embedded_resolver,
            nameservers=dns.nameservers,
            search=dns.search,
            options=dns.options,
        ),
    }
    mounts = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text)
        mounts.append(runtime_pb2.BindMount(source=str(path), target=f"/etc/{name}"))
    if container.network_mode == types_pb2.Container.HOST:
        # Host networking shares the host's name resolution, as docker does.
        return [m for m in mounts if m.target != "/etc/hostname"]
    return mounts


def runtime_spec(
    container: types_pb2.Container,
    directory: Path,
    layers: Sequence[Path],
    *,
    mounts: list[runtime_pb2.BindMount],
    netns_path: str,
    cgroup_dirs: Sequence[str],
    log_path: Path,
) -> runtime_pb2.RuntimeSpec:
    """What the supervisor needs to start the container: its process, an overlay of the
    image `layers` under the writable layer in `directory`, the bind mounts of the /etc
    files (`mounts`; the user's mounts and volumes are container_volumes.py's), the
    namespaces and cgroups to join, and the security floor (hardening.py)."""
    spec = container.spec
    runtime = runtime_pb2.RuntimeSpec(
        id=container.id,
        args=[*spec.command, *spec.args],
        env=[*spec.env, f"HOSTNAME={spec.hostname}"],
        cwd=spec.dir or "/",
        user=spec.user,
        hostname=spec.hostname,
        rootfs=runtime_pb2.OverlayRootfs(
            lower_dirs=[str(p) for p in layers],
            upper_dir=str(directory / "upper"),
            work_dir=str(directory / "work"),
            merged_dir=str(directory / "rootfs"),
            read_only=spec.read_only,
        ),
        mounts=mounts,
        netns_path=netns_path,
        private_network=container.network_mode == types_pb2.Container.NONE,
        cgroup_dirs=cgroup_dirs,
        tty=spec.tty,
        open_stdin=spec.open_stdin,
        log_path=str(log_path),
        init=spec.init,
        groups=spec.groups,
    )
    hardening.apply_to_runtime(spec, runtime)
    return runtime


def now_timestamp() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


def timestamp_of(seconds: float) -> Timestamp:
    """A unix time the supervisor reported; now when it reported none."""
    ts = Timestamp()
    if seconds > 0:
        ts.FromNanoseconds(int(seconds * 1e9))
    else:
        ts.GetCurrentTime()
    return ts
