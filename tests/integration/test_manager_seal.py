"""Secrets at rest: the cluster record and registry passwords are sealed in etcd under
the managers' data key; a further manager fetches that key; autolock keeps a restarted
manager locked until the unlock key is given.

Real etcd, real managers (serve()) on loopback, real gRPC; etcd is read raw to check
that no secret is stored in clear.
"""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from pathlib import Path

import grpc
import pytest

from pyswarm.common.errors import Unavailable
from pyswarm.common.join import join_cluster
from pyswarm.manager.ca import ClusterCA, generate_join_tokens
from pyswarm.manager.seal import DataKey, DataKeyUnavailable, SealingCodec, new_unlock_key
from pyswarm.manager.seal.keyfile import is_locked, key_file_path, read_key_file, write_key_file
from pyswarm.manager.seal.startup import seal_cluster_at_rest
from pyswarm.manager.store import CLUSTERS, SERVICES, TASKS, EmbeddedEtcd, Store
from pyswarm.proto import control_pb2, control_pb2_grpc, seal_pb2, seal_pb2_grpc, types_pb2
from tests.harness.etcd import etcd_client
from tests.harness.etcd_raw import raw_values
from tests.harness.fake_agent import FakeAgent
from tests.harness.manager import (
    RunningManager,
    locked_manager,
    manager_config,
    replicated_spec,
    running_manager,
)
from tests.waiting import eventually

PEM_KEY_HEADER = b"PRIVATE KEY-----"
PASSWORD = "pw-" + uuid.uuid4().hex


async def _etcd_text(etcd: EmbeddedEtcd) -> bytes:
    return b"\n".join(await raw_values(etcd))


async def _tokens(manager: RunningManager) -> control_pb2.JoinTokens:
    async with manager.control() as control:
        return await control.GetJoinTokens(control_pb2.GetJoinTokensRequest(), timeout=10)


def _authed_spec(name: str, replicas: int) -> types_pb2.ServiceSpec:
    spec = replicated_spec(name, replicas)
    auth = spec.task.container.registry_auth
    auth.registry, auth.username, auth.password = "127.0.0.1:5999", "deployer", PASSWORD
    return spec


