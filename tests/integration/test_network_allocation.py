"""Networks through the real manager: create/inspect/remove, task and VIP addresses
reserved in etcd, pool exhaustion, and the NetworkView fake agents are sent."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import grpc

from pyswarm.manager.store import ADDRESSES, EmbeddedEtcd
from pyswarm.proto import control_pb2, types_pb2
from tests.harness.etcd import etcd_client
from tests.harness.fake_agent import FakeAgent
from tests.harness.manager import (
    RunningManager,
    expect_error,
    manager_config,
    replicated_spec,
    running_manager,
)
from tests.waiting import eventually

Scenario = Callable[[RunningManager, list[FakeAgent]], Awaitable[None]]


def run_cluster(tmp_path: Path, etcd: EmbeddedEtcd, scenario: Scenario, agents: int = 3) -> None:
    async def body() -> None:
        async with running_manager(manager_config(tmp_path / "manager", etcd)) as manager:
            fleet = [FakeAgent(f"node{i}", tmp_path / f"agent{i}") for i in range(agents)]
            try:
                for agent in fleet:
                    await agent.join(manager)
                    agent.start()
                await scenario(manager, fleet)
            finally:
                for agent in fleet:
                    await agent.stop()

    asyncio.run(body())


def network_spec(name: str, subnet: str = "") -> types_pb2.NetworkSpec:
    spec = types_pb2.NetworkSpec(driver="overlay")
    spec.annotations.name = name
    if subnet:
        spec.ipam.add(subnet=subnet)
    return spec


def on_network(name: str, replicas: int, network: str) -> types_pb2.ServiceSpec:
    spec = replicated_spec(name, replicas)
    spec.task.networks.add(target=network)
    return spec


async def reservations(etcd: EmbeddedEtcd) -> list[types_pb2.AddressReservation]:
    async with etcd_client(etcd) as client:
        result = await client.range_paged(ADDRESSES.prefix)
    return [types_pb2.AddressReservation.FromString(kv.value) for kv in result.kvs]


async def tasks_of(manager: RunningManager, service: str) -> list[types_pb2.Task]:
    async with manager.control() as control:
        listing = await control.ListTasks(
            control_pb2.ListTasksRequest(service_id=service), timeout=10
        )
    return [t for t in listing.tasks if t.desired_state <= types_pb2.RUNNING]


async def running_count(manager: RunningManager, service: str) -> int:
    return sum(t.status.state == types_pb2.RUNNING for t in await tasks_of(manager, service))


async def ingress_exists(manager: RunningManager) -> bool:
    async with manager.control() as control:
        listing = await control.ListNetworks(control_pb2.ListNetworksRequest(), timeout=10)
    return any(n.spec.ingress for n in listing.networks)


def test_network_lifecycle_addresses_vips_and_views(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario(manager: RunningManager, fleet: list[FakeAgent]) -> None:
        await eventually(lambda: ingress_exists(manager), what="the ingress network")
        async with manager.control() as control:
            front = await control.CreateNetwork(
                control_pb2.CreateNetworkRequest(spec=network_spec("front")), timeout=10
            )
            assert front.vni >= 4096 and front.ipam.subnet.endswith("/20")
            assert front.ipam.gateway == str(ipaddress.ip_network(front.ipam.subnet)[1])
            got = await control.GetNetwork(control_pb2.GetNetworkRequest(network_id="front"))
            assert got.id == front.id
            err = await expect_error(
                control.CreateNetwork(control_pb2.CreateNetworkRequest(spec=network_spec("front"))),
                grpc.StatusCode.ALREADY_EXISTS,
            )
            overlapping = network_spec("other", front.ipam.subnet.replace("/20", "/24"))
            err = await expect_error(
                control.CreateNetwork(control_pb2.CreateNetworkRequest(spec=overlapping)),
                grpc.StatusCode.INVALID_ARGUMENT,
            )
            assert "network front" in (err.details() or "")
            err = await expect_error(
                control.CreateNetwork(
                    control_pb2.CreateNetworkRequest(spec=network_spec("bad", "10.300.0.0/16"))
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
            )
            assert "subnet" in (err.details() or "")
            err = await expect_error(
                control.CreateService(
                    control_pb2.CreateServiceRequest(spec=on_network("x", 1, "nowhere"))
                ),
                grpc.StatusCode.NOT_FOUND,
            )
            assert "nowhere" in (err.details() or "")

            created = await control.CreateService(
                control_pb2.CreateServiceRequest(spec=on_network("web", 6, "front")), timeout=10
            )
            assert created.spec.task.networks[0].target == front.id

            await eventually(lambda: _running(manager, "web", 6), what="6/6 running")
            tasks = await tasks_of(manager, "web")
            addresses = [t.networks[0].addresses[0] for t in tasks]
            assert len(set(addresses)) == 6
            subnet = ipaddress.ip_network(front.ipam.subnet)
            assert all(ipaddress.ip_interface(a).ip in subnet for a in addresses)

            service = await control.GetService(control_pb2.GetServiceRequest(service_id="web"))
            vips = {v.network_id: v.addr for v in service.endpoint.virtual_ips}
            assert set(vips) == {front.id} and vips[front.id] not in addresses

            held = [r for r in await reservations(etcd) if r.network_id == front.id]
            held_addresses = Counter(r.address for r in held)
            assert all(n == 1 for n in held_addresses.values())
            for address in [*addresses, vips[front.id]]:
                assert address.partition("/")[0] in held_addresses

            err = await expect_error(
                control.RemoveNetwork(control_pb2.RemoveNetworkRequest(network_id="front")),
                grpc.StatusCode.FAILED_PRECONDITION,
            )
            assert "service web" in (err.details() or "")

            # Each agent is told of the network, of the tasks on the OTHER nodes (and its own
            # endpoint), and of
            # the service's record with all six backends.
            for agent in fleet:
                await eventually(
                    partial(_view_complete, agent, front.id, 6),
                    what=f"{agent.name}'s view",
                )
                view = agent.network_views[-1]
                peers = [p for p in view.peers if p.network_id == front.id and p.address]
                # Of its own, only the node's endpoint (its bridge's address), no task.
                assert len([p for p in peers if p.node_id == agent.node_id]) <= 1
                assert all(p.mac.startswith("02:42:") for p in peers)

            await control.ScaleService(
                control_pb2.ScaleServiceRequest(service_id="web", replicas=2), timeout=10
            )
            await eventually(lambda: _task_count(manager, "web", 2), what="2 tasks left")
            await eventually(
                lambda: _task_reservations(etcd, front.id, 2), what="addresses freed on scale-down"
            )
            for agent in fleet:
                await eventually(
                    partial(_view_complete, agent, front.id, 2),
                    what=f"{agent.name}'s view after scale-down",
                )

            await control.RemoveService(control_pb2.RemoveServiceRequest(service_id="web"))
            await eventually(lambda: _removable(manager, "front"), what="front removable")
            listing = await control.ListNetworks(control_pb2.ListNetworksRequest())
            assert "front" not in {n.spec.annotations.name for n in listing.networks}
            await eventually(
                lambda: _network_reservations_gone(etcd, front.id), what="front's keys gone"
            )

    run_cluster(tmp_path, etcd, scenario)


async def _running(manager: RunningManager, name: str, n: int) -> bool:
    return await running_count(manager, name) == n


async def _task_count(manager: RunningManager, name: str, n: int) -> bool:
    return len(await tasks_of(manager, name)) == n


async def _task_reservations(etcd: EmbeddedEtcd, network_id: str, n: int) -> bool:
    held = await reservations(etcd)
    return sum(r.network_id == network_id and r.owner_kind == "tasks" for r in held) == n


async def _network_reservations_gone(etcd: EmbeddedEtcd, network_id: str) -> bool:
    held = await reservations(etcd)
    return not any(network_id in (r.owner_id, r.network_id) for r in held)


async def _view_complete(agent: FakeAgent, network_id: str, backends: int) -> bool:
    if not agent.network_views:
        return False
    view = agent.network_views[-1]
    records = [r for r in view.services if r.network_id == network_id and r.name == "web"]
    return (
        any(n.id == network_id for n in view.networks)
        and len(records) == 1
        and len(records[0].backends) == backends
        and bool(records[0].vip)
    )


async def _removable(manager: RunningManager, name: str) -> bool:
    async with manager.control() as control:
        try:
            await control.RemoveNetwork(control_pb2.RemoveNetworkRequest(network_id=name))
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.FAILED_PRECONDITION:
                return False
            raise
    return True


def test_concurrent_scaling_never_hands_out_an_address_twice(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario(manager: RunningManager, fleet: list[FakeAgent]) -> None:
        await eventually(lambda: ingress_exists(manager), what="the ingress network")
        async with manager.control() as control:
            shared = await control.CreateNetwork(
                control_pb2.CreateNetworkRequest(spec=network_spec("shared")), timeout=10
            )
            for name in ("a", "b"):
                await control.CreateService(
                    control_pb2.CreateServiceRequest(spec=on_network(name, 1, "shared")),
                    timeout=10,
                )

            async def scale(name: str, replicas: int) -> None:
                await control.ScaleService(
                    control_pb2.ScaleServiceRequest(service_id=name, replicas=replicas),
                    timeout=10,
                )

            for a, b in ((40, 30), (10, 50), (60, 20)):
                await asyncio.gather(scale("a", a), scale("b", b))
                await eventually(partial(_running, manager, "a", a), what=f"a at {a}")
                await eventually(partial(_running, manager, "b", b), what=f"b at {b}")
                live = await tasks_of(manager, "a") + await tasks_of(manager, "b")
                addresses = [t.networks[0].addresses[0] for t in live]
                assert len(addresses) == len(set(addresses)) == a + b
                held = [r for r in await reservations(etcd) if r.network_id == shared.id]
                counts = Counter(r.address for r in held)
                assert all(n == 1 for n in counts.values())
                assert {a.partition("/")[0] for a in addresses} <= set(counts)

    run_cluster(tmp_path, etcd, scenario)


def test_an_exhausted_network_leaves_tasks_pending_with_the_reason(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario(manager: RunningManager, fleet: list[FakeAgent]) -> None:
        await eventually(lambda: ingress_exists(manager), what="the ingress network")
        async with manager.control() as control:
            # A /28: 14 hosts, one the gateway, one the VIP; nodes take theirs as tasks land.
            await control.CreateNetwork(
                control_pb2.CreateNetworkRequest(spec=network_spec("small", "10.99.0.0/28")),
                timeout=10,
            )
            await control.CreateService(
                control_pb2.CreateServiceRequest(spec=on_network("many", 14, "small")),
                timeout=10,
            )
            await eventually(lambda: _stuck(manager, "many"), what="tasks pending for addresses")
            tasks = await tasks_of(manager, "many")
            running = [t for t in tasks if t.status.state == types_pb2.RUNNING]
            pending = [t for t in tasks if t.status.state == types_pb2.PENDING]
            assert len(running) + len(pending) == 14 and running and pending
            assert all(t.status.err == "no free address on network small" for t in pending)
            listing = await control.ListTasks(control_pb2.ListTasksRequest(service_id="many"))
            assert not [t for t in listing.tasks if t.status.state == types_pb2.FAILED]

            # Scaling down frees addresses, and the pending ones take them.
            await control.ScaleService(
                control_pb2.ScaleServiceRequest(service_id="many", replicas=len(running)),
                timeout=10,
            )
            await eventually(
                lambda: _running(manager, "many", len(running)), what="all running after scale"
            )

    run_cluster(tmp_path, etcd, scenario)


async def _stuck(manager: RunningManager, name: str) -> bool:
    tasks = await tasks_of(manager, name)
    running = sum(t.status.state == types_pb2.RUNNING for t in tasks)
    reason = "no free address on network small"
    pending = sum(t.status.state == types_pb2.PENDING and t.status.err == reason for t in tasks)
    return running + pending == 14 and pending > 0 and running > 0


def test_default_address_pools_from_init(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def body() -> None:
        config = manager_config(
            tmp_path / "manager",
            etcd,
            default_addr_pool=("10.50.0.0/23", "10.60.0.0/24"),
            default_addr_pool_mask_length=24,
        )
        async with running_manager(config) as manager:
            await eventually(lambda: ingress_exists(manager), what="the ingress network")
            async with manager.control() as control:
                made = [
                    await control.CreateNetwork(
                        control_pb2.CreateNetworkRequest(spec=network_spec(name)), timeout=10
                    )
                    for name in ("one", "two")
                ]
                listing = await control.ListNetworks(control_pb2.ListNetworksRequest())
                subnets = {n.spec.annotations.name: n.ipam.subnet for n in listing.networks}
                assert subnets == {
                    "ingress": "10.50.0.0/24",
                    "one": "10.50.1.0/24",
                    "two": "10.60.0.0/24",
                }
                assert len({n.vni for n in listing.networks}) == 3
                err = await expect_error(
                    control.CreateNetwork(
                        control_pb2.CreateNetworkRequest(spec=network_spec("three"))
                    ),
                    grpc.StatusCode.FAILED_PRECONDITION,
                )
                assert "no free /24" in (err.details() or "")
                assert made[0].ipam.gateway == "10.50.1.1"

    asyncio.run(body())


def test_scale_0_to_1000_on_one_overlay_converges(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario(manager: RunningManager, fleet: list[FakeAgent]) -> None:
        await eventually(lambda: ingress_exists(manager), what="the ingress network")
        async with manager.control() as control:
            big = await control.CreateNetwork(
                control_pb2.CreateNetworkRequest(spec=network_spec("big")), timeout=10
            )
            await control.CreateService(
                control_pb2.CreateServiceRequest(spec=on_network("many", 0, "big")), timeout=10
            )
            started = time.monotonic()
            await control.ScaleService(
                control_pb2.ScaleServiceRequest(service_id="many", replicas=1000), timeout=10
            )
            await eventually(
                lambda: _running(manager, "many", 1000), timeout=300, what="1000/1000 running"
            )
            # Reported, not asserted: the time depends on the machine and its load.
            print(f"scale 0->1000 on an overlay: {time.monotonic() - started:.1f}s")
            tasks = await tasks_of(manager, "many")
            addresses = {t.networks[0].addresses[0] for t in tasks}
            assert len(addresses) == 1000
            held = [r for r in await reservations(etcd) if r.network_id == big.id]
            assert sum(r.owner_kind == "tasks" for r in held) == 1000
            for agent in fleet:
                await eventually(
                    partial(_has_backends, agent, big.id, 1000),
                    timeout=60,
                    what=f"{agent.name}'s view of 1000 backends",
                )

    run_cluster(tmp_path, etcd, scenario)


def _has_backends(agent: FakeAgent, network_id: str, count: int) -> bool:
    if not agent.network_views:
        return False
    records = [r for r in agent.network_views[-1].services if r.network_id == network_id]
    return bool(records) and len(records[0].backends) == count


def test_ipsec_keys_are_sealed_in_etcd_rotated_and_sent(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def body() -> None:
        config = manager_config(tmp_path / "manager", etcd, network_key_rotation=1.0)
        async with running_manager(config) as manager:
            agent = FakeAgent("node0", tmp_path / "agent0")
            await agent.join(manager)
            agent.start()
            try:
                await _keys_scenario(manager, agent, etcd)
            finally:
                await agent.stop()

    asyncio.run(body())


async def _keys_scenario(manager: RunningManager, agent: FakeAgent, etcd: EmbeddedEtcd) -> None:
    await eventually(lambda: ingress_exists(manager), what="the ingress network")
    spec = network_spec("secret")
    spec.options["encrypted"] = ""
    async with manager.control() as control:
        await control.CreateNetwork(control_pb2.CreateNetworkRequest(spec=spec), timeout=10)
        await control.CreateService(
            control_pb2.CreateServiceRequest(spec=on_network("hidden", 1, "secret")), timeout=10
        )
    # Rotated every second here: three keys, Lamport times in order, the newest last.
    await eventually(lambda: _rotated_keys(agent), what="three rotated keys in the view")
    keys = list(agent.network_views[-1].keys)
    assert all(len(k.key) == 36 and k.spi_seed for k in keys)
    async with etcd_client(etcd) as client:
        result = await client.range_paged(b"/")
    raw = b"".join(kv.key + kv.value for kv in result.kvs)
    assert b"network_keys" in raw
    for key in keys:
        assert key.key not in raw and key.key[:8] not in raw

    # A reconnecting agent is sent the whole view again at once.
    await agent.stop()
    del agent.network_views[:]
    agent.start()
    await eventually(lambda: _rotated_keys(agent), what="the view again after a reconnect")
    assert any(n.spec.annotations.name == "secret" for n in agent.network_views[0].networks)


def _rotated_keys(agent: FakeAgent) -> bool:
    if not agent.network_views:
        return False
    times = [k.lamport_time for k in agent.network_views[-1].keys]
    return len(times) == 3 and times == sorted(times) and times[0] >= 2


def test_ingress_ports_are_reserved_and_picked_when_not_given(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario(manager: RunningManager, fleet: list[FakeAgent]) -> None:
        await eventually(lambda: ingress_exists(manager), what="the ingress network")
        async with manager.control() as control:
            for name, published in (("fixed", 8080), ("auto1", 0), ("auto2", 0)):
                spec = replicated_spec(name, 1)
                spec.endpoint.ports.add(target_port=80, published_port=published)
                await control.CreateService(control_pb2.CreateServiceRequest(spec=spec), timeout=10)
            await eventually(lambda: _published(manager), what="ports allocated")
            chosen = await _published(manager)
            assert chosen["fixed"] == 8080
            assert {chosen["auto1"], chosen["auto2"]} == {30000, 30001}
            held = {r.id for r in await reservations(etcd) if r.id.startswith("port-")}
            assert held == {"port-tcp-8080", "port-tcp-30000", "port-tcp-30001"}
            # A port another service got from the pool is refused, naming that service.
            taken = replicated_spec("late", 1)
            taken.endpoint.ports.add(target_port=80, published_port=chosen["auto1"])
            err = await expect_error(
                control.CreateService(control_pb2.CreateServiceRequest(spec=taken)),
                grpc.StatusCode.FAILED_PRECONDITION,
            )
            assert "service auto1" in (err.details() or "")
            await control.RemoveService(control_pb2.RemoveServiceRequest(service_id="auto1"))
            await eventually(
                lambda: _port_freed(etcd, f"port-tcp-{chosen['auto1']}"), what="port freed"
            )

    run_cluster(tmp_path, etcd, scenario, agents=1)


async def _published(manager: RunningManager) -> dict[str, int]:
    async with manager.control() as control:
        listing = await control.ListServices(control_pb2.ListServicesRequest(), timeout=10)
    found = {
        s.spec.annotations.name: s.endpoint.ports[0].published_port
        for s in listing.services
        if s.endpoint.ports
    }
    return found if len(found) == 3 and all(found.values()) else {}


async def _port_freed(etcd: EmbeddedEtcd, reservation_id: str) -> bool:
    return all(r.id != reservation_id for r in await reservations(etcd))


def test_network_changes_roll_and_a_removed_node_frees_its_endpoints(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario(manager: RunningManager, fleet: list[FakeAgent]) -> None:
        await eventually(lambda: ingress_exists(manager), what="the ingress network")
        async with manager.control() as control:
            made = {}
            for name in ("front", "back"):
                made[name] = await control.CreateNetwork(
                    control_pb2.CreateNetworkRequest(spec=network_spec(name)), timeout=10
                )
            await control.CreateService(
                control_pb2.CreateServiceRequest(spec=on_network("web", 4, "front")), timeout=10
            )
            await eventually(lambda: _running(manager, "web", 4), what="4 running on front")
            service = await control.GetService(control_pb2.GetServiceRequest(service_id="web"))
            spec = types_pb2.ServiceSpec()
            spec.CopyFrom(service.spec)
            spec.task.networks.add(target="back", aliases=["api"])
            await control.UpdateService(
                control_pb2.UpdateServiceRequest(
                    service_id=service.id, version=service.meta.version, spec=spec
                ),
                timeout=10,
            )
            wanted = {made["front"].id, made["back"].id}
            await eventually(lambda: _on_networks(manager, wanted), what="tasks on both networks")
            updated = await control.GetService(control_pb2.GetServiceRequest(service_id="web"))
            assert {v.network_id for v in updated.endpoint.virtual_ips} == wanted

            # A node that goes away gives back its own endpoints.
            gone = fleet[0]
            await eventually(
                lambda: _node_holds(etcd, gone.node_id), what="the node's endpoints reserved"
            )
            await gone.stop()
            await control.RemoveNode(
                control_pb2.RemoveNodeRequest(node_id=gone.node_id, force=True), timeout=10
            )
            await eventually(
                partial(_node_freed, etcd, gone.node_id), what="the node's endpoints freed"
            )

    run_cluster(tmp_path, etcd, scenario)


async def _on_networks(manager: RunningManager, wanted: set[str]) -> bool:
    tasks = await tasks_of(manager, "web")
    return (
        len(tasks) == 4
        and all(t.status.state == types_pb2.RUNNING for t in tasks)
        and all({a.network_id for a in t.networks} == wanted for t in tasks)
    )


async def _node_holds(etcd: EmbeddedEtcd, node_id: str) -> bool:
    return any(r.owner_id == node_id for r in await reservations(etcd))


async def _node_freed(etcd: EmbeddedEtcd, node_id: str) -> bool:
    return not await _node_holds(etcd, node_id)
