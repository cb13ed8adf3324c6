"""The Control API (the CLI's): one servicer made of a part per resource.

`ControlService` implements control.proto; install `ErrorInterceptor` on its server so
the errors raised here become status codes (INVALID_ARGUMENT naming the field,
NOT_FOUND, FAILED_PRECONDITION, ALREADY_EXISTS, PERMISSION_DENIED, UNAVAILABLE).
"""

from __future__ import annotations

from collections.abc import Collection

from pyswarm.common.clock import SYSTEM_CLOCK, Clock
from pyswarm.manager.ca.roots import Authorities, authorities
from pyswarm.manager.controlapi.certificates import AuthoritiesProvider, CertificatesAPI
from pyswarm.manager.controlapi.cluster import ClusterAPI, LeaderProvider
from pyswarm.manager.controlapi.events import EventsAPI, SystemFacts
from pyswarm.manager.controlapi.logs import ServiceLogsAPI
from pyswarm.manager.controlapi.networks import NetworksAPI
from pyswarm.manager.controlapi.secrets import SecretsAPI
from pyswarm.manager.controlapi.tasks import TasksAPI
from pyswarm.manager.store import Cache, Store
from pyswarm.proto import control_pb2_grpc


class ControlService(
    EventsAPI,
    ServiceLogsAPI,
    TasksAPI,
    ClusterAPI,
    CertificatesAPI,
    NetworksAPI,
    SecretsAPI,
    control_pb2_grpc.ControlServicer,
):
    def __init__(
        self,
        *,
        store: Store,
        cache: Cache,
        cluster_id: str,
        leader: LeaderProvider,
        insecure_registries: Collection[str] = (),
        authorities: AuthoritiesProvider | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(store=store, cache=cache, cluster_id=cluster_id)
        self.leader = leader
        self.insecure_registries = tuple(insecure_registries)
        self.authorities = authorities or self._cluster_authorities
        self.clock = clock

    def _cluster_authorities(self) -> Authorities:
        """The roots of the cached cluster record (when no view was given)."""
        return authorities(self._cluster(), self.clock)


__all__ = ["ControlService", "SystemFacts"]