def test_the_cluster_record_holds_no_secret_in_clear(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with running_manager(manager_config(tmp_path / "m", etcd)) as manager:
            tokens = await _tokens(manager)
            stored = await _etcd_text(etcd)
            assert PEM_KEY_HEADER not in stored
            assert tokens.worker.encode() not in stored
            assert tokens.manager.encode() not in stored
            async with etcd_client(etcd) as client:
                raw = await Store(client).get(CLUSTERS, manager.endpoint.cluster_id)
            assert raw.sealed_secrets and not raw.root_ca_key and not raw.worker_join_token
            mode = stat.S_IMODE(os.stat(key_file_path(manager.config.state_dir)).st_mode)
            assert mode == 0o600
            # The tokens still admit: the manager opens them in memory.
            agent = FakeAgent("node0", tmp_path / "agent0")
            await agent.join(manager)
            assert agent.node_id

    asyncio.run(scenario())


def test_registry_passwords_are_sealed_and_reach_only_their_agent(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario() -> None:
        async with running_manager(manager_config(tmp_path / "m", etcd)) as manager:
            agent = FakeAgent("node0", tmp_path / "agent0")
            await agent.join(manager)
            agent.start()
            try:
                async with manager.control() as control:
                    await control.CreateService(
                        control_pb2.CreateServiceRequest(
                            spec=_authed_spec("authed", 2), no_resolve_image=True
                        ),
                        timeout=10,
                    )
                await eventually(lambda: len(agent.running()) == 2, what="2 tasks running")
                # The agent got the password (over its mutual-TLS session) ...
                assigned = [t.spec.container.registry_auth.password for t in agent.tasks.values()]
                assert assigned == [PASSWORD, PASSWORD]
                # ... etcd holds it in no service nor task.
                assert PASSWORD.encode() not in await _etcd_text(etcd)
            finally:
                await agent.stop()

    asyncio.run(scenario())


def test_an_old_format_record_is_sealed_at_first_start(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    """Records as the code before sealing wrote them: CA key, tokens, a password in clear."""

    async def scenario() -> None:
        ca = ClusterCA.create()
        tokens = generate_join_tokens(ca.fingerprint())
        old = types_pb2.Cluster(
            id=ca.cluster_id,
            root_ca_cert=ca.cert_pem,
            root_ca_key=ca.key_pem(),
            worker_join_token=tokens.worker,
            manager_join_token=tokens.manager,
            node_subnet_pool="10.210.0.0/16",
        )
        service = types_pb2.Service(id="olds1", spec=_authed_spec("old", 1))
        async with etcd_client(etcd) as client:
            plain = Store(client)
            await plain.create(CLUSTERS, old)
            await plain.create(SERVICES, service)
            task = types_pb2.Task(id="oldt1", service_id="olds1", spec=service.spec.task)
            await plain.create(TASKS, task)
        assert tokens.worker.encode() in await _etcd_text(etcd)

        async with running_manager(manager_config(tmp_path / "m", etcd)) as manager:
            assert manager.endpoint.cluster_id == ca.cluster_id
            assert manager.client_identity.ca_pem == ca.cert_pem
            assert await _tokens(manager) == tokens  # the same tokens, now sealed
            stored = await _etcd_text(etcd)
            for secret in (PEM_KEY_HEADER, tokens.worker.encode(), PASSWORD.encode()):
                assert secret not in stored
            async with manager.control() as control:
                listed = await control.ListServices(control_pb2.ListServicesRequest(), timeout=10)
            assert [s.spec.task.container.registry_auth.username for s in listed.services] == [
                "deployer"
            ]

    asyncio.run(scenario())


def test_sealing_an_old_record_loses_to_a_newer_write(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    """The migration compares the record's mod_revision: a manager that read the old
    record before another wrote it seals nothing and drops the key it made."""

    async def scenario() -> None:
        ca = ClusterCA.create()
        old = types_pb2.Cluster(
            id=ca.cluster_id, root_ca_cert=ca.cert_pem, root_ca_key=ca.key_pem()
        )
        config = manager_config(tmp_path / "m", etcd)
        config.state_dir.mkdir()
        async with etcd_client(etcd) as client:
            plain = Store(client)
            await plain.create(CLUSTERS, old)
            stale = await plain.get(CLUSTERS, ca.cluster_id)
            newer = await plain.get(CLUSTERS, ca.cluster_id)
            newer.node_subnet_pool = "10.99.0.0/16"
            await plain.update(CLUSTERS, newer)
            key = DataKey.generate()
            write_key_file(config.state_dir, ca.cluster_id, key)
            codec = SealingCodec(ca.cluster_id, key)
            assert not await seal_cluster_at_rest(plain, codec, stale, config, made_key=True)
            assert read_key_file(config.state_dir) is None
            current = await Store(client).get(CLUSTERS, ca.cluster_id)
            assert current == newer and not current.sealed_secrets
            # Read again, it seals.
            write_key_file(config.state_dir, ca.cluster_id, key)
            assert await seal_cluster_at_rest(plain, codec, current, config, made_key=True)
            raw = await Store(client).get(CLUSTERS, ca.cluster_id)
            assert raw.sealed_secrets and not raw.root_ca_key

    asyncio.run(scenario())


def test_a_further_manager_gets_the_data_key_with_the_manager_token(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario() -> None:
        async with running_manager(manager_config(tmp_path / "m1", etcd)) as first:
            tokens = await _tokens(first)
            # Without a token, or with the worker's, no key: a clear one-line refusal.
            with pytest.raises(DataKeyUnavailable, match="manager join token"):
                async with running_manager(manager_config(tmp_path / "m2", etcd)):
                    pass
            worker = manager_config(tmp_path / "m3", etcd, join_token=tokens.worker)
            with pytest.raises(DataKeyUnavailable, match="worker token"):
                async with running_manager(worker):
                    pass
            for refused in ("m2", "m3"):
                assert read_key_file(tmp_path / refused) is None
            config = await first.further_manager(tmp_path / "m4", etcd)
            async with running_manager(config) as second:
                assert second.endpoint.cluster_id == first.endpoint.cluster_id
                first_key = read_key_file(tmp_path / "m1")
                second_key = read_key_file(tmp_path / "m4")
                assert first_key is not None and second_key is not None
                assert first_key.data_key == second_key.data_key
                assert await _tokens(second) == tokens
                agent = FakeAgent("node0", tmp_path / "agent0")
                await agent.join(second)  # second signs with the CA key it unsealed
                assert agent.node_id

    asyncio.run(scenario())


async def _unlock(locked_channel: grpc.aio.Channel, key: str) -> None:
    stub = seal_pb2_grpc.ManagerUnlockStub(locked_channel)
    await stub.Unlock(seal_pb2.UnlockRequest(unlock_key=key), timeout=10)


async def _refused_with(call: object) -> grpc.aio.AioRpcError:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        return err
    raise AssertionError("the call was answered")


def test_autolock_keeps_a_restarted_manager_locked_until_unlocked(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario() -> None:
        config = manager_config(tmp_path / "m", etcd, autolock=True)
        async with running_manager(config) as manager:
            async with manager.unlock_api() as unlock_api:
                answer = await unlock_api.GetUnlockKey(seal_pb2.UnlockKeyRequest(), timeout=10)
            key = answer.unlock_key
            worker_token = await manager.worker_token()
            assert key.startswith("SWMKEY-1-")
            assert key.encode() not in await _etcd_text(etcd)
        record = read_key_file(config.state_dir)
        assert record is not None and is_locked(record) and not record.data_key

        async with locked_manager(config) as locked:
            async with locked.channel() as channel:
                control = control_pb2_grpc.ControlStub(channel)
                refused = await _refused_with(
                    control.ListServices(control_pb2.ListServicesRequest(), timeout=10)
                )
                assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert refused.details() == "this manager is locked: run swarm unlock"
                wrong = await _refused_with(_unlock(channel, new_unlock_key()))
                assert wrong.code() == grpc.StatusCode.PERMISSION_DENIED
                malformed = await _refused_with(_unlock(channel, "SWMKEY-1-short"))
                assert malformed.code() == grpc.StatusCode.INVALID_ARGUMENT
                # A node cannot join a locked manager either: it is told why.
                with pytest.raises(Unavailable, match="this manager is locked"):
                    await join_cluster(
                        locked.endpoint.join_address, worker_token, tmp_path / "refused"
                    )
                assert not locked.ready.is_set()
                await _unlock(channel, key)
            await eventually(locked.ready.is_set, what="the unlocked manager serving")
            manager = locked.serving()
            agent = FakeAgent("node0", tmp_path / "agent0")
            await agent.join(manager)
            agent.start()
            try:
                async with manager.control() as control:
                    await control.CreateService(
                        control_pb2.CreateServiceRequest(spec=replicated_spec("web", 2)),
                        timeout=10,
                    )
                await eventually(lambda: len(agent.running()) == 2, what="2 tasks scheduled")
            finally:
                await agent.stop()

    asyncio.run(scenario())
