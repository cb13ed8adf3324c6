"""`pyswarm service update` and `rollback`: a new version of a service's spec from
docker's --*-add/--*-rm flags, then (unless -d) the rolling update's progress."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from pyswarm.cli.service_container import (
    ArgsOption,
    CapAddOption,
    CapDropOption,
    ContainerLabelAddOption,
    ContainerLabelRmOption,
    DnsAddOption,
    DnsOptionAddOption,
    DnsOptionRmOption,
    DnsRmOption,
    DnsSearchAddOption,
    DnsSearchRmOption,
    EntrypointOption,
    EnvRmOption,
    GroupAddOption,
    GroupRmOption,
    HealthCmdOption,
    HealthIntervalOption,
    HealthRetriesOption,
    HealthStartOption,
    HealthTimeoutOption,
    HostAddOption,
    HostnameOption,
    HostRmOption,
    InitSwitch,
    NoHealthcheckOption,
    QuietOption,
    ReadOnlySwitch,
    StopGraceOption,
    StopSignalOption,
    SysctlAddOption,
    SysctlRmOption,
    TtySwitch,
    UlimitAddOption,
    UlimitRmOption,
    UserOption,
    WorkdirOption,
    apply_container_updates,
)
from pyswarm.cli.service_create import NoResolveImage, WithRegistryAuth, print_warnings, send_auth
from pyswarm.cli.service_files import (
    ConfigAddOption,
    ConfigRmOption,
    SecretAddOption,
    SecretRmOption,
    apply_file_changes,
)
from pyswarm.cli.service_mounts import MountAddOption, MountRmOption, apply_mount_changes
from pyswarm.cli.service_network import (
    NetworkAddOption,
    NetworkRmOption,
    PublishAddOption,
    PublishRmOption,
    apply_network_changes,
    apply_publish_changes,
)
from pyswarm.cli.service_orchestration import (
    ConstraintAddOption,
    ConstraintRmOption,
    GenericResourceAddOption,
    GenericResourceRmOption,
    LabelAddOption,
    LabelRmOption,
    LimitCpuOption,
    LimitMemoryOption,
    LimitPidsOption,
    MaxConcurrentOption,
    OrchestrationFlags,
    PlacementPrefAddOption,
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
    set_replicas,
)
from pyswarm.cli.service_spec import apply_update_flags
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
    auth = send_auth(spec, spec.task.container.image, no_resolve, with_registry_auth)
    updated = stub.UpdateService(
        control_pb2.UpdateServiceRequest(
            service_id=current.id, version=current.meta.version, spec=spec, rollback=rollback,
            no_resolve_image=no_resolve_image, registry_auth=auth,
        )
    )  # fmt: skip
    print_warnings(updated)
    print(updated.spec.annotations.name)
    if rollback and updated.update_status.message:
        print(f"rollback: {updated.update_status.message}", file=sys.stderr)
    if not detach:
        converge_service(
            stub, spec, [updated.id], update="rollback" if rollback else "update", quiet=quiet
        )


def rollback_(
    service: str, detach: Annotated[bool, typer.Option("-d", "--detach")] = False
) -> None:
    """Go back to the service's previous spec (at the pace of its rollback config)."""
    update(service, rollback=True, detach=detach)
