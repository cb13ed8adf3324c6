"""`swarm ca --rotate` against a real manager, real etcd and real agent sessions over
mutual TLS: both nodes renew onto the new root while both roots are trusted, the
rotation finishes by itself once they have, the old root is refused afterwards, and
the join tokens point at the new root."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import grpc
from cryptography import x509

from pyswarm.common.join import join_cluster
from pyswarm.common.join_token import parse_join_token
from pyswarm.common.node_identity import NodeIdentity, issuer_key_id_hex, key_id_hex
from pyswarm.common.tls import identity_channel_credentials, manager_channel
from pyswarm.manager.store import EmbeddedEtcd
from pyswarm.proto import control_pb2, dispatcher_pb2, dispatcher_pb2_grpc
from tests.harness.certificates import (
    agent_session,
    presented_certificate,
)
from tests.harness.manager import RunningManager, expect_error, manager_config, running_manager
from tests.waiting import eventually


def test_rotate_moves_every_node_to_the_new_root_and_drops_the_old(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario() -> None:
        async with (
            running_manager(manager_config(tmp_path / "m", etcd)) as manager,
            agent_session(manager, tmp_path / "a", seed=1) as first,
            agent_session(manager, tmp_path / "b", seed=2) as second,
        ):
            sessions = (first, second)
            old_root = (await manager.root_ca()).root_ca_certificate
            old_identity = first.identity
            tokens_before = await manager.tokens()
            async with manager.control() as control:
                started = await control.RotateRootCA(control_pb2.RotateRootCARequest(), timeout=10)
                assert started.root_rotation == 1 and started.next_root_ca_certificate
                assert started.root_ca_certificate == old_root
                # One rotation at a time.
                err = await expect_error(
                    control.RotateRootCA(control_pb2.RotateRootCARequest(), timeout=10),
                    grpc.StatusCode.FAILED_PRECONDITION,
                )
                assert "already in progress" in (err.details() or "")
            new_root_pem = bytes(started.next_root_ca_certificate)
            new_key_id = key_id_hex(x509.load_pem_x509_certificate(new_root_pem))

            await eventually(
                lambda: all(s.identity.signed_by(new_key_id) for s in sessions),
                what="both nodes holding a certificate of the new root",
            )

            async def finished() -> bool:
                status = await manager.root_ca()
                return not status.next_root_ca_certificate

            await eventually(finished, what="the rotation to finish")
            status = await manager.root_ca()
            assert status.root_ca_certificate == new_root_pem
            assert (status.nodes_total, status.nodes_done) == (2, 2)
            await eventually(
                lambda: all(
                    s.identity.ca_pem == new_root_pem and s.connected.is_set() for s in sessions
                ),
                what="both nodes trusting the new root alone, in session",
            )
            assert {s.identity.node_id for s in sessions} == {
                old_identity.node_id,
                second.identity.node_id,
            }  # the same nodes, renewed, not rejoined

            # The manager presents a certificate of the new root, the CLI identity on its
            # host is of the new root and trusts nothing else.
            async def manager_on_new_root() -> bool:
                leaf = await presented_certificate(manager.endpoint.join_address)
                return issuer_key_id_hex(leaf) == new_key_id

            await eventually(manager_on_new_root, what="the manager on the new root")

            def client_on_new_root() -> NodeIdentity | None:
                current = manager.client_identity
                return current if current.ca_pem == new_root_pem else None

            client = await eventually(client_on_new_root, what="the CLI identity on the new root")
            assert client.signed_by(new_key_id)

            # A certificate of the old root is refused, even by a client that trusts the
            # new root (so it is the manager that refuses it).
            stale = dataclasses.replace(old_identity, ca_pem=new_root_pem)
            async with manager_channel(
                manager.endpoint.address, identity_channel_credentials(stale)
            ) as channel:
                await expect_error(
                    dispatcher_pb2_grpc.DispatcherStub(channel).Register(
                        dispatcher_pb2.RegisterRequest(addr="127.0.0.1"), timeout=10
                    ),
                    grpc.StatusCode.UNAVAILABLE,
                )

            # Join tokens keep their secrets and now pin the new root: a new node joins.
            tokens_after = await manager.tokens()
            before = parse_join_token(tokens_before.worker)
            after = parse_join_token(tokens_after.worker)
            assert after.secret == before.secret and after.ca_digest != before.ca_digest
            joined = await join_cluster(
                manager.endpoint.join_address, tokens_after.worker, tmp_path / "c"
            )
            assert joined.signed_by(new_key_id) and joined.ca_pem == new_root_pem

    asyncio.run(scenario())


def test_every_manager_moves_to_the_new_root(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    """Two managers of one cluster, no nodes: the rotation ends at once and both present
    a certificate of the new root, the one that did not take the call as well."""

    async def scenario() -> None:
        async with running_manager(manager_config(tmp_path / "m1", etcd)) as first:
            # A further manager fetches the sealed cluster's data key with the manager token.
            async with first.control() as control:
                tokens = await control.GetJoinTokens(control_pb2.GetJoinTokensRequest(), timeout=10)
            further = dataclasses.replace(
                manager_config(tmp_path / "m2", etcd), join_token=tokens.manager
            )
            async with running_manager(further) as second:
                await _rotate_both(first, second)

    asyncio.run(scenario())


async def _rotate_both(first: RunningManager, second: RunningManager) -> None:
    assert first.endpoint.cluster_id == second.endpoint.cluster_id
    async with first.control() as control:
        started = await control.RotateRootCA(control_pb2.RotateRootCARequest(), timeout=10)
    new_root = bytes(started.next_root_ca_certificate)
    new_key_id = key_id_hex(x509.load_pem_x509_certificate(new_root))

    async def both_on_new_root() -> bool:
        for manager in (first, second):
            leaf = await presented_certificate(manager.endpoint.join_address)
            if issuer_key_id_hex(leaf) != new_key_id:
                return False
        return True

    await eventually(both_on_new_root, what="both managers on the new root")
    for manager in (first, second):
        status = await manager.root_ca()
        assert status.root_ca_certificate == new_root
        assert not status.next_root_ca_certificate
        assert manager.client_identity.ca_pem == new_root
