"""Control: services. Create, inspect, list (with running/desired counts), update with
optimistic concurrency, scale atomically, remove.

A stale UpdateService (its version is not the service's meta.version) changes nothing
and answers FAILED_PRECONDITION "update out of sequence ... retry". ScaleService
re-reads and retries on its own (update_with_retry), so two concurrent scales are both
applied in some order, never lost. Names are unique, kept so by the store's name
index (ALREADY_EXISTS "name conflicts with an existing object"); a service cannot be
renamed.

An update that changes the tasks (or a rollback) is recorded as UPDATING (or
ROLLBACK_STARTED) in the service's UpdateStatus, which the rolling updater carries on;
any update of a paused service resumes it.

Images are pinned to their registry's digest on create and when an update changes
them (unless the request says `no_resolve_image`); registry passwords never leave
the manager in an answer (images.py).
"""

from __future__ import annotations

from pyswarm.common.errors import FailedPrecondition, InvalidArgument
from pyswarm.manager.ca import new_id
from pyswarm.manager.controlapi.base import Context, ControlBase, resolve
from pyswarm.manager.controlapi.images import (
    keep_registry_auth,
    pin_image,
    redact_service,
)
from pyswarm.manager.controlapi.list_filters import (
    SERVICE_KEYS,
    filter_services,
    parse_filters,
)
from pyswarm.manager.controlapi.validation import MAX_REPLICAS, validate_service_spec
from pyswarm.manager.network.usage import check_published_ports, resolve_targets
from pyswarm.manager.orchestrator.restart_policy import is_job
from pyswarm.manager.orchestrator.update_status import after_spec_change
from pyswarm.manager.scheduler import global_desired
from pyswarm.manager.scheduler.job_planning import job_progress
from pyswarm.manager.secrets.references import resolve_references
from pyswarm.manager.store import (
    CONFIGS,
    NETWORKS,
    NODES,
    SECRETS,
    SERVICES,
    TASKS,
    Conflict,
    Store,
    name_owner,
    service_name,
)
from pyswarm.proto import control_pb2, types_pb2

Service = types_pb2.Service


def service_status(
    service: Service, tasks: list[types_pb2.Task], nodes: list[types_pb2.Node]
) -> control_pb2.ServiceStatus:
    """Running tasks (running and wanted) and desired tasks of one service (for a global
    one, a task per eligible node, also before they exist); for a job, of its current
    iteration, with the tasks that completed."""
    if is_job(service):
        progress = job_progress(service, tasks)
        return control_pb2.ServiceStatus(
            running_tasks=progress.running,
            desired_tasks=progress.desired,
            completed_tasks=progress.completed,
        )
    wanted = [task for task in tasks if task.desired_state <= types_pb2.RUNNING]
    running = sum(1 for task in wanted if task.status.state == types_pb2.RUNNING)
    if service.spec.WhichOneof("mode") == "replicated":
        desired = service.spec.replicated.replicas
    else:
        desired = global_desired(service, nodes, wanted)
    return control_pb2.ServiceStatus(running_tasks=running, desired_tasks=desired)


