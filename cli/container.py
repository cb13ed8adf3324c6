"""`pyswarm container ...` (and docker's short forms: run, ps, logs, exec, ...)."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from pyswarm.cli import client
from pyswarm.cli.container_health import health_dict, health_suffix
from pyswarm.cli.container_run import attach_stream, run
from pyswarm.cli.container_runtime import runtime_host_config
from pyswarm.cli.container_security import security_dict
from pyswarm.cli.errors import apply_each, expect_failure_code
from pyswarm.cli.output import (
    Format,
    ago,
    binary_size,
    human_duration,
    print_json,
    print_json_lines,
    print_table,
)
from pyswarm.cli.parse import CliInputError, parse_env
from pyswarm.cli.volume import mount_dict
from pyswarm.common.healthcheck import healthcheck_document
from pyswarm.proto import agent_pb2, types_pb2

app = typer.Typer(help="Manage containers on this host.", no_args_is_help=True)

PASSTHROUGH = {"allow_interspersed_args": False, "ignore_unknown_options": False}
_STATES = {0: "created", 1: "running", 2: "exited", 3: "dead"}


def _seconds(ts: Any) -> float:
    return float(ts.seconds) + float(ts.nanos) / 1e9


def _ports_text(container: types_pb2.Container) -> str:
    from pyswarm.common.publish import format_port

    return ", ".join(format_port(port) for port in container.ports)


def _status_text(container: types_pb2.Container) -> str:
    if container.state == types_pb2.Container.RUNNING:
        up = "Up " + human_duration(time.time() - _seconds(container.started_at))
        return up + health_suffix(container.health)
    if container.state == types_pb2.Container.EXITED:
        return f"Exited ({container.exit_code}) " + ago(_seconds(container.finished_at))
    return "Created"


def _command_text(container: types_pb2.Container) -> str:
    return " ".join([*container.spec.command, *container.spec.args])


def _ps_json(container: types_pb2.Container) -> dict[str, Any]:
    return {
        "Command": _command_text(container),
        "CreatedAt": time.strftime(
            "%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(_seconds(container.created_at))
        ),
        "ID": container.id[:12],
        "Image": container.image,
        "Names": container.name,
        "Ports": _ports_text(container),
        "RunningFor": ago(_seconds(container.created_at)),
        "State": _STATES.get(container.state, "unknown"),
        "Status": _status_text(container),
    }


def inspect_dict(c: types_pb2.Container) -> dict[str, Any]:
    """docker inspect's field names where docker has the same thing."""

    def iso(ts: Any) -> str:
        if not ts.seconds:
            return "0001-01-01T00:00:00Z"
        return str(ts.ToJsonString())

    ports: dict[str, list[dict[str, str]]] = {}
    for p in c.ports:
        key = f"{p.target_port}/{'udp' if p.protocol == types_pb2.PortConfig.UDP else 'tcp'}"
        ports.setdefault(key, []).append(
            {"HostIp": p.host_ip or "0.0.0.0", "HostPort": str(p.published_port)}
        )
    mode = {0: "bridge", 1: "host", 2: "none"}[c.network_mode]
    args = [*c.spec.command, *c.spec.args]
    return {
        "Id": c.id,
        "Created": iso(c.created_at),
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": {
            "Status": _STATES.get(c.state, "unknown"),
            "Running": c.state == types_pb2.Container.RUNNING,
            "OOMKilled": c.oom_killed,
            "Dead": c.state == types_pb2.Container.DEAD,
            "Pid": c.pid,
            "ExitCode": c.exit_code,
            "Error": c.error,
            "StartedAt": iso(c.started_at),
            "FinishedAt": iso(c.finished_at),
            **({"Health": health_dict(c.health)} if c.HasField("health") else {}),
        },
        "Image": c.image_id,
        "Name": "/" + c.name,
        "RestartCount": c.restart_count,
        "Config": {
            "Hostname": c.spec.hostname,
            "User": c.spec.user,
            "Tty": c.spec.tty,
            "OpenStdin": c.spec.open_stdin,
            "Env": list(c.spec.env),
            "Cmd": list(c.spec.args),
            "Entrypoint": list(c.spec.command) or None,
            "Image": c.image,
            "WorkingDir": c.spec.dir,
            "StopSignal": c.spec.stop_signal,
            **(
                {"StopTimeout": c.spec.stop_grace_period.seconds}
                if c.spec.HasField("stop_grace_period")
                else {}
            ),
            **({"Healthcheck": healthcheck_document(c.healthcheck)} if c.healthcheck.test else {}),
        },
        "HostConfig": {
            "Binds": [
                f"{m.source}:{m.target}{':ro' if m.read_only else ''}" for m in c.spec.mounts
            ],
            "NetworkMode": mode,
            "PortBindings": ports,
            "AutoRemove": c.auto_remove,
            "Memory": c.limits.memory_bytes,
            "NanoCpus": c.limits.nano_cpus,
            "PidsLimit": c.limits.pids or None,
            **security_dict(c.spec),
            **runtime_host_config(c.spec),
        },
        "Mounts": [mount_dict(m) for m in c.spec.mounts],
        "NetworkSettings": {
            "IPAddress": c.ip_address,
            "MacAddress": c.mac_address,
            "Ports": ports,
        },
    }


