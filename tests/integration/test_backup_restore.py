"""`swarm backup` and `init --restore`: a cluster saved, destroyed and brought back.

A real manager with its embedded etcd, a fake agent (a real Dispatcher client); the
backup is taken through ClusterBackup and the restore goes through the CLI's own
function into a new state dir, then a manager starts there on the same ports: every
service, network, secret and config is back with its id and spec, and the agent (its
certificate from the same CA) reconnects and runs its tasks. A corrupt file, something
that is no backup and another cluster's backup are refused, changing nothing.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import stat
import sys
from pathlib import Path

import pytest

from pyswarm.cli.swarm_backup import restore_backup
from pyswarm.common.secure_files import write_private_file
from pyswarm.common.tls import identity_channel_credentials, manager_channel
from pyswarm.manager.config import ManagerConfig
from pyswarm.manager.recovery import BackupRefused
from pyswarm.manager.seal import new_unlock_key
from pyswarm.manager.seal.keyfile import is_locked, open_key_file, read_key_file
from pyswarm.proto import backup_pb2, backup_pb2_grpc, control_pb2, seal_pb2, types_pb2
from tests.harness.cluster_agent import free_port_pair
from tests.harness.fake_agent import FakeAgent
from tests.harness.ha_managers import embedded_config
from tests.harness.manager import RunningManager, replicated_spec, running_manager
from tests.harness.manager_cli import Cli
from tests.waiting import eventually

State = dict[str, dict[str, bytes]]


def _config(state_dir: Path, port: int, **overrides: object) -> ManagerConfig:
    return embedded_config(
        state_dir,
        listen_addr=f"127.0.0.1:{port}",
        join_addr=f"127.0.0.1:{port + 1}",
        **overrides,
    )


async def _backup(manager: RunningManager, file: Path) -> None:
    credentials = identity_channel_credentials(manager.client_identity)
    async with manager_channel(manager.endpoint.address, credentials) as channel:
        stub = backup_pb2_grpc.ClusterBackupStub(channel)
        data = b"".join([c.data async for c in stub.Backup(backup_pb2.BackupRequest())])
    write_private_file(file, data)


async def _state(manager: RunningManager) -> State:
    """Every service, network, secret and config: spec bytes by id."""
    async with manager.control() as control:
        services = (await control.ListServices(control_pb2.ListServicesRequest())).services
        networks = (await control.ListNetworks(control_pb2.ListNetworksRequest())).networks
        secrets = (await control.ListSecrets(control_pb2.ListSecretsRequest())).secrets
        configs = (await control.ListConfigs(control_pb2.ListConfigsRequest())).configs
    return {
        kind: {o.id: o.spec.SerializeToString(deterministic=True) for o in objects}
        for kind, objects in (
            ("services", services),
            ("networks", networks),
            ("secrets", secrets),
            ("configs", configs),
        )
    }


async def _has_ingress(manager: RunningManager) -> bool:
    async with manager.control() as control:
        networks = (await control.ListNetworks(control_pb2.ListNetworksRequest())).networks
    return any(n.spec.annotations.name == "ingress" for n in networks)


async def _populate(manager: RunningManager) -> None:
    # The ingress network first: a network created while the leader makes it may race
    # it for the first subnet.
    await eventually(lambda: _has_ingress(manager), what="the ingress network")
    async with manager.control() as control:
        network = types_pb2.NetworkSpec(driver="overlay", attachable=True)
        network.annotations.name = "backend"
        await control.CreateNetwork(control_pb2.CreateNetworkRequest(spec=network))
        secret = types_pb2.SecretSpec(data=b"s3cret")
        secret.annotations.name = "db-password"
        await control.CreateSecret(control_pb2.CreateSecretRequest(spec=secret))
        config = types_pb2.ConfigSpec(data=b"listen 80")
        config.annotations.name = "nginx.conf"
        await control.CreateConfig(control_pb2.CreateConfigRequest(spec=config))
        for name, replicas in (("web", 3), ("db", 1)):
            await control.CreateService(
                control_pb2.CreateServiceRequest(spec=replicated_spec(name, replicas))
            )


async def _tasks_running_on(manager: RunningManager, node_id: str, count: int) -> bool:
    async with manager.control() as control:
        tasks = (await control.ListTasks(control_pb2.ListTasksRequest())).tasks
        node = await control.GetNode(control_pb2.GetNodeRequest(node_id=node_id))
    running = [t for t in tasks if t.status.state == types_pb2.RUNNING and t.node_id == node_id]
    return node.status.state == types_pb2.NodeStatus.READY and len(running) == count


def _listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def test_backup_destroy_restore_brings_every_service_back(tmp_path: Path) -> None:
    port = free_port_pair()
    file = tmp_path / "swarm.backup"
    agent = FakeAgent("node0", tmp_path / "agent0")

    async def scenario() -> None:
        async with running_manager(_config(tmp_path / "m1", port)) as manager:
            await agent.join(manager)
            agent.start()
            await _populate(manager)
            await eventually(lambda: len(agent.running()) == 4, what="4 tasks running")
            before = await _state(manager)
            cluster_id = manager.endpoint.cluster_id
            await _backup(manager, file)
        try:
            assert stat.S_IMODE(file.stat().st_mode) == 0o600
            assert b"s3cret" not in file.read_bytes(), "secrets stay sealed in the backup"
            shutil.rmtree(tmp_path / "m1")  # the manager's host is gone
            restored = _config(tmp_path / "m2", port)
            await asyncio.to_thread(restore_backup, restored, file)
            async with running_manager(restored) as manager:
                assert manager.endpoint.cluster_id == cluster_id
                assert await _state(manager) == before
                # The agent's certificate is still good: it reconnects and runs them.
                await eventually(
                    lambda: _tasks_running_on(manager, agent.node_id, 4),
                    timeout=30,
                    what="the agent back with its 4 tasks",
                )
                async with manager.control() as control:
                    await control.ScaleService(
                        control_pb2.ScaleServiceRequest(service_id="web", replicas=5)
                    )
                await eventually(lambda: len(agent.running()) == 6, what="writes work again")
        finally:
            await agent.stop()

    asyncio.run(scenario())


def test_a_corrupt_or_foreign_backup_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours.backup", tmp_path / "theirs.backup"

    async def backups() -> None:
        async with running_manager(_config(tmp_path / "a", free_port_pair())) as manager:
            await _backup(manager, ours)
        async with running_manager(_config(tmp_path / "b", free_port_pair())) as manager:
            await _backup(manager, theirs)

    asyncio.run(backups())
    target = tmp_path / "b"  # holds cluster b now
    before = _listing(target)
    data = ours.read_bytes()
    corrupt = tmp_path / "corrupt.backup"
    corrupt.write_bytes(
        data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1 :]
    )
    not_a_backup = tmp_path / "notes.txt"
    not_a_backup.write_text("hello\n")
    empty = tmp_path / "empty"
    for file, words in (
        (corrupt, "corrupt"),
        (not_a_backup, "not a pyswarm backup"),
    ):
        with pytest.raises(BackupRefused, match=words):
            restore_backup(_config(empty, free_port_pair()), file)
        assert not empty.exists(), "a refused restore makes nothing"
    with pytest.raises(BackupRefused, match="holds cluster"):
        restore_backup(_config(target, free_port_pair()), ours)
    with pytest.raises(BackupRefused, match="already holds a cluster"):
        restore_backup(_config(target, free_port_pair()), theirs)
    assert _listing(target) == before, "the cluster there is untouched"


def test_a_locked_backup_through_the_cli_restores_with_its_unlock_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port_pair()
    file = tmp_path / "locked.backup"

    async def take() -> tuple[str, State]:
        async with running_manager(_config(tmp_path / "m1", port, autolock=True)) as manager:
            await _populate(manager)
            async with manager.unlock_api() as unlock:
                answer = await unlock.GetUnlockKey(seal_pb2.UnlockKeyRequest(), timeout=10)
            await Cli(manager, tmp_path / "cli").ok("swarm", "backup", str(file))
            return answer.unlock_key, await _state(manager)

    unlock_key, before = asyncio.run(take())
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    restored = _config(tmp_path / "m2", port)
    # A wrong unlock key (read from stdin, as `swarm unlock` reads it) opens nothing.
    monkeypatch.setattr(sys, "stdin", io.StringIO(new_unlock_key() + "\n"))
    with pytest.raises(BackupRefused, match="does not open this backup"):
        restore_backup(restored, file)
    assert not restored.state_dir.exists()
    monkeypatch.setattr(sys, "stdin", io.StringIO(unlock_key + "\n"))
    restore_backup(restored, file)

    async def check() -> None:
        async with running_manager(restored) as manager:
            assert await _state(manager) == before
            # Autolock is still on: the key file is locked again under the same key.
            record = await eventually(
                lambda: _locked_key_file(restored.state_dir), what="the key file locked"
            )
            assert open_key_file(record, unlock_key).raw()

    asyncio.run(check())


def _locked_key_file(state_dir: Path) -> seal_pb2.SealedDataKeyFile | None:
    record = read_key_file(state_dir)
    return record if record is not None and is_locked(record) else None
