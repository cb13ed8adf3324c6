"""`pyswarm run --network NAME` on a cluster overlay, with a real agent.

Everything is real: etcd, a manager started by `pyswarm init`, an agent process that
joined it with `pyswarm join`, and the CLI against both. A standalone container on an
attachable network gets its address from the manager (an address reservation in etcd)
and its eth1 on the overlay; `network inspect` lists it, `network rm` names it and its
node; removing the container frees the address and takes the overlay off the host.
A network that is not attachable, or does not exist, is refused with nothing made. An
agent that crashed half-way through a removal (the record gone, the release never sent)
has the address freed by its sync when it comes back.

Tests run in file order and share one swarm.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pyswarm.agent.engine.records import REMOVED_PREFIX
from pyswarm.agent.runtime.network import links
from pyswarm.manager.store import ADDRESSES, EmbeddedEtcd
from pyswarm.proto import types_pb2
from tests.harness.cluster_agent import ClusterAgent, free_port_pair
from tests.harness.etcd import etcd_client, running_etcd
from tests.harness.manager import start_manager, stop_process
from tests.waiting import wait_for

pytestmark = pytest.mark.root

SUBNET = "10.133.0.0/24"


@dataclass
class Swarm:
    root: Path
    port: int
    etcd: EmbeddedEtcd
    node: ClusterAgent

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The CLI aimed at the manager."""
        env = {
            **os.environ,
            "PYSWARM_HOST": f"127.0.0.1:{self.port}",
            "PYSWARM_CERT_DIR": str(self.root / "manager" / "client"),
            "PYSWARM_CONFIG": str(self.root / "cli-config"),
        }
        result = subprocess.run(
            [sys.executable, "-m", "pyswarm.cli.main", *args],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"pyswarm {' '.join(args)}: {result.stdout!r} {result.stderr!r}")
        return result

    def network(self, name: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(self.cli("network", "inspect", name).stdout)
        return found[0]

    def reserved(self) -> list[types_pb2.AddressReservation]:
        """The address reservations of standalone containers, read from etcd."""

        async def read() -> list[types_pb2.AddressReservation]:
            async with etcd_client(self.etcd) as client:
                result = await client.range_paged(ADDRESSES.prefix)
            found = [types_pb2.AddressReservation.FromString(kv.value) for kv in result.kvs]
            return [r for r in found if r.owner_kind == "attachments"]

        return asyncio.run(read())

    def vni(self, name: str) -> int:
        return int(self.network(name)["Options"]["com.docker.network.driver.overlay.vxlanid_list"])


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    root = tmp_path_factory.mktemp("runnet")
    with contextlib.ExitStack() as stack:
        etcd = stack.enter_context(running_etcd(root / "etcd"))
        port = free_port_pair()
        manager = start_manager(root, etcd, port)
        stack.callback(stop_process, manager)
        node = ClusterAgent(root / "node")
        node.root.mkdir()
        swarm = Swarm(root, port, etcd, node)
        wait_for(
            lambda: manager.poll() is None and swarm.cli("node", "ls", check=False).returncode == 0,
            timeout=60,
            what="the manager to answer",
        )
        token = swarm.cli("join-token", "worker", "-q").stdout.strip()
        stack.callback(node.close)
        node.join(token, f"127.0.0.1:{port + 1}")
        node.cli("image", "busybox", "busybox:latest")
        wait_for(
            lambda: "Ready" in swarm.cli("node", "ls").stdout, timeout=60, what="the node ready"
        )
        swarm.cli("network", "create", "--attachable", "--subnet", SUBNET, "att")
        swarm.cli("network", "create", "--subnet", "10.134.0.0/24", "plain")
        yield swarm


def test_run_on_an_attachable_network(swarm: Swarm) -> None:
    node = swarm.node
    cid = node.cli(
        "run", "-d", "--network", "att", "--name", "probe", "busybox", "sleep", "300"
    ).stdout.strip()

    containers = swarm.network("att")["Containers"]
    assert list(containers) == [cid]
    address = containers[cid]["IPv4Address"]
    assert containers[cid]["Name"] == "probe"
    assert address.startswith("10.133.0.") and address.endswith("/24")
    assert [r.address for r in swarm.reserved()] == [address.split("/")[0]]
    shown = node.cli("exec", "probe", "busybox", "ip", "-4", "addr", "show", "eth1").stdout
    assert f"inet {address}" in shown
    assert links.link_exists(f"ov-{swarm.vni('att')}")

    refused = swarm.cli("network", "rm", "att", check=False)
    assert refused.returncode != 0
    assert f"network att is in use by container probe on node node-{node.tag}" in refused.stderr

    node.cli("rm", "-f", "probe")
    assert swarm.network("att")["Containers"] == {}
    assert swarm.reserved() == []
    wait_for(
        lambda: not links.link_exists(f"ov-{swarm.vni('att')}"),
        timeout=30,
        what="the overlay gone from the host with its last container",
    )


def test_a_network_that_is_not_attachable_or_unknown_is_refused(swarm: Swarm) -> None:
    node = swarm.node
    before = {c.id for c in node.containers()}
    plain = node.cli("run", "--network", "plain", "busybox", "true", check=False)
    assert plain.returncode == 125
    assert plain.stderr.strip().endswith("network plain is not manually attachable"), plain
    unknown = node.cli("run", "--network", "nowhere", "busybox", "true", check=False)
    assert unknown.returncode == 125
    assert "nowhere" in unknown.stderr and "not found" in unknown.stderr, unknown
    assert {c.id for c in node.containers()} == before
    assert swarm.reserved() == []


def test_a_release_lost_in_a_crash_is_made_by_the_sync(swarm: Swarm) -> None:
    node = swarm.node
    cid = node.cli(
        "run", "-d", "--network", "att", "--name", "lost", "busybox", "sleep", "300"
    ).stdout.strip()
    assert len(swarm.reserved()) == 1
    node.cli("stop", "-t", "0", "lost")
    # The agent dies just after a removal put the record aside, before the release.
    node.kill()
    records = node.state_dir / "containers"
    (records / cid).rename(records / f"{REMOVED_PREFIX}{cid}")
    node.restart()

    wait_for(lambda: swarm.reserved() == [], timeout=30, what="the lost attachment released")
    assert swarm.network("att")["Containers"] == {}
    swarm.cli("network", "rm", "att", "plain")
