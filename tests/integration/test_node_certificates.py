"""Node certificates follow the cluster's decisions, against a real manager, real etcd
and real mutual TLS: `node promote` / `node demote` reach the agent's session, which
renews its certificate into the new role (so the manager-only Control API accepts or
refuses it), and `node rm` revokes every certificate of the removed node at once."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import grpc

from pyswarm.common.join import join_cluster, renew_certificate
from pyswarm.common.node_identity import (
    MANAGER,
    WORKER,
    NodeIdentity,
    Role,
    certificate_request,
    generate_node_key,
)
from pyswarm.common.tls import identity_channel_credentials, manager_channel
from pyswarm.manager.store import EmbeddedEtcd
from pyswarm.proto import (
    ca_pb2,
    ca_pb2_grpc,
    control_pb2,
    control_pb2_grpc,
    dispatcher_pb2,
    dispatcher_pb2_grpc,
    types_pb2,
)
from tests.harness.certificates import agent_session
from tests.harness.manager import RunningManager, expect_error, manager_config, running_manager
from tests.waiting import eventually


async def list_nodes(address: str, identity: NodeIdentity) -> control_pb2.ListNodesResponse:
    async with manager_channel(address, identity_channel_credentials(identity)) as channel:
        control = control_pb2_grpc.ControlStub(channel)
        return await control.ListNodes(control_pb2.ListNodesRequest(), timeout=10)


async def set_desired_role(manager: RunningManager, node_id: str, role: Role) -> None:
    """Read, change, write, as the CLI does (the manager's own writes of the node in
    between do not make the read stale: the version guards the spec)."""
    async with manager.control() as control:
        node = await control.GetNode(control_pb2.GetNodeRequest(node_id=node_id), timeout=10)
        spec = types_pb2.NodeSpec()
        spec.CopyFrom(node.spec)
        spec.desired_role = role
        request = control_pb2.UpdateNodeRequest(
            node_id=node_id, version=node.meta.version, spec=spec
        )
        await control.UpdateNode(request, timeout=10)


def test_promote_and_demote_renew_the_node_certificate(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        cert_dir = tmp_path / "node"
        async with (
            running_manager(manager_config(tmp_path / "m", etcd)) as manager,
            agent_session(manager, cert_dir) as session,
        ):
            address = manager.endpoint.address
            worker = session.identity
            assert worker.role == WORKER
            err = await expect_error(list_nodes(address, worker), grpc.StatusCode.PERMISSION_DENIED)
            assert "is a worker" in (err.details() or "")

            await set_desired_role(manager, worker.node_id, MANAGER)
            await eventually(lambda: session.identity.role == MANAGER, what="a manager cert")
            promoted = NodeIdentity.load(cert_dir)  # saved for the next agent start too
            assert promoted.role == MANAGER and promoted.node_id == worker.node_id
            listing = await list_nodes(address, promoted)
            assert worker.node_id in [n.id for n in listing.nodes]
            # The session carries on with the new certificate; the node shows its role.
            await eventually(lambda: session.connected.is_set(), what="in session again")

            async def recorded_role() -> bool:
                nodes = (await list_nodes(address, promoted)).nodes
                return any(n.id == worker.node_id and n.role == MANAGER for n in nodes)

            await eventually(recorded_role, what="the node recorded as a manager")

            await set_desired_role(manager, worker.node_id, WORKER)
            await eventually(lambda: session.identity.role == WORKER, what="a worker cert")
            demoted = session.identity
            err = await expect_error(
                list_nodes(address, demoted), grpc.StatusCode.PERMISSION_DENIED
            )
            assert "is a worker" in (err.details() or "")

    asyncio.run(scenario())


def test_renewal_cannot_choose_its_role(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    """A worker renewing on its own stays a worker: only the desired role decides."""

    async def scenario() -> None:
        async with running_manager(manager_config(tmp_path / "m", etcd)) as manager:
            worker = await join_cluster(
                manager.endpoint.join_address, await manager.worker_token(), tmp_path / "n"
            )
            renewed = await renew_certificate(manager.endpoint.address, worker, tmp_path / "n")
            assert renewed.role == WORKER

    asyncio.run(scenario())


def test_a_removed_node_is_refused_everywhere(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        cert_dir = tmp_path / "node"
        async with running_manager(manager_config(tmp_path / "m", etcd)) as manager:
            address = manager.endpoint.address
            async with agent_session(manager, cert_dir) as session:
                node_id = session.identity.node_id
                await set_desired_role(manager, node_id, MANAGER)
                await eventually(
                    lambda: (
                        session.identity.role == MANAGER
                        and session.sessions == 2
                        and session.connected.is_set()
                    ),
                    what="in session again with a manager certificate",
                )
                promoted = session.identity
                assert (await list_nodes(address, promoted)).nodes
                # `node rm --force` of a live node: removed and revoked; its session
                # ends at its next heartbeat and no new one is let in.
                async with manager.control() as control:
                    await control.RemoveNode(
                        control_pb2.RemoveNodeRequest(node_id=node_id, force=True), timeout=10
                    )
                await eventually(lambda: not session.connected.is_set(), what="session ended")
            assert not promoted.expired(dt.datetime.now(dt.UTC))  # still valid in time
            removed = f"node {node_id} was removed from the cluster"
            credentials = identity_channel_credentials(promoted)
            async with manager_channel(address, credentials) as channel:
                calls = [
                    control_pb2_grpc.ControlStub(channel).ListNodes(
                        control_pb2.ListNodesRequest(), timeout=10
                    ),
                    dispatcher_pb2_grpc.DispatcherStub(channel).Register(
                        dispatcher_pb2.RegisterRequest(addr="127.0.0.1"), timeout=10
                    ),
                    ca_pb2_grpc.NodeCAStub(channel).IssueNodeCertificate(
                        ca_pb2.IssueNodeCertificateRequest(
                            csr=certificate_request(generate_node_key())
                        ),
                        timeout=10,
                    ),
                ]
                for call in calls:
                    err = await expect_error(call, grpc.StatusCode.PERMISSION_DENIED)
                    assert removed in (err.details() or "")
            # Other certificates (the CLI's) are unaffected.
            async with manager.control() as control:
                nodes = await control.ListNodes(control_pb2.ListNodesRequest(), timeout=10)
            assert node_id not in [n.id for n in nodes.nodes]

    asyncio.run(scenario())
