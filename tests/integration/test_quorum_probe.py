"""The quorum probe behind pyswarm_manager_etcd_quorum, on a real 3-member etcd
cluster: a member that still runs but has lost its peers does not answer a
linearizable read, so the probe says no quorum; with a majority back it says yes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pyswarm.manager.quorum_probe import QuorumProbe
from pyswarm.manager.store import EtcdClient
from tests.harness.etcd import client_tls
from tests.harness.etcd_cluster import running_etcd_cluster
from tests.waiting import eventually


def test_the_probe_follows_quorum_not_reachability(tmp_path: Path) -> None:
    async def scenario() -> None:
        with running_etcd_cluster(tmp_path) as members:
            survivor, *others = members
            # Only the survivor is asked: it stays reachable throughout.
            async with EtcdClient(survivor.endpoint, tls=client_tls(survivor), timeout=2) as client:
                probe = QuorumProbe(client, interval=0.2, timeout=2.0)
                runner = asyncio.create_task(probe.run())
                try:
                    await eventually(lambda: probe.has_quorum, timeout=30, what="quorum seen")
                    for member in others:
                        await asyncio.to_thread(member.stop)
                    assert survivor.running()
                    await eventually(
                        lambda: not probe.has_quorum, timeout=30, what="quorum loss seen"
                    )
                    await asyncio.to_thread(others[0].spawn)
                    await eventually(lambda: probe.has_quorum, timeout=60, what="quorum back")
                finally:
                    probe.stop()
                    await runner

    asyncio.run(scenario())
