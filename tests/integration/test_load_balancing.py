"""The NetworkView glue for real: views fed to LoadBalancing reach a container's VIP
rules, and the VIP's backends follow each new view (namespaces from mesh_topology.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import pytest

from pyswarm.agent.cluster.load_balancing import LoadBalancing
from pyswarm.agent.cluster.mesh_plan import ContainerEndpoints
from pyswarm.agent.cluster.network_view import NetworkViewHolder
from pyswarm.proto import dispatcher_pb2
from tests.harness.mesh_topology import ECHO_PORT, Topology, ask, backend_addr, topology
from tests.waiting import eventually

VIP = "10.255.0.200"


@pytest.fixture
def net() -> Iterator[Topology]:
    with topology(hosts=2, backends={1: 1, 2: 2, 3: 2}) as made:
        yield made


class OneContainer:
    """c1, on the network "app" by its eth1."""

    def __init__(self, net: Topology) -> None:
        self.endpoint = ContainerEndpoints("c1", str(net.path("c1")), {"app": "eth1"})

    def container_endpoints(self) -> Sequence[ContainerEndpoints]:
        return [self.endpoint]


def _view(version: int, *backends: int) -> dispatcher_pb2.NetworkView:
    view = dispatcher_pb2.NetworkView(version=version)
    view.networks.add(id="app", vni=4097)
    record = view.services.add(service_id="web", network_id="app", vip=f"{VIP}/24")
    for k in backends:
        record.backends.add(task_id=f"t{k}", address=backend_addr(k))
    return view


def test_vip_backends_follow_each_view(net: Topology) -> None:
    def answers() -> set[str]:
        return {ask(net, "c1", VIP, ECHO_PORT)[0] for _ in range(30)}

    async def scenario() -> None:
        views = NetworkViewHolder()
        balancing = LoadBalancing(
            views, OneContainer(net), chain_prefix="unused", state_dir=None, host_mesh=False
        )
        async with asyncio.TaskGroup() as group:
            group.create_task(balancing.run())
            try:
                await views.update(_view(1, 1, 2, 3))
                await eventually(lambda: balancing.applied_version == 1, what="view 1")
                assert await asyncio.to_thread(answers) == {"b1", "b2", "b3"}
                await views.update(_view(2, 2))
                await eventually(lambda: balancing.applied_version == 2, what="view 2")
                assert await asyncio.to_thread(answers) == {"b2"}
                await views.update(_view(3))
                await eventually(lambda: balancing.applied_version == 3, what="view 3")
                with pytest.raises(ConnectionRefusedError):
                    await asyncio.to_thread(ask, net, "c1", VIP, ECHO_PORT)
            finally:
                balancing.stop()

    asyncio.run(scenario())
