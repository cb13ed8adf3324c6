"""Standalone containers on attachable networks, through the real manager: what the
NetworkAttachments service writes to etcd (an Attachment and its address reservation),
what it refuses (a network that is not attachable, one that does not exist), what the
nodes' NetworkViews say about it, `network rm` naming the containers and their nodes,
and every way the address comes back (release, a node's sync, the node's removal).

The nodes are fake agents (real Dispatcher clients with certificates from the cluster
CA); the manager, etcd and gRPC are real.
"""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import grpc

from pyswarm.manager.store import ADDRESSES, ATTACHMENTS, EmbeddedEtcd
from pyswarm.proto import control_pb2, dispatcher_pb2, types_pb2
from tests.harness.etcd import etcd_client
from tests.harness.fake_agent import FakeAgent
from tests.harness.manager import RunningManager, expect_error, manager_config, running_manager
from tests.waiting import eventually


def attachable(name: str, subnet: str, *, attachable: bool = True) -> types_pb2.NetworkSpec:
    spec = types_pb2.NetworkSpec(driver="overlay", attachable=attachable)
    spec.annotations.name = name
    spec.ipam.add(subnet=subnet)
    return spec


async def stored(etcd: EmbeddedEtcd) -> tuple[list[types_pb2.Attachment], dict[str, str]]:
    """The Attachment records, and the attachments' reservations: address -> owner id."""
    async with etcd_client(etcd) as client:
        records = await client.range_paged(ATTACHMENTS.prefix)
        addresses = await client.range_paged(ADDRESSES.prefix)
    reservations = [types_pb2.AddressReservation.FromString(kv.value) for kv in addresses.kvs]
    return (
        [types_pb2.Attachment.FromString(kv.value) for kv in records.kvs],
        {r.address: r.owner_id for r in reservations if r.owner_kind == "attachments"},
    )


def request(container: str, network: str) -> dispatcher_pb2.AttachmentRequest:
    return dispatcher_pb2.AttachmentRequest(
        container_id=container * 8, container_name=container, network=network
    )


def test_attach_refuse_view_release_sync_and_node_removal(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario(manager: RunningManager, one: FakeAgent, two: FakeAgent) -> None:
        async with manager.control() as control:
            net = await control.CreateNetwork(
                control_pb2.CreateNetworkRequest(spec=attachable("att", "10.131.0.0/24")),
                timeout=10,
            )
            await control.CreateNetwork(
                control_pb2.CreateNetworkRequest(
                    spec=attachable("plain", "10.132.0.0/24", attachable=False)
                ),
                timeout=10,
            )
        async with one.attachments() as on_one, two.attachments() as on_two:
            probe = await on_one.Attach(request("probe", "att"), timeout=10)
            assert probe.node_id == one.node_id and probe.network_id == net.id
            assert ipaddress.ip_interface(probe.address).network == ipaddress.ip_network(
                "10.131.0.0/24"
            )
            again = await on_one.Attach(request("probe", "att"), timeout=10)
            assert again.id == probe.id  # a retried attach gets the same one
            other = await on_two.Attach(request("other", net.id[:12]), timeout=10)
            assert other.address != probe.address
            records, reserved = await stored(etcd)
            assert {r.id for r in records} == {probe.id, other.id}
            assert reserved == {
                probe.address.split("/")[0]: probe.id,
                other.address.split("/")[0]: other.id,
            }

            err = await expect_error(
                on_one.Attach(request("probe2", "plain")), grpc.StatusCode.FAILED_PRECONDITION
            )
            assert err.details() == "network plain is not manually attachable"
            err = await expect_error(
                on_one.Attach(request("probe2", "nowhere")), grpc.StatusCode.NOT_FOUND
            )
            assert "nowhere" in (err.details() or "")
            assert await stored(etcd) == (records, reserved)  # refused: nothing written

            # Each node learns of the network and of the other's container (a peer on
            # the other host, a name), and gets its own endpoint on the network.
            def knows(agent: FakeAgent, peer: types_pb2.Attachment) -> bool:
                if not agent.network_views:
                    return False
                view = agent.network_views[-1]
                addresses = {(p.node_id, p.address) for p in view.peers if p.network_id == net.id}
                names = {a.container_name for a in view.attachments}
                own = any(node == agent.node_id for node, _ in addresses)
                return (
                    (peer.node_id, peer.address) in addresses
                    and names
                    == {
                        "probe",
                        "other",
                    }
                    and own
                )

            await eventually(lambda: knows(one, other), what="node one's view of 'other'")
            await eventually(lambda: knows(two, probe), what="node two's view of 'probe'")

            async with manager.control() as control:
                listed = await control.ListAttachments(
                    control_pb2.AttachmentListRequest(network_id="att"), timeout=10
                )
                assert [a.container_name for a in listed.attachments] == ["other", "probe"]
                err = await expect_error(
                    control.RemoveNetwork(control_pb2.RemoveNetworkRequest(network_id="att")),
                    grpc.StatusCode.FAILED_PRECONDITION,
                )
                assert err.details() == (
                    "network att is in use by container other on node node-two,"
                    " container probe on node node-one"
                )

            released = await on_one.Release(
                dispatcher_pb2.AttachmentRelease(container_id=probe.container_id), timeout=10
            )
            assert list(released.attachment_ids) == [probe.id]
            records, reserved = await stored(etcd)
            assert [r.id for r in records] == [other.id]
            assert list(reserved.values()) == [other.id]

            # Node two restarted and kept only "other": a sync naming it changes nothing;
            # one that names nothing releases it.
            kept = await on_two.Sync(
                dispatcher_pb2.AttachmentSync(container_ids=[other.container_id]), timeout=10
            )
            assert not kept.attachment_ids
            gone = await on_two.Sync(dispatcher_pb2.AttachmentSync(), timeout=10)
            assert list(gone.attachment_ids) == [other.id]
            assert await stored(etcd) == ([], {})

            # A removed node's attachments go with it (the network allocator).
            last = await on_two.Attach(request("last", "att"), timeout=10)
            assert (await stored(etcd))[1] == {last.address.split("/")[0]: last.id}
        await two.stop()
        async with manager.control() as control:
            await control.RemoveNode(
                control_pb2.RemoveNodeRequest(node_id=two.node_id, force=True), timeout=10
            )

            async def freed() -> bool:
                return await stored(etcd) == ([], {})

            await eventually(freed, what="the removed node's attachment freed")
            await control.RemoveNetwork(
                control_pb2.RemoveNetworkRequest(network_id="att"), timeout=10
            )

    async def body() -> None:
        async with running_manager(manager_config(tmp_path / "manager", etcd)) as manager:
            one = FakeAgent("node-one", tmp_path / "one")
            two = FakeAgent("node-two", tmp_path / "two")
            try:
                for agent in (one, two):
                    await agent.join(manager)
                    agent.start()
                await eventually(
                    lambda: bool(one.network_views and two.network_views), what="sessions"
                )
                await scenario(manager, one, two)
            finally:
                await asyncio.gather(one.stop(), two.stop())

    asyncio.run(body())
