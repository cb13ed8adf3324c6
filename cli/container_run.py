"""`pyswarm run` (`container run`): a container from docker's flags, created and
started on this host's agent, then attached to (unless -d) until it exits."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pyswarm.cli import client
from pyswarm.cli.container_health import health_flags
from pyswarm.cli.container_runtime import (
    AddHostOption,
    GroupAddOption,
    RunDnsOption,
    RunDnsOptionOption,
    RunDnsSearchOption,
    RunInitOption,
    RunStopSignalOption,
    RunSysctlOption,
    RunUlimitOption,
    StopTimeoutOption,
    apply_run_flags,
)
from pyswarm.cli.container_security import apply_security_flags
from pyswarm.cli.errors import expect_failure_code
from pyswarm.cli.parse import (
    CliInputError,
    parse_bytes,
    parse_cpus,
    parse_env,
    parse_mount,
    parse_volume,
)
from pyswarm.common.log_options import parse_log_opts
from pyswarm.proto import agent_pb2, types_pb2


def run(
    image: Annotated[str, typer.Argument(help="Image to run")],
    command: Annotated[list[str] | None, typer.Argument(help="Command and arguments")] = None,
    detach: Annotated[bool, typer.Option("-d", "--detach", help="Run in the background")] = False,
    name: Annotated[str, typer.Option("--name", help="Container name")] = "",
    publish: Annotated[list[str] | None, typer.Option("-p", "--publish")] = None,
    volume: Annotated[list[str] | None, typer.Option("-v", "--volume")] = None,
    mount: Annotated[
        list[str] | None, typer.Option("--mount", help="type=volume|bind|tmpfs,src=..,dst=..")
    ] = None,
    env: Annotated[list[str] | None, typer.Option("-e", "--env")] = None,
    workdir: Annotated[str, typer.Option("-w", "--workdir")] = "",
    user: Annotated[str, typer.Option("-u", "--user")] = "",
    hostname: Annotated[str, typer.Option("-h", "--hostname")] = "",
    memory: Annotated[str, typer.Option("-m", "--memory")] = "",
    cpus: Annotated[str, typer.Option("--cpus")] = "",
    pids_limit: Annotated[int, typer.Option("--pids-limit")] = 0,
    rm: Annotated[bool, typer.Option("--rm", help="Remove the container when it exits")] = False,
    network: Annotated[
        str, typer.Option("--network", help="bridge, host, none or an attachable swarm network")
    ] = "bridge",
    interactive: Annotated[bool, typer.Option("-i", "--interactive")] = False,
    tty: Annotated[bool, typer.Option("-t", "--tty")] = False,
    entrypoint: Annotated[str | None, typer.Option("--entrypoint")] = None,
    read_only: Annotated[bool, typer.Option("--read-only")] = False,
    userns: Annotated[bool, typer.Option("--userns", help="Run in a user namespace")] = False,
    health_cmd: Annotated[str, typer.Option("--health-cmd", help="Command to check health")] = "",
    health_interval: Annotated[str, typer.Option("--health-interval")] = "",
    health_timeout: Annotated[str, typer.Option("--health-timeout")] = "",
    health_start_period: Annotated[str, typer.Option("--health-start-period")] = "",
    health_retries: Annotated[int, typer.Option("--health-retries")] = 0,
    no_healthcheck: Annotated[bool, typer.Option("--no-healthcheck")] = False,
    cap_add: Annotated[list[str] | None, typer.Option("--cap-add", help="Add a capability")] = None,
    cap_drop: Annotated[
        list[str] | None, typer.Option("--cap-drop", help="Drop a capability")
    ] = None,
    privileged: Annotated[
        bool, typer.Option("--privileged", help="Lift every confinement (docker's)")
    ] = False,
    security_opt: Annotated[
        list[str] | None,
        typer.Option("--security-opt", help="seccomp=unconfined|FILE.json, no-new-privileges"),
    ] = None,
    device: Annotated[
        list[str] | None, typer.Option("--device", help="HOST[:CONTAINER][:rwm]")
    ] = None,
    log_opt: Annotated[
        list[str] | None, typer.Option("--log-opt", help="Log option: max-size=10m, max-file=3")
    ] = None,
    init: RunInitOption = False,
    sysctl: RunSysctlOption = None,
    ulimit: RunUlimitOption = None,
    dns: RunDnsOption = None,
    dns_search: RunDnsSearchOption = None,
    dns_option: RunDnsOptionOption = None,
    add_host: AddHostOption = None,
    group_add: GroupAddOption = None,
    stop_signal: RunStopSignalOption = "",
    stop_timeout: StopTimeoutOption = None,
) -> None:
    """Create and start a container (docker run)."""
    expect_failure_code(125)
    request = _create_request(
        image, command or [], name=name, publish=publish or [], volume=volume or [],
        env=env or [], workdir=workdir, user=user, hostname=hostname, memory=memory, cpus=cpus,
        pids_limit=pids_limit, rm=rm, network=network, interactive=interactive, tty=tty,
        entrypoint=entrypoint, read_only=read_only, userns=userns,
    )  # fmt: skip
    request.start = True
    request.spec.mounts.extend(parse_mount(m) for m in mount or [])
    apply_security_flags(
        request.spec, cap_add=cap_add or [], cap_drop=cap_drop or [], privileged=privileged,
        security_opt=security_opt or [], device=device or [],
    )  # fmt: skip
    request.spec.log_options.update(parse_log_opts(log_opt or []))
    apply_run_flags(request.spec, locals())
    check = health_flags(
        cmd=health_cmd, interval=health_interval, timeout=health_timeout,
        start_period=health_start_period, retries=health_retries, disabled=no_healthcheck,
    )  # fmt: skip
    if check is not None:
        request.spec.healthcheck.CopyFrom(check)
    # --rm is the agent's (docker's AutoRemove): attached or not, killed or not, the
    # agent removes the container once it exits and this client has its exit code.
    stub = client.containers()
    if detach:
        print(stub.Create(request).id)
        return
    from pyswarm.cli.streams import print_output, run_stream

    if interactive or tty:
        first = agent_pb2.AttachInput(run=request)
        code = run_stream(
            stub.Attach, first, agent_pb2.AttachInput, interactive=interactive, tty_mode=tty
        )
    else:
        code = print_output(stub.Run(request))
    raise typer.Exit(code)


def _create_request(
    image: str, command: list[str], *, name: str, publish: list[str], volume: list[str],
    env: list[str], workdir: str, user: str, hostname: str, memory: str, cpus: str,
    pids_limit: int, rm: bool, network: str, interactive: bool, tty: bool,
    entrypoint: str | None, read_only: bool, userns: bool,
) -> agent_pb2.CreateContainerRequest:  # fmt: skip
    from pyswarm.common.publish import parse_publish

    modes = {"bridge": 0, "default": 0, "host": 1, "none": 2}
    if not network:
        raise CliInputError("invalid --network: a name is required", field="--network")
    # Any other name is a cluster network (an attachable overlay): the agent asks the
    # manager for an address on it, or answers that there is no such network.
    cluster_networks = [] if network in modes else [network]
    spec = types_pb2.ContainerSpec(
        image=image,
        env=parse_env(env),
        dir=workdir,
        user=user,
        hostname=hostname,
        mounts=[parse_volume(v) for v in volume],
        tty=tty,
        open_stdin=interactive,
        read_only=read_only,
    )
    entrypoint_set = entrypoint is not None
    if entrypoint:
        spec.command.append(entrypoint)
    spec.args.extend(command)
    if pids_limit < 0:
        raise CliInputError("invalid --pids-limit: must be positive", field="--pids-limit")
    limits = types_pb2.Resources(
        memory_bytes=parse_bytes(memory, "-m, --memory") if memory else 0,
        nano_cpus=parse_cpus(cpus) if cpus else 0,
        pids=pids_limit,
    )
    return agent_pb2.CreateContainerRequest(
        name=name,
        image=image,
        spec=spec,
        limits=limits,
        ports=[parse_publish(p) for p in publish],
        network_mode=modes.get(network, 0),  # type: ignore[arg-type]
        networks=cluster_networks,
        auto_remove=rm,
        user_namespace=userns,
        entrypoint_set=entrypoint_set,
    )


def attach_stream(stub: Any, container_id: str, *, interactive: bool, tty_mode: bool) -> int:
    from pyswarm.cli.streams import run_stream

    return run_stream(
        stub.Attach,
        agent_pb2.AttachInput(id=container_id),
        agent_pb2.AttachInput,
        interactive=interactive,
        tty_mode=tty_mode,
    )