def ps(
    all: Annotated[bool, typer.Option("-a", "--all", help="Show stopped ones too")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only IDs")] = False,
    no_trunc: Annotated[bool, typer.Option("--no-trunc")] = False,
    format: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """List containers (docker ps)."""
    containers = client.containers().List(agent_pb2.ListContainersRequest(all=all)).containers
    if quiet:
        for c in containers:
            print(c.id if no_trunc else c.id[:12])
        return
    if format == Format.json:
        print_json_lines([_ps_json(c) for c in containers])
        return
    rows = []
    for c in containers:
        command = _command_text(c)
        if not no_trunc and len(command) > 20:
            command = command[:19] + "…"
        rows.append([
            c.id if no_trunc else c.id[:12], c.image, f'"{command}"',
            ago(_seconds(c.created_at)), _status_text(c), _ports_text(c), c.name,
        ])  # fmt: skip
    print_table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], rows)


def stop(
    containers: Annotated[list[str], typer.Argument()],
    time_: Annotated[int, typer.Option("-t", "--time", help="Seconds before SIGKILL")] = -1,
) -> None:
    """Stop containers: SIGTERM, a grace period, then SIGKILL."""
    stub = client.containers()
    apply_each(
        containers, lambda r: stub.Stop(agent_pb2.StopContainerRequest(id=r, timeout_seconds=time_))
    )


def start(
    containers: Annotated[list[str], typer.Argument()],
) -> None:
    """Start stopped containers."""
    stub = client.containers()
    apply_each(containers, lambda r: stub.Start(agent_pb2.ContainerRef(id=r)))


def restart(
    containers: Annotated[list[str], typer.Argument()],
    time_: Annotated[int, typer.Option("-t", "--time")] = -1,
) -> None:
    """Restart containers."""
    stub = client.containers()
    apply_each(
        containers,
        lambda r: stub.Restart(agent_pb2.StopContainerRequest(id=r, timeout_seconds=time_)),
    )


def kill(
    containers: Annotated[list[str], typer.Argument()],
    signal: Annotated[str, typer.Option("-s", "--signal")] = "KILL",
) -> None:
    """Send a signal to containers."""
    stub = client.containers()
    apply_each(containers, lambda r: stub.Kill(agent_pb2.KillContainerRequest(id=r, signal=signal)))


def rm(
    containers: Annotated[list[str], typer.Argument()],
    force: Annotated[bool, typer.Option("-f", "--force")] = False,
    volumes: Annotated[
        bool, typer.Option("-v", "--volumes", help="Remove its anonymous volumes too")
    ] = False,
) -> None:
    """Remove containers."""
    stub = client.containers()
    apply_each(
        containers,
        lambda r: stub.Remove(
            agent_pb2.RemoveContainerRequest(id=r, force=force, remove_volumes=volumes)
        ),
    )


def rename(old: str, new: str) -> None:
    """Rename a container."""
    client.containers().Rename(agent_pb2.RenameContainerRequest(id=old, new_name=new))


def logs(
    container: str,
    follow: Annotated[bool, typer.Option("-f", "--follow")] = False,
    tail: Annotated[str, typer.Option("-n", "--tail")] = "all",
    timestamps: Annotated[bool, typer.Option("-t", "--timestamps")] = False,
) -> None:
    """Show a container's output."""
    if tail != "all" and not tail.isdigit():
        raise CliInputError(f'invalid value "{tail}" for --tail', field="--tail")
    request = agent_pb2.LogsRequest(
        id=container, follow=follow, tail=-1 if tail == "all" else int(tail), timestamps=timestamps
    )
    for entry in client.containers().Logs(request):
        stream = sys.stderr if entry.stream == "stderr" else sys.stdout
        if timestamps:
            stream.buffer.write(entry.time.ToJsonString().encode() + b" ")
        stream.buffer.write(entry.data)
        stream.flush()


