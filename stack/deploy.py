"""`stack deploy`: make the cluster match a compose project, touching only what changed.

Everything is converted and checked before the first change (a bad file creates
nothing); external objects must exist; networks are created, then services in
depends_on order (beyond Swarm, which ignores it: a service is created or updated once
the services it depends on run their replicas, healthy where a healthcheck gates
RUNNING); an unchanged service is not updated (no new tasks); `--prune` removes the
stack's services the file no longer has. Through the Control API, as the docker CLI
deploys stacks through the engine API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pyswarm.common.errors import NotFound
from pyswarm.proto import control_pb2, types_pb2
from pyswarm.stack.compose.loader import ComposeProject
from pyswarm.stack.compose.references import DEFAULT_NETWORK
from pyswarm.stack.convert import network_spec, service_spec
from pyswarm.stack.errors import ComposeError
from pyswarm.stack.file_objects import FileObject, apply_objects, check_external, wanted_objects
from pyswarm.stack.inventory import stack_services
from pyswarm.stack.names import NAMESPACE_LABEL, Namer


class ResolveImage(StrEnum):
    always = "always"
    changed = "changed"
    never = "never"


@dataclass
class DeployOptions:
    prune: bool = False
    resolve_image: ResolveImage = ResolveImage.changed
    registry_auth: Callable[[str], types_pb2.RegistryAuth] | None = None  # --with-registry-auth
    wait_for: Callable[[list[str], str], None] | None = None  # None: --detach


@dataclass
class DeployPlan:
    """What a deploy will do, decided before it does anything."""

    networks: list[types_pb2.NetworkSpec] = field(default_factory=list)
    files: list[FileObject] = field(default_factory=list)  # secrets and configs
    order: list[str] = field(default_factory=list)  # compose service names, dependencies first
    specs: dict[str, types_pb2.ServiceSpec] = field(default_factory=dict)
    prune: list[types_pb2.Service] = field(default_factory=list)


def start_order(project: ComposeProject) -> list[str]:
    """Services with their dependencies first (the loader refused cycles)."""
    done: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        for dependency in project.services[name].get("depends_on", {}):
            visit(dependency)
        done.append(name)

    for name in sorted(project.services):
        visit(name)
    return done


def _used_networks(project: ComposeProject) -> set[str]:
    used: set[str] = set()
    for service in project.services.values():
        used.update(service.get("networks") or {DEFAULT_NETWORK: {}})
    return used


def plan(stub: Any, project: ComposeProject, stack: str, prune: bool) -> DeployPlan:
    namer = Namer(stack)
    defined = dict(project.document.get("networks", {}))
    result = DeployPlan()
    existing = {n.spec.annotations.name for n in stub.ListNetworks(
        control_pb2.ListNetworksRequest()).networks}  # fmt: skip
    missing: list[str] = []
    for key in sorted(_used_networks(project)):
        item = defined.get(key, {})
        name = namer.object_name(key, item)
        if item.get("external"):
            if name not in existing:
                missing.append(f'network "{name}" is declared as external, but could not be found')
            continue
        if name not in existing:
            result.networks.append(network_spec(key, item, namer))
    if missing:
        raise NotFound("; ".join(missing), field="networks")
    result.files, external = wanted_objects(project, namer)
    check_external(stub, external)
    result.order = start_order(project)
    result.specs = {name: service_spec(name, project, namer) for name in result.order}
    if prune:
        wanted = {spec.annotations.name for spec in result.specs.values()}
        result.prune = [
            s for s in stack_services(stub, stack) if s.spec.annotations.name not in wanted
        ]
    return result


def _comparable(
    desired: types_pb2.ServiceSpec, current: types_pb2.Service, network_ids: dict[str, str],
    resolve: ResolveImage,
) -> types_pb2.ServiceSpec:  # fmt: skip
    """`desired` as the manager would store it, to compare with what it stores: network
    names become ids, the image keeps its pinned digest (unless --resolve-image always),
    credentials and --force counters are the stored ones."""
    spec = types_pb2.ServiceSpec()
    spec.CopyFrom(desired)
    for config in spec.task.networks:
        config.target = network_ids.get(config.target, config.target)
    stored = current.spec.task.container
    image = spec.task.container.image
    if resolve != ResolveImage.always and stored.image.startswith(image + "@"):
        spec.task.container.image = stored.image
    if stored.HasField("registry_auth"):
        spec.task.container.registry_auth.CopyFrom(stored.registry_auth)
    else:
        spec.task.container.ClearField("registry_auth")
    spec.task.force_update = current.spec.task.force_update
    stored_ids = {r.secret_name: r.secret_id for r in stored.secrets}
    for secret in spec.task.container.secrets:
        secret.secret_id = stored_ids.get(secret.secret_name, "")
    config_ids = {r.config_name: r.config_id for r in stored.configs}
    for reference in spec.task.container.configs:
        reference.config_id = config_ids.get(reference.config_name, "")
    return spec


def deploy(
    stub: Any, project: ComposeProject, stack: str, options: DeployOptions,
    say: Callable[[str], None],
) -> list[str]:  # fmt: skip
    """Apply the project; the ids of the services created or updated."""
    if not project.services:
        raise ComposeError("no services to deploy", field="services")
    chosen = plan(stub, project, stack, options.prune)
    apply_objects(stub, chosen.files, say)
    for network in chosen.networks:
        say(f"Creating network {network.annotations.name}")
        stub.CreateNetwork(control_pb2.CreateNetworkRequest(spec=network))
    networks = stub.ListNetworks(control_pb2.ListNetworksRequest()).networks
    network_ids = {n.spec.annotations.name: n.id for n in networks}
    current = {s.spec.annotations.name: s for s in stack_services(stub, stack)}
    touched: list[str] = []
    for name in chosen.order:
        spec = chosen.specs[name]
        dependencies = [
            chosen.specs[d].annotations.name for d in project.services[name].get("depends_on", {})
        ]
        if dependencies and options.wait_for is not None:
            options.wait_for([current_id(stub, d) for d in dependencies], name)
        auth = types_pb2.RegistryAuth()
        if options.registry_auth is not None:
            auth = options.registry_auth(spec.task.container.image)
            spec.task.container.registry_auth.CopyFrom(auth)
        found = current.get(spec.annotations.name)
        if found is None:
            say(f"Creating service {spec.annotations.name}")
            created = stub.CreateService(control_pb2.CreateServiceRequest(
                spec=spec, no_resolve_image=options.resolve_image == ResolveImage.never,
                registry_auth=auth))  # fmt: skip
            touched.append(created.id)
            continue
        if _comparable(spec, found, network_ids, options.resolve_image) == found.spec:
            continue
        say(f"Updating service {spec.annotations.name} (id: {found.id})")
        image_same = found.spec.task.container.image.startswith(spec.task.container.image + "@")
        no_resolve = options.resolve_image == ResolveImage.never or (
            options.resolve_image == ResolveImage.changed and image_same
        )
        if image_same and options.resolve_image != ResolveImage.always:
            spec.task.container.image = found.spec.task.container.image
        updated = stub.UpdateService(control_pb2.UpdateServiceRequest(
            service_id=found.id, version=found.meta.version, spec=spec,
            no_resolve_image=no_resolve, registry_auth=auth))  # fmt: skip
        touched.append(updated.id)
    for service in chosen.prune:
        say(f"Removing service {service.spec.annotations.name}")
        stub.RemoveService(control_pb2.RemoveServiceRequest(service_id=service.id))
    return touched


def current_id(stub: Any, name: str) -> str:
    service = stub.GetService(control_pb2.GetServiceRequest(service_id=name))
    return str(service.id)


__all__ = ["NAMESPACE_LABEL", "DeployOptions", "ResolveImage", "deploy", "plan", "start_order"]
