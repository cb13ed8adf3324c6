"""`pyswarm service create`: a service from docker's flags, then (unless -d) its convergence."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from pyswarm.cli.service_container import (
    CapAddOption,
    CapDropOption,
    ContainerLabelOption,
    DnsOption,
    DnsOptionOption,
    DnsSearchOption,
    EntrypointOption,
    EnvFileOption,
    GroupOption,
    HealthCmdOption,
    HealthIntervalOption,
    HealthRetriesOption,
    HealthStartOption,
    HealthTimeoutOption,
    HostOption,
    InitOption,
    NoHealthcheckOption,
    QuietOption,
    ReadOnlyOption,
    StopGraceOption,
    StopSignalOption,
    SysctlOption,
    TtyOption,
    UlimitOption,
    apply_container_flags,
)
from pyswarm.cli.service_files import ConfigOption, SecretOption, apply_create_files
from pyswarm.cli.service_mounts import MountOption, apply_create_mounts
from pyswarm.cli.service_network import EndpointModeOption, NetworkOption, apply_create_networks
from pyswarm.cli.service_orchestration import (
    GenericResourceOption,
    LimitPidsOption,
    MaxConcurrentOption,
    OrchestrationFlags,
    PlacementPrefOption,
    RestartConditionOption,
    RestartDelayOption,
    RestartMaxAttemptsOption,
    RestartWindowOption,
    apply_orchestration,
    converge_service,
)
from pyswarm.cli.service_spec import (
    apply_update_flags,
    build_service_spec,
    docker_update_defaults,
    registry_auth_for,
)
from pyswarm.cli.service_update import (
    RollbackDelay,
    RollbackFailureAction,
    RollbackMaxFailureRatio,
    RollbackMonitor,
    RollbackOrder,
    RollbackParallelism,
    UpdateDelay,
    UpdateFailureAction,
    UpdateMaxFailureRatio,
    UpdateMonitor,
    UpdateOrder,
    UpdateParallelism,
    pacing_flags,
)
from pyswarm.common.manager_client import control
from pyswarm.proto import control_pb2, types_pb2

NoResolveImage = Annotated[
    bool, typer.Option("--no-resolve-image", help="Do not pin the image to a digest")
]
WithRegistryAuth = Annotated[
    bool, typer.Option("--with-registry-auth", help="Send registry credentials to agents")
]


def create(
    image: Annotated[str, typer.Argument()],
    command: Annotated[list[str] | None, typer.Argument()] = None,
    name: Annotated[str, typer.Option("--name")] = "",
    replicas: Annotated[int | None, typer.Option("--replicas")] = None,
    mode: Annotated[
        str, typer.Option("--mode", help="replicated, global, replicated-job or global-job")
    ] = "replicated",
    max_concurrent: MaxConcurrentOption = None,
    publish: Annotated[list[str] | None, typer.Option("-p", "--publish")] = None,
    env: Annotated[list[str] | None, typer.Option("-e", "--env")] = None,
    constraint: Annotated[list[str] | None, typer.Option("--constraint")] = None,
    reserve_cpu: Annotated[str, typer.Option("--reserve-cpu")] = "",
    reserve_memory: Annotated[str, typer.Option("--reserve-memory")] = "",
    limit_cpu: Annotated[str, typer.Option("--limit-cpu")] = "",
    limit_memory: Annotated[str, typer.Option("--limit-memory")] = "",
    max_replicas: Annotated[int, typer.Option("--replicas-max-per-node", "--max-replicas")] = 0,
    restart_condition: RestartConditionOption = None,
    restart_delay: RestartDelayOption = None,
    restart_max_attempts: RestartMaxAttemptsOption = None,
    restart_window: RestartWindowOption = None,
    limit_pids: LimitPidsOption = None,
    placement_pref: PlacementPrefOption = None,
    generic_resource: GenericResourceOption = None,
    hostname: Annotated[str, typer.Option("--hostname")] = "",
    workdir: Annotated[str, typer.Option("-w", "--workdir")] = "",
    user: Annotated[str, typer.Option("-u", "--user")] = "",
    label: Annotated[list[str] | None, typer.Option("-l", "--label")] = None,
    mount: MountOption = None,
    network: NetworkOption = None,
    secrets: SecretOption = None,
    configs: ConfigOption = None,
    endpoint_mode: EndpointModeOption = "vip",
    no_resolve_image: NoResolveImage = False,
    with_registry_auth: WithRegistryAuth = False,
    detach: Annotated[bool, typer.Option("-d", "--detach")] = False,
    update_parallelism: UpdateParallelism = None,
    update_delay: UpdateDelay = None,
    update_failure_action: UpdateFailureAction = None,
    update_monitor: UpdateMonitor = None,
    update_max_failure_ratio: UpdateMaxFailureRatio = None,
    update_order: UpdateOrder = None,
    rollback_parallelism: RollbackParallelism = None,
    rollback_delay: RollbackDelay = None,
    rollback_failure_action: RollbackFailureAction = None,
    rollback_monitor: RollbackMonitor = None,
    rollback_max_failure_ratio: RollbackMaxFailureRatio = None,
    rollback_order: RollbackOrder = None,
    env_file: EnvFileOption = None,
    container_label: ContainerLabelOption = None,
    entrypoint: EntrypointOption = None,
    init: InitOption = False,
    read_only: ReadOnlyOption = False,
    tty: TtyOption = False,
    cap_add: CapAddOption = None,
    cap_drop: CapDropOption = None,
    sysctl: SysctlOption = None,
    ulimit: UlimitOption = None,
    dns: DnsOption = None,
    dns_search: DnsSearchOption = None,
    dns_option: DnsOptionOption = None,
    host: HostOption = None,
    group: GroupOption = None,
    stop_signal: StopSignalOption = None,
    stop_grace_period: StopGraceOption = None,
    health_cmd: HealthCmdOption = None,
    health_interval: HealthIntervalOption = None,
    health_timeout: HealthTimeoutOption = None,
    health_retries: HealthRetriesOption = None,
    health_start_period: HealthStartOption = None,
    no_healthcheck: NoHealthcheckOption = False,
    quiet: QuietOption = False,
) -> None:
    """Create a service."""
    pacing = pacing_flags(
        (update_parallelism, update_delay, update_failure_action, update_monitor,
         update_max_failure_ratio, update_order),
        (rollback_parallelism, rollback_delay, rollback_failure_action, rollback_monitor,
         rollback_max_failure_ratio, rollback_order),
    )  # fmt: skip
    spec = build_service_spec(
        name=name, image=image, args=command or [], replicas=replicas, mode=mode,
        publish=publish or [], env=env or [], constraint=constraint or [],
        reserve_cpu=reserve_cpu, reserve_memory=reserve_memory, limit_cpu=limit_cpu,
        limit_memory=limit_memory, max_replicas=max_replicas,
        restart_condition=restart_condition or "any", hostname=hostname, workdir=workdir, user=user,
        labels=label or [],
    )  # fmt: skip
    apply_container_flags(spec.task.container, locals())
    apply_create_networks(spec, network or [], endpoint_mode)
    apply_create_files(spec, secrets or [], configs or [])
    apply_create_mounts(spec, mount or [])
    apply_orchestration(spec, OrchestrationFlags(
        max_concurrent=max_concurrent, restart_condition=restart_condition,
        restart_delay=restart_delay, restart_max_attempts=restart_max_attempts,
        restart_window=restart_window, limit_pids=limit_pids,
        placement_prefs=placement_pref or [], generic_resources=generic_resource or [],
    ), creating=True)  # fmt: skip
    for config, flags in zip((spec.update, spec.rollback), pacing, strict=True):
        docker_update_defaults(config)
        apply_update_flags(config, flags)
    auth = send_auth(spec, image, no_resolve_image, with_registry_auth)
    stub = control()
    service = stub.CreateService(
        control_pb2.CreateServiceRequest(
            spec=spec, no_resolve_image=no_resolve_image, registry_auth=auth
        )
    )
    print_warnings(service)
    print(service.id)
    if not detach:
        converge_service(stub, spec, [service.id], quiet=quiet)


def send_auth(
    spec: types_pb2.ServiceSpec, image: str, no_resolve: bool, with_registry_auth: bool
) -> types_pb2.RegistryAuth:
    """The credentials the manager resolves `image` with (none when it will not), kept
    in `spec` for the agents too with --with-registry-auth."""
    if not with_registry_auth and no_resolve:
        return types_pb2.RegistryAuth()
    auth = registry_auth_for(image)
    if with_registry_auth:
        spec.task.container.registry_auth.CopyFrom(auth)
    return auth


def print_warnings(service: types_pb2.Service) -> None:
    for warning in service.warnings:
        print(warning, file=sys.stderr)