class ServicesAPI(ControlBase):
    #: Registries the manager may resolve digests from over plain http (besides loopback).
    insecure_registries: tuple[str, ...] = ()

    def find_service(self, reference: str) -> Service:
        return resolve(
            self.readable().list(SERVICES),
            reference,
            what="service",
            ident=lambda s: s.id,
            names=lambda s: (s.spec.annotations.name,),
        )

    async def CreateService(
        self, request: control_pb2.CreateServiceRequest, context: Context
    ) -> Service:
        self.authorize(context)
        validate_service_spec(request.spec)
        service = Service(id=new_id())
        service.spec.CopyFrom(request.spec)
        if is_job(service):
            service.job_status.last_execution.GetCurrentTime()
        self._check_networks(service.spec, service.id)
        warnings: list[str] = []
        if not request.no_resolve_image:
            warnings = await pin_image(
                service.spec, request.registry_auth, self.insecure_registries
            )
        # The store reserves the name in the creating transaction: of racing creates
        # of one name exactly one commits, the others get NameConflict.
        await self.store.create(SERVICES, service, name=service_name(service))
        await self.written(service.meta.version)
        answer = redact_service(service)
        answer.warnings.extend(warnings)
        return answer

    def _check_networks(self, spec: types_pb2.ServiceSpec, service_id: str) -> None:
        """Network targets, secrets and configs become ids (NOT_FOUND naming an unknown
        one); a port another service publishes is refused, naming it."""
        cache = self.readable()
        resolve_targets(spec, cache.list(NETWORKS))
        resolve_references(spec, cache.list(SECRETS), cache.list(CONFIGS))
        check_published_ports(spec, service_id, cache.list(SERVICES))

    async def GetService(self, request: control_pb2.GetServiceRequest, context: Context) -> Service:
        self.authorize(context)
        return redact_service(self.find_service(request.service_id))

    async def ListServices(
        self, request: control_pb2.ListServicesRequest, context: Context
    ) -> control_pb2.ListServicesResponse:
        self.authorize(context)
        filters = parse_filters(request.filters, SERVICE_KEYS)
        cache = self.readable()
        services = filter_services(cache.list(SERVICES), filters)
        wanted = {s.id for s in services}
        by_service: dict[str, list[types_pb2.Task]] = {}
        for task in cache.view(TASKS):  # read only: counted, never returned
            if task.service_id in wanted:
                by_service.setdefault(task.service_id, []).append(task)
        nodes = cache.view(NODES)  # read only: counted for global services
        return control_pb2.ListServicesResponse(
            services=[redact_service(s) for s in services],
            statuses=[service_status(s, by_service.get(s.id, []), nodes) for s in services],
        )

    async def UpdateService(
        self, request: control_pb2.UpdateServiceRequest, context: Context
    ) -> Service:
        self.authorize(context)
        current = self.find_service(request.service_id)
        if request.rollback:
            if not current.HasField("previous_spec"):
                raise FailedPrecondition(
                    f"service {current.spec.annotations.name} has no previous spec to roll back to"
                )
            spec = current.previous_spec
        else:
            spec = types_pb2.ServiceSpec()
            spec.CopyFrom(request.spec)
            keep_registry_auth(spec, current.spec)
        validate_service_spec(spec)
        self._check_networks(spec, current.id)
        if spec.WhichOneof("mode") != current.spec.WhichOneof("mode"):
            raise InvalidArgument("a service's mode cannot change", field="mode")
        if spec.annotations.name != current.spec.annotations.name:
            raise InvalidArgument("a service cannot be renamed", field="name")
        if request.version and request.version != current.meta.version:
            raise Conflict(SERVICES.name, current.id)
        if not request.version and not request.rollback:
            raise InvalidArgument("the version read is required", field="version")
        warnings: list[str] = []
        image_changed = spec.task.container.image != current.spec.task.container.image
        if image_changed and not request.rollback and not request.no_resolve_image:
            warnings = await pin_image(spec, request.registry_auth, self.insecure_registries)
        updated = Service()
        updated.CopyFrom(current)
        updated.previous_spec.CopyFrom(current.spec)
        updated.spec.CopyFrom(spec)
        if is_job(updated):
            # A job has no rolling update: every update runs it again (Swarm's JobIteration).
            updated.job_status.job_iteration += 1
            updated.job_status.last_execution.GetCurrentTime()
        else:
            after_spec_change(updated, current.spec, rollback=request.rollback)
        await self.store.update(SERVICES, updated)
        await self.written(updated.meta.version)
        answer = redact_service(updated)
        answer.warnings.extend(warnings)
        return answer

    async def ScaleService(
        self, request: control_pb2.ScaleServiceRequest, context: Context
    ) -> Service:
        self.authorize(context)
        found = self.find_service(request.service_id)
        if found.spec.WhichOneof("mode") != "replicated":
            mode = (found.spec.WhichOneof("mode") or "replicated").replace("_", " ")
            raise FailedPrecondition(
                f"service {found.spec.annotations.name} is {mode}: it cannot be scaled"
                " (scale works on replicated services; a job's completions change with"
                " service update --replicas)"
            )
        if request.replicas > MAX_REPLICAS:
            raise InvalidArgument(f"replicas must be at most {MAX_REPLICAS}", field="replicas")

        def scale(service: Service) -> bool:
            if service.spec.replicated.replicas == request.replicas:
                return False
            service.spec.replicated.replicas = request.replicas
            return True

        service = await self.store.update_with_retry(SERVICES, found.id, scale)
        await self.written(service.meta.version)
        return redact_service(service)

    async def RemoveService(
        self, request: control_pb2.RemoveServiceRequest, context: Context
    ) -> control_pb2.RemoveServiceResponse:
        self.authorize(context)
        found = self.find_service(request.service_id)
        # Its tasks are the reaper's: desired REMOVE, deleted once their agents confirm.
        await self.written(await remove_named(self.store, found.id))
        return control_pb2.RemoveServiceResponse()


async def remove_named(store: Store, service_id: str, *, attempts: int = 10) -> int:
    """Delete the service and release its name in one transaction; the revision.
    Re-reads and retries when the service changed in between."""
    for attempt in range(attempts):
        service = await store.get(SERVICES, service_id)
        name = service_name(service)
        # A service of an old store may not hold its name (another one took it first).
        held = name and await name_owner(store, SERVICES, name) == service.id
        try:
            return await store.delete(
                SERVICES, service.id, service.meta.version, name=name if held else ""
            )
        except Conflict:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
