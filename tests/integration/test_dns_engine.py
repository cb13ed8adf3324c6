"""The container engine with the resolver, for real: a container on cluster networks gets
127.0.0.11 in its resolv.conf and the resolver's sockets in its netns before its process
starts; removing it closes them; a restarted agent's adoption makes them again. A
container on no cluster network keeps the host's nameservers."""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from pyswarm.agent.config import AgentConfig
from pyswarm.agent.daemon import make_network, teardown
from pyswarm.agent.dns import RESOLVER_ADDRESS, ContainerResolver, Forwarder
from pyswarm.agent.engine.adoption import adopt
from pyswarm.agent.engine.manager import ContainerEngine
from pyswarm.agent.runtime.cgroups import CgroupManager
from pyswarm.agent.runtime.container import SupervisorClient
from pyswarm.images import ImageStore
from pyswarm.images.busybox import write_busybox_rootfs
from pyswarm.proto import agent_pb2, dispatcher_pb2, runtime_pb2, types_pb2
from tests.harness.dns_upstream import FakeUpstream, fake_upstream
from tests.harness.supervisor import collect

pytestmark = pytest.mark.root

NET = f"net-{secrets.token_hex(4)}"
VIEW = dispatcher_pb2.NetworkView(
    version=1,
    services=[
        dispatcher_pb2.ServiceRecord(
            name="web",
            network_id=NET,
            vip="10.66.0.2/24",
            backends=[dispatcher_pb2.ServiceBackend(task_id="t1", address="10.66.0.5")],
        )
    ],
)


@pytest.fixture
def config() -> Iterator[AgentConfig]:
    """An agent's settings with every host resource named uniquely; teardown removes what
    the engine made (containers, supervisor, cgroups, bridge, chains, netns files)."""
    tag = secrets.token_hex(3)
    root = Path(tempfile.mkdtemp(prefix="psd-"))  # short: unix socket paths are limited
    octet = int(tag[:2], 16) % 200 + 20
    settings = AgentConfig(
        state_dir=root / "s",
        socket=root / "agent.sock",
        bridge=f"psd{tag}",
        subnet=f"10.{octet}.{int(tag[2:4], 16)}.0/24",
        cgroup_parent=f"pyswarm-test-{tag}",
        netns_dir=root / "netns",
        iptables_chain=f"PSD{tag.upper()}",
    )
    try:
        yield settings
    finally:
        asyncio.run(teardown(settings))
        shutil.rmtree(root, ignore_errors=True)


def _images(config: AgentConfig) -> ImageStore:
    images = ImageStore(config.images_dir)
    tar = config.state_dir / "busybox.tar"
    write_busybox_rootfs(tar)
    images.import_rootfs(tar, "busybox:latest")
    return images


class RecordedOverlays:
    """The engine's overlay port without a datapath: the container joins its cluster
    networks in name only (the overlays themselves are tested in test_overlay_*)."""

    def __init__(self) -> None:
        self.attached: dict[str, list[str]] = {}

    async def attach(
        self,
        container_id: str,
        netns_path: str,
        attachments: Sequence[types_pb2.ContainerNetworkAttachment],
    ) -> None:
        self.attached[container_id] = [a.network_id for a in attachments]

    async def detach(
        self, container_id: str, attachments: Sequence[types_pb2.ContainerNetworkAttachment]
    ) -> None:
        self.attached.pop(container_id, None)


@asynccontextmanager
async def engine_with_resolver(
    config: AgentConfig, upstream: FakeUpstream
) -> AsyncIterator[ContainerEngine]:
    """A ContainerEngine as the daemon makes it, its resolver on VIEW; closed at the end
    (containers keep running, as when an agent stops)."""
    network = make_network(config)
    await asyncio.to_thread(network.ensure)
    supervisor = SupervisorClient(config.supervisor_socket)
    await supervisor.ensure_started(config.supervisor_dir)
    resolver = ContainerResolver(Forwarder([upstream.upstream], timeout=1.0))
    resolver.apply(VIEW)
    engine = ContainerEngine(
        config,
        ImageStore(config.images_dir),
        network,
        CgroupManager(config.cgroup_parent),
        supervisor,
        resolver,
    )
    engine.resources.overlays = RecordedOverlays()
    try:
        yield engine
    finally:
        await engine.close()
        await resolver.close()


async def _exec(engine: ContainerEngine, cid: str, *args: str) -> str:
    process = runtime_pb2.ExecProcess(args=list(args), cwd="/")
    out, err, _code, _pids = await collect(await engine.supervisor.exec(cid, process))
    return (out + err).decode()


async def _start(engine: ContainerEngine, *networks: str) -> types_pb2.Container:
    request = agent_pb2.CreateContainerRequest(
        image="busybox:latest",
        spec=types_pb2.ContainerSpec(command=["sleep", "600"]),
        entrypoint_set=True,
        start=True,
        overlays=[
            types_pb2.ContainerNetworkAttachment(network_id=n, address=f"10.0.{i}.2/24")
            for i, n in enumerate(networks, start=9)
        ],
    )
    return await engine.create(request)


def _web_address(text: str) -> list[str]:
    tail = text.split("Name:\tweb", 1)[1] if "Name:\tweb" in text else ""
    return re.findall(r"Address: (\S+)", tail)


def test_cluster_containers_are_served_from_start_to_removal(config: AgentConfig) -> None:
    _images(config)

    async def check() -> None:
        async with (
            fake_upstream({"example.test": ["192.0.2.10"]}) as upstream,
            engine_with_resolver(config, upstream) as engine,
        ):
            served = await _start(engine, NET)
            plain = await _start(engine)
            assert engine.names.resolver is not None
            assert engine.names.resolver.attached() == {served.id}
            conf = await _exec(engine, served.id, "cat", "/etc/resolv.conf")
            assert conf.splitlines()[0] == f"nameserver {RESOLVER_ADDRESS}"
            assert RESOLVER_ADDRESS not in await _exec(engine, plain.id, "cat", "/etc/resolv.conf")
            looked_up = await _exec(engine, served.id, "nslookup", "web")
            assert _web_address(looked_up) == ["10.66.0.2"], looked_up
            forwarded = await _exec(engine, served.id, "nslookup", "example.test")
            assert "192.0.2.10" in forwarded, forwarded
            await engine.remove(served.id, force=True)
            assert engine.names.resolver.attached() == set()
            await engine.remove(plain.id, force=True)

    asyncio.run(check())


def test_adoption_serves_running_containers_again(config: AgentConfig) -> None:
    _images(config)

    async def check() -> None:
        async with fake_upstream({}) as upstream:
            async with engine_with_resolver(config, upstream) as first:
                served = await _start(first, NET)
            # The agent stopped (its resolver closed); a new one adopts the container.
            async with engine_with_resolver(config, upstream) as second:
                await adopt(second)
                assert second.names.resolver is not None
                assert second.names.resolver.attached() == {served.id}
                looked_up = await _exec(second, served.id, "nslookup", "web")
                assert _web_address(looked_up) == ["10.66.0.2"], looked_up
                await second.stop(served.id, 0)
                assert second.names.resolver.attached() == set()
                await second.remove(served.id, force=True)

    asyncio.run(check())
