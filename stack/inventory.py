"""What belongs to a stack, found by its namespace label: its services and networks
(secrets and configs too once the cluster stores them), listing and removal."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

from pyswarm.common.errors import NotFound
from pyswarm.proto import control_pb2, types_pb2
from pyswarm.stack.names import NAMESPACE_LABEL

# How often a network still used by a removed service's ending tasks is tried again.
RETRY_SECONDS = 0.2


def stack_services(stub: Any, stack: str) -> list[types_pb2.Service]:
    response = stub.ListServices(control_pb2.ListServicesRequest())
    return [s for s in response.services if s.spec.annotations.labels.get(NAMESPACE_LABEL) == stack]


def stack_statuses(
    stub: Any, stack: str
) -> list[tuple[types_pb2.Service, control_pb2.ServiceStatus]]:
    response = stub.ListServices(control_pb2.ListServicesRequest())
    return [
        (s, st) for s, st in zip(response.services, response.statuses, strict=True)
        if s.spec.annotations.labels.get(NAMESPACE_LABEL) == stack
    ]  # fmt: skip


def stack_networks(stub: Any, stack: str) -> list[types_pb2.Network]:
    networks = stub.ListNetworks(control_pb2.ListNetworksRequest()).networks
    return [n for n in networks if n.spec.annotations.labels.get(NAMESPACE_LABEL) == stack]


def _labelled(items: Any, stack: str) -> list[Any]:
    chosen = [i for i in items if i.spec.annotations.labels.get(NAMESPACE_LABEL) == stack]
    return sorted(chosen, key=lambda i: i.spec.annotations.name)


def list_stacks(stub: Any) -> dict[str, int]:
    """Stack name -> number of services, for `stack ls`."""
    counts: dict[str, int] = {}
    for service in stub.ListServices(control_pb2.ListServicesRequest()).services:
        stack = service.spec.annotations.labels.get(NAMESPACE_LABEL)
        if stack:
            counts[stack] = counts.get(stack, 0) + 1
    return dict(sorted(counts.items()))


def remove_stack(stub: Any, stack: str, say: Callable[[str], None], deadline: float) -> None:
    """Services first, then their secrets and configs, then networks once the removed
    services' tasks have left them (until `deadline`, a time.monotonic() value);
    volumes stay, as docker keeps them.
    NotFound when nothing carries the stack's label."""
    services = stack_services(stub, stack)
    networks = stack_networks(stub, stack)
    secrets = _labelled(stub.ListSecrets(control_pb2.ListSecretsRequest()).secrets, stack)
    configs = _labelled(stub.ListConfigs(control_pb2.ListConfigsRequest()).configs, stack)
    if not (services or networks or secrets or configs):
        raise NotFound(f"nothing found in stack: {stack}", field="stack")
    for service in sorted(services, key=lambda s: s.spec.annotations.name):
        say(f"Removing service {service.spec.annotations.name}")
        stub.RemoveService(control_pb2.RemoveServiceRequest(service_id=service.id))
    for secret in secrets:
        say(f"Removing secret {secret.spec.annotations.name}")
        secret_removal = control_pb2.RemoveSecretRequest(secret_id=secret.id)
        _remove_when_free(partial(stub.RemoveSecret, secret_removal), deadline)
    for config in configs:
        say(f"Removing config {config.spec.annotations.name}")
        config_removal = control_pb2.RemoveConfigRequest(config_id=config.id)
        _remove_when_free(partial(stub.RemoveConfig, config_removal), deadline)
    for network in sorted(networks, key=lambda n: n.spec.annotations.name):
        say(f"Removing network {network.spec.annotations.name}")
        network_removal = control_pb2.RemoveNetworkRequest(network_id=network.id)
        _remove_when_free(partial(stub.RemoveNetwork, network_removal), deadline)


def _remove_when_free(remove: Callable[[], object], deadline: float) -> None:
    """Removal is refused (FAILED_PRECONDITION) while the removed services' tasks still
    use the object; they end within their grace period."""
    import grpc

    while True:
        try:
            remove()
            return
        except grpc.RpcError as err:
            busy = err.code() == grpc.StatusCode.FAILED_PRECONDITION
            if not busy or time.monotonic() > deadline:
                raise
        time.sleep(RETRY_SECONDS)
