"""Revocation short of `node rm`, against a real manager, real etcd and real mutual TLS:
`node demote` revokes the node's manager certificate at once (a fresh one after a new
promotion is good), and a CLI identity revoked with `swarm ca --revoke-client` is
refused while its host gets a new one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import grpc

from pyswarm.common.node_identity import MANAGER, WORKER, NodeIdentity, Role
from pyswarm.manager.store import EmbeddedEtcd
from pyswarm.proto import control_pb2, types_pb2
from tests.harness.certificates import (
    agent_session,
)
from tests.harness.manager import RunningManager, expect_error, manager_config, running_manager
from tests.waiting import eventually


async def set_desired_role(manager: RunningManager, node_id: str, role: Role) -> None:
    async with manager.control() as control:
        node = await control.GetNode(control_pb2.GetNodeRequest(node_id=node_id), timeout=10)
        spec = types_pb2.NodeSpec()
        spec.CopyFrom(node.spec)
        spec.desired_role = role
        await control.UpdateNode(
            # No version: the node re-registers as it renews, which is no conflict here.
            control_pb2.UpdateNodeRequest(node_id=node_id, spec=spec),
            timeout=10,
        )


async def list_nodes(
    manager: RunningManager, identity: NodeIdentity
) -> control_pb2.ListNodesResponse:
    async with manager.control(identity) as control:
        return await control.ListNodes(control_pb2.ListNodesRequest(), timeout=10)


def test_demote_revokes_the_manager_certificate_at_once(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with (
            running_manager(manager_config(tmp_path / "m", etcd)) as manager,
            agent_session(manager, tmp_path / "node") as session,
        ):
            node_id = session.identity.node_id
            await set_desired_role(manager, node_id, MANAGER)
            await eventually(lambda: session.identity.role == MANAGER, what="a manager cert")
            promoted = session.identity
            assert (await list_nodes(manager, promoted)).nodes

            await set_desired_role(manager, node_id, WORKER)
            # Refused as soon as the demotion is written, before the node renews.
            err = await expect_error(
                list_nodes(manager, promoted), grpc.StatusCode.PERMISSION_DENIED
            )
            assert f"node {node_id} was demoted" in (err.details() or "")
            # The node still renews with it (into a worker) and stays in session.
            await eventually(
                lambda: session.identity.role == WORKER and session.connected.is_set(),
                what="a worker certificate, in session",
            )

            await set_desired_role(manager, node_id, MANAGER)
            await eventually(lambda: session.identity.role == MANAGER, what="promoted again")
            assert (await list_nodes(manager, session.identity)).nodes  # a fresh one is good
            await expect_error(list_nodes(manager, promoted), grpc.StatusCode.PERMISSION_DENIED)

    asyncio.run(scenario())


def _cli(manager: RunningManager, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYSWARM_HOST": manager.endpoint.address,
        "PYSWARM_CERT_DIR": str(manager.config.client_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "pyswarm.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_a_revoked_cli_identity_is_refused_and_its_host_gets_a_new_one(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario() -> None:
        async with running_manager(manager_config(tmp_path / "m", etcd)) as manager:
            revoked = manager.client_identity
            listing = await asyncio.to_thread(_cli, manager, "swarm", "ca", "--clients")
            assert listing.returncode == 0, listing.stderr
            assert revoked.node_id in listing.stdout

            unknown = await asyncio.to_thread(_cli, manager, "swarm", "ca", "--revoke-client", "x1")
            assert unknown.returncode != 0 and "--revoke-client" not in unknown.stdout
            assert "no client certificate 'x1'" in unknown.stderr

            result = await asyncio.to_thread(
                _cli, manager, "swarm", "ca", "--revoke-client", revoked.node_id
            )
            assert result.returncode == 0 and result.stdout.strip() == revoked.node_id
            err = await expect_error(
                list_nodes(manager, revoked), grpc.StatusCode.PERMISSION_DENIED
            )
            assert f"client certificate {revoked.node_id} was revoked" in (err.details() or "")

            def replaced() -> NodeIdentity | None:
                current = manager.client_identity
                return current if current.node_id != revoked.node_id else None

            fresh = await eventually(replaced, what="a new CLI identity for the host")
            await list_nodes(manager, fresh)
            async with manager.control(fresh) as control:
                answer = await control.ListClientCertificates(
                    control_pb2.ListClientCertificatesRequest(), timeout=10
                )
            assert list(answer.revoked) == [revoked.node_id]
            assert fresh.node_id in [c.id for c in answer.certificates]

    asyncio.run(scenario())