def exec_(
    container: Annotated[str, typer.Argument()],
    command: Annotated[list[str], typer.Argument()],
    interactive: Annotated[bool, typer.Option("-i", "--interactive")] = False,
    tty: Annotated[bool, typer.Option("-t", "--tty")] = False,
    env: Annotated[list[str] | None, typer.Option("-e", "--env")] = None,
    user: Annotated[str, typer.Option("-u", "--user")] = "",
    workdir: Annotated[str, typer.Option("-w", "--workdir")] = "",
) -> None:
    """Run a command in a running container."""
    from pyswarm.cli.streams import run_stream

    expect_failure_code(126)
    spec = agent_pb2.ExecSpec(
        container=container, cmd=command, env=parse_env(env or []), user=user, dir=workdir,
        tty=tty, open_stdin=interactive,
    )  # fmt: skip
    code = run_stream(
        client.containers().Exec,
        agent_pb2.ExecInput(spec=spec),
        agent_pb2.ExecInput,
        interactive=interactive,
        tty_mode=tty,
    )
    raise typer.Exit(code)


def attach(container: str) -> None:
    """Attach to a running container's input and output."""
    stub = client.containers()
    c = stub.Inspect(agent_pb2.ContainerRef(id=container))
    code = attach_stream(stub, c.id, interactive=c.spec.open_stdin, tty_mode=c.spec.tty)
    raise typer.Exit(code)


def port(container: str, private: Annotated[str, typer.Argument()] = "") -> None:
    """List a container's published ports."""
    c = client.containers().Inspect(agent_pb2.ContainerRef(id=container))
    found = False
    for p in c.ports:
        proto = "udp" if p.protocol == types_pb2.PortConfig.UDP else "tcp"
        key = f"{p.target_port}/{proto}"
        if private and private not in (key, str(p.target_port)):
            continue
        found = True
        line = f"{p.host_ip or '0.0.0.0'}:{p.published_port}"
        print(line if private else f"{key} -> {line}")
    if private and not found:
        raise CliInputError(f"No public port '{private}' published for {container}")


def inspect(containers: Annotated[list[str], typer.Argument()]) -> None:
    """Show containers in detail (JSON)."""
    stub = client.containers()
    print_json([inspect_dict(stub.Inspect(agent_pb2.ContainerRef(id=r))) for r in containers])


def stats(
    containers: Annotated[list[str] | None, typer.Argument()] = None,
    no_stream: Annotated[bool, typer.Option("--no-stream")] = False,
    format: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """CPU and memory use of running containers, from their cgroups."""
    request = agent_pb2.StatsRequest(ids=containers or [], stream=not no_stream)
    for response in client.containers().Stats(request):
        rows = []
        objects = []
        for s in response.stats:
            limit = s.memory_limit_bytes
            mem_pct = f"{100.0 * s.memory_usage_bytes / limit:.2f}%" if limit else "0.00%"
            usage = f"{binary_size(s.memory_usage_bytes)} / {binary_size(limit) if limit else '-'}"
            row = [s.id[:12], s.name, f"{s.cpu_percent:.2f}%", usage, mem_pct, str(s.pids)]
            rows.append(row)
            keys = ["ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "PIDs"]
            objects.append(dict(zip(keys, row, strict=True)))
        if format == Format.json:
            print_json_lines(objects)
        else:
            if not no_stream and sys.stdout.isatty():
                sys.stdout.write("\x1b[2J\x1b[H")
            print_table(
                ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"], rows
            )


COMMANDS: dict[str, Any] = {
    "run": run, "ps": ps, "stop": stop, "start": start, "restart": restart, "kill": kill,
    "rm": rm, "rename": rename, "logs": logs, "exec": exec_, "attach": attach, "port": port,
    "inspect": inspect, "stats": stats,
}  # fmt: skip
NEEDS_PASSTHROUGH = {"run", "exec"}

for _name, _fn in COMMANDS.items():
    app.command(_name, context_settings=PASSTHROUGH if _name in NEEDS_PASSTHROUGH else None)(_fn)
app.command("ls", hidden=True)(ps)
