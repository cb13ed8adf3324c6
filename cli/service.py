"""`pyswarm service ...`: services across the cluster, through the manager."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from pyswarm.cli.errors import apply_each, expect_failure_code
from pyswarm.cli.output import Format, print_json, print_json_lines, print_table
from pyswarm.cli.parse import CliInputError, parse_filters
from pyswarm.cli.service_container import (
    ArgsOption,
    CapAddOption,
    CapDropOption,
    ContainerLabelAddOption,
    ContainerLabelOption,
    ContainerLabelRmOption,
    DnsAddOption,
    DnsOption,
    DnsOptionAddOption,
    DnsOptionOption,
    DnsOptionRmOption,
    DnsRmOption,
    DnsSearchAddOption,
    DnsSearchOption,
    DnsSearchRmOption,
    EntrypointOption,
    EnvFileOption,
    EnvRmOption,
    GroupAddOption,
    GroupOption,
    GroupRmOption,
    HealthCmdOption,
    HealthIntervalOption,
    HealthRetriesOption,
    HealthStartOption,
    HealthTimeoutOption,
    HostAddOption,
    HostnameOption,
    HostOption,
    HostRmOption,
    InitOption,
    InitSwitch,
    NoHealthcheckOption,
    QuietOption,
    ReadOnlyOption,
    ReadOnlySwitch,
    StopGraceOption,
    StopSignalOption,
    SysctlAddOption,
    SysctlOption,
    SysctlRmOption,
    TtyOption,
    TtySwitch,
    UlimitAddOption,
    UlimitOption,
    UlimitRmOption,
    UserOption,
    WorkdirOption,
    apply_container_flags,
    apply_container_updates,
)
from pyswarm.cli.service_files import (
    ConfigAddOption,
    ConfigOption,
    ConfigRmOption,
    SecretAddOption,
    SecretOption,
    SecretRmOption,
    apply_create_files,
    apply_file_changes,
)
from pyswarm.cli.service_inspect import print_pretty
from pyswarm.cli.service_mounts import (
    MountAddOption,
    MountOption,
    MountRmOption,
    apply_create_mounts,
    apply_mount_changes,
)
from pyswarm.cli.service_network import (
    EndpointModeOption,
    NetworkAddOption,
    NetworkOption,
    NetworkRmOption,
    PublishAddOption,
    PublishRmOption,
    apply_create_networks,
    apply_network_changes,
    apply_publish_changes,
)
from pyswarm.cli.service_orchestration import (
    ConstraintAddOption,
    ConstraintRmOption,
    GenericResourceAddOption,
    GenericResourceOption,
    GenericResourceRmOption,
    LabelAddOption,
    LabelRmOption,
    LimitCpuOption,
    LimitMemoryOption,
    LimitPidsOption,
    MaxConcurrentOption,
    OrchestrationFlags,
    PlacementPrefAddOption,
    PlacementPrefOption,
    PlacementPrefRmOption,
    ReplicasMaxPerNodeOption,
    ReserveCpuOption,
    ReserveMemoryOption,
    RestartConditionOption,
    RestartDelayOption,
    RestartMaxAttemptsOption,
    RestartWindowOption,
    apply_orchestration,
    converge_service,
    mode_name,
    replicas_cell,
    set_replicas,
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
    converge,
    pacing_flags,
)
from pyswarm.cli.task_rows import print_tasks, shown_image, task_rows
from pyswarm.common.manager_client import control
from pyswarm.proto import control_pb2, types_pb2

app = typer.Typer(help="Manage services across the cluster.", no_args_is_help=True)
PASSTHROUGH = {"allow_interspersed_args": False}


def _mode(service: types_pb2.Service) -> str:
    return mode_name(service)


def _ports(service: types_pb2.Service) -> str:
    parts = []
    for p in service.spec.endpoint.ports:
        proto = "udp" if p.protocol == types_pb2.PortConfig.UDP else "tcp"
        parts.append(f"*:{p.published_port}->{p.target_port}/{proto}")
    return ", ".join(parts)


NoResolveImage = Annotated[
    bool, typer.Option("--no-resolve-image", help="Do not pin the image to a digest")
]
WithRegistryAuth = Annotated[
    bool, typer.Option("--with-registry-auth", help="Send registry credentials to agents")
]


@app.command("create", context_settings=PASSTHROUGH)
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
    auth = _send_auth(spec, image, no_resolve_image, with_registry_auth)
    stub = control()
    service = stub.CreateService(
        control_pb2.CreateServiceRequest(
            spec=spec, no_resolve_image=no_resolve_image, registry_auth=auth
        )
    )
    _print_warnings(service)
    print(service.id)
    if not detach:
        converge_service(stub, spec, [service.id], quiet=quiet)


def _send_auth(
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


def _print_warnings(service: types_pb2.Service) -> None:
    for warning in service.warnings:
        print(warning, file=sys.stderr)


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


@app.command("update")
def update(
    service: str,
    replicas: Annotated[int | None, typer.Option("--replicas")] = None,
    image: Annotated[str | None, typer.Option("--image")] = None,
    env_add: Annotated[list[str] | None, typer.Option("--env-add")] = None,
    max_concurrent: MaxConcurrentOption = None,
    restart_condition: RestartConditionOption = None,
    restart_delay: RestartDelayOption = None,
    restart_max_attempts: RestartMaxAttemptsOption = None,
    restart_window: RestartWindowOption = None,
    limit_cpu: LimitCpuOption = None,
    limit_memory: LimitMemoryOption = None,
    limit_pids: LimitPidsOption = None,
    reserve_cpu: ReserveCpuOption = None,
    reserve_memory: ReserveMemoryOption = None,
    generic_resource_add: GenericResourceAddOption = None,
    generic_resource_rm: GenericResourceRmOption = None,
    placement_pref_add: PlacementPrefAddOption = None,
    placement_pref_rm: PlacementPrefRmOption = None,
    constraint_add: ConstraintAddOption = None,
    constraint_rm: ConstraintRmOption = None,
    label_add: LabelAddOption = None,
    label_rm: LabelRmOption = None,
    replicas_max_per_node: ReplicasMaxPerNodeOption = None,
    network_add: NetworkAddOption = None,
    network_rm: NetworkRmOption = None,
    publish_add: PublishAddOption = None,
    publish_rm: PublishRmOption = None,
    secret_add: SecretAddOption = None,
    secret_rm: SecretRmOption = None,
    config_add: ConfigAddOption = None,
    config_rm: ConfigRmOption = None,
    mount_add: MountAddOption = None,
    mount_rm: MountRmOption = None,
    rollback: Annotated[bool, typer.Option("--rollback")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Force update even if no changes require it")
    ] = False,
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
    env_rm: EnvRmOption = None,
    container_label_add: ContainerLabelAddOption = None,
    container_label_rm: ContainerLabelRmOption = None,
    entrypoint: EntrypointOption = None,
    args: ArgsOption = None,
    init: InitSwitch = None,
    read_only: ReadOnlySwitch = None,
    tty: TtySwitch = None,
    cap_add: CapAddOption = None,
    cap_drop: CapDropOption = None,
    sysctl_add: SysctlAddOption = None,
    sysctl_rm: SysctlRmOption = None,
    ulimit_add: UlimitAddOption = None,
    ulimit_rm: UlimitRmOption = None,
    dns_add: DnsAddOption = None,
    dns_rm: DnsRmOption = None,
    dns_search_add: DnsSearchAddOption = None,
    dns_search_rm: DnsSearchRmOption = None,
    dns_option_add: DnsOptionAddOption = None,
    dns_option_rm: DnsOptionRmOption = None,
    host_add: HostAddOption = None,
    host_rm: HostRmOption = None,
    group_add: GroupAddOption = None,
    group_rm: GroupRmOption = None,
    hostname: HostnameOption = None,
    user: UserOption = None,
    workdir: WorkdirOption = None,
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
    """Update a service's spec (a new version; the old one is kept for rollback).

    The tasks are replaced at the pace of the service's update config (its rollback
    config with --rollback); a paused update resumes."""
    pacing = pacing_flags(
        (update_parallelism, update_delay, update_failure_action, update_monitor,
         update_max_failure_ratio, update_order),
        (rollback_parallelism, rollback_delay, rollback_failure_action, rollback_monitor,
         rollback_max_failure_ratio, rollback_order),
    )  # fmt: skip
    for flags in pacing:  # every flag checked before anything is asked or changed
        apply_update_flags(types_pb2.UpdateConfig(), flags)
    stub = control()
    current = stub.GetService(control_pb2.GetServiceRequest(service_id=service))
    spec = types_pb2.ServiceSpec()
    spec.CopyFrom(current.spec)
    set_replicas(spec, replicas)
    if image is not None:
        spec.task.container.image = image
    apply_container_updates(spec.task.container, locals())
    if network_add or network_rm:
        names = stub.ListNetworks(control_pb2.ListNetworksRequest()).networks
        resolve = {n.spec.annotations.name: n.id for n in names}
        apply_network_changes(spec, current, network_add or [], network_rm or [], resolve)
    apply_publish_changes(spec, publish_add or [], publish_rm or [])
    apply_file_changes(spec, secret_add or [], secret_rm or [], config_add or [], config_rm or [])
    apply_mount_changes(spec, mount_add or [], mount_rm or [])
    apply_orchestration(spec, OrchestrationFlags(
        max_concurrent=max_concurrent, restart_condition=restart_condition,
        restart_delay=restart_delay, restart_max_attempts=restart_max_attempts,
        restart_window=restart_window, limit_pids=limit_pids, limit_cpu=limit_cpu,
        limit_memory=limit_memory, reserve_cpu=reserve_cpu, reserve_memory=reserve_memory,
        generic_resources=generic_resource_add or [],
        generic_resource_rm=generic_resource_rm or [],
        placement_prefs=placement_pref_add or [], placement_pref_rm=placement_pref_rm or [],
        constraint_add=constraint_add or [], constraint_rm=constraint_rm or [],
        label_add=label_add or [], label_rm=label_rm or [],
        replicas_max_per_node=replicas_max_per_node,
    ), creating=False)  # fmt: skip
    for config, flags in zip((spec.update, spec.rollback), pacing, strict=True):
        apply_update_flags(config, flags)
    if force:
        spec.task.force_update += 1
    no_resolve = no_resolve_image or spec.task.container.image == current.spec.task.container.image
    auth = _send_auth(spec, spec.task.container.image, no_resolve, with_registry_auth)
    updated = stub.UpdateService(
        control_pb2.UpdateServiceRequest(
            service_id=current.id, version=current.meta.version, spec=spec, rollback=rollback,
            no_resolve_image=no_resolve_image, registry_auth=auth,
        )
    )  # fmt: skip
    _print_warnings(updated)
    print(updated.spec.annotations.name)
    if rollback and updated.update_status.message:
        print(f"rollback: {updated.update_status.message}", file=sys.stderr)
    if not detach:
        converge_service(
            stub, spec, [updated.id], update="rollback" if rollback else "update", quiet=quiet
        )


@app.command("rollback")
def rollback_(
    service: str, detach: Annotated[bool, typer.Option("-d", "--detach")] = False
) -> None:
    """Go back to the service's previous spec (at the pace of its rollback config)."""
    update(service, rollback=True, detach=detach)


@app.command("rm")
def rm(services: Annotated[list[str], typer.Argument()]) -> None:
    """Remove services (their tasks are shut down)."""
    stub = control()
    apply_each(
        services,
        lambda ref: stub.RemoveService(control_pb2.RemoveServiceRequest(service_id=ref)),
    )


from pyswarm.cli import service_logs  # noqa: E402, F401  (registers `service logs`)
