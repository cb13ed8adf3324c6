"""`pyswarm swarm leave` refused on a manager without --force, through the real CLI and
a real SwarmAPI server on a unix socket: one line in docker's wording, exit 1, and the
node's membership untouched. The engine is never reached on this path."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from grpc import aio

from pyswarm.agent.api.swarm import SwarmService
from pyswarm.agent.cluster.membership import SwarmMembership
from pyswarm.agent.cluster.mode import ClusterMode
from pyswarm.agent.cluster.network_view import NetworkViewHolder
from pyswarm.agent.cluster.state import ClusterState, cluster_dir
from pyswarm.agent.config import AgentConfig
from pyswarm.agent.engine.manager import ContainerEngine
from pyswarm.common.node_identity import MANAGER, Role
from pyswarm.common.rpc_errors import ErrorInterceptor
from pyswarm.manager.ca import ClusterCA
from pyswarm.proto import agent_pb2_grpc


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Unix socket paths are short (108 bytes): a short temporary dir."""
    path = Path(tempfile.mkdtemp(prefix="psl-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def joined_config(root: Path, role: Role) -> AgentConfig:
    """An agent config whose state dir holds a membership with a `role` certificate."""
    config = AgentConfig(state_dir=root / "state", socket=root / "agent.sock")
    identity = ClusterCA.create().issue_identity(role)
    directory = cluster_dir(config.state_dir)
    identity.save(directory)
    ClusterState(directory, managers=["127.0.0.1:1"], node_id=identity.node_id).save()
    return config


async def leave_through_cli(config: AgentConfig, *flags: str) -> tuple[int, str, str]:
    cluster = ClusterMode.load(config)
    assert cluster is not None
    engine = cast(ContainerEngine, object())  # refusals never reach the engine
    membership = SwarmMembership(config, cluster, engine, NetworkViewHolder())
    server = aio.server(interceptors=[ErrorInterceptor()])
    agent_pb2_grpc.add_SwarmAPIServicer_to_server(SwarmService(membership), server)
    server.add_insecure_port(f"unix:{config.socket}")
    await server.start()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pyswarm.cli.main", "--socket", str(config.socket),
            "swarm", "leave", *flags,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        await server.stop(grace=None)
    assert membership.in_swarm
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_a_manager_is_refused_without_force_and_keeps_its_membership(short_dir: Path) -> None:
    config = joined_config(short_dir, MANAGER)

    code, out, err = asyncio.run(leave_through_cli(config))

    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(
        "Error response from daemon: You are attempting to leave the swarm on a node that"
        " is participating as a manager."
    ), err
    assert "--force" in lines[0]
    assert ClusterState.exists(config.state_dir)
