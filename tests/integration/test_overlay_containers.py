"""Real pyswarm containers (the supervisor's, over the busybox rootfs) on an overlay that
spans two netns hosts: one on each host, talking by overlay address. Traffic stays
inside the namespaces the test makes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from pyswarm.agent.cluster.overlays import container_attachments, wanted_overlays
from pyswarm.agent.runtime.network import links
from pyswarm.agent.runtime.network.overlay.host import HostOverlays
from pyswarm.proto import dispatcher_pb2, types_pb2
from tests.harness.overlay_hosts import underlay
from tests.harness.supervisor import SupervisorHarness

pytestmark = pytest.mark.root

T = TypeVar("T")
SERVER_IP = "10.79.0.101"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_containers_on_two_hosts_talk_over_the_overlay(supervisor: SupervisorHarness) -> None:
    network = types_pb2.Network(id=uuid.uuid4().hex, vni=6001)
    with underlay(2) as hosts:
        view = dispatcher_pb2.NetworkView(networks=[network], version=1)
        for i, host in enumerate(hosts):
            for ip in (f"10.79.0.{2 + i}", f"10.79.0.{100 + i}"):
                view.peers.add(
                    network_id=network.id,
                    node_id=f"node{i}",
                    node_addr=host.address,
                    address=f"{ip}/24",
                    mac=links.mac_for(ip),
                )
        overlays = [HostOverlays(h.address, netns=h.path) for h in hosts]
        sandboxes = [h.sandbox() for h in hosts]
        for i, overlay in enumerate(overlays):
            overlay.apply(wanted_overlays(view, f"node{i}", {network.id}))
            task = types_pb2.NetworkAttachment(
                network_id=network.id, addresses=[f"10.79.0.{100 + i}/24"]
            )
            overlay.attach(f"c{i}", sandboxes[i], container_attachments(view, [task]))

        # The server answers every connection with "hello" (the supervisor's teardown
        # kills it); the client asks until it hears that, a bounded number of times:
        # the server's listen() may come a moment after its process started.
        server = supervisor.spec(
            "timeout", "60", "nc", "-ll", "-p", "7000", "-e", "/bin/echo", "hello",
            netns_path=str(sandboxes[1]),
        )  # fmt: skip
        client = supervisor.spec(
            "sh", "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10; do"
            f' [ "$(nc -w 1 {SERVER_IP} 7000 < /dev/null)" = hello ] && exit 0;'
            f" ping -c 1 -W 1 {SERVER_IP} > /dev/null; done; exit 1",
            netns_path=str(sandboxes[0]),
        )  # fmt: skip

        async def scenario() -> int:
            await supervisor.client.create(server)
            await supervisor.client.create(client)
            return (await supervisor.client.wait(client.id)).exit_code

        assert run(scenario()) == 0
        for i, overlay in enumerate(overlays):
            overlay.detach(f"c{i}", [network.vni])
            overlay.teardown()
