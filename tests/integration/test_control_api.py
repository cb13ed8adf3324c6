"""The Control API's answers to bad, stale, concurrent and unauthorised calls, and a
manager restart and an etcd outage that lose nothing. Real etcd, real mTLS gRPC."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import grpc

from pyswarm.common.join import join_cluster
from pyswarm.common.node_identity import MANAGER, WORKER
from pyswarm.common.rpc_errors import FIELD_KEY
from pyswarm.common.tls import (
    bootstrap_channel_credentials,
    identity_channel_credentials,
    manager_channel,
)
from pyswarm.manager.ca import ClusterCA
from pyswarm.manager.ca.roots import authorities
from pyswarm.manager.seal import SealingCodec
from pyswarm.manager.seal.keyfile import open_key_file, read_key_file
from pyswarm.manager.store import CLUSTERS, EmbeddedEtcd, Store
from pyswarm.proto import control_pb2, control_pb2_grpc, types_pb2
from tests.harness.etcd import etcd_client
from tests.harness.fake_agent import FakeAgent
from tests.harness.manager import (
    RunningManager,
    expect_error,
    manager_config,
    replicated_spec,
    running_manager,
)
from tests.waiting import eventually


def field_of(err: grpc.aio.AioRpcError) -> str:
    trailing: Any = err.trailing_metadata() or ()
    for key, value in trailing:
        if key == FIELD_KEY:
            return str(value)
    return ""


def test_bad_input_is_refused_and_changes_nothing(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with (
            running_manager(manager_config(tmp_path / "m", etcd)) as manager,
            manager.control() as control,
        ):
            service = await control.CreateService(
                control_pb2.CreateServiceRequest(spec=replicated_spec("web", 2)), timeout=10
            )
            bad = replicated_spec("web2", 1)
            bad.task.container.image = ""
            err = await expect_error(
                control.CreateService(control_pb2.CreateServiceRequest(spec=bad), timeout=10),
                grpc.StatusCode.INVALID_ARGUMENT,
            )
            assert field_of(err) == "task.container.image"
            bad = replicated_spec("bad name!", 1)
            err = await expect_error(
                control.CreateService(control_pb2.CreateServiceRequest(spec=bad), timeout=10),
                grpc.StatusCode.INVALID_ARGUMENT,
            )
            assert field_of(err) == "name"
            bad = replicated_spec("web3", 1)
            bad.task.placement.constraints.append("node.nonsense ~ x")
            err = await expect_error(
                control.CreateService(control_pb2.CreateServiceRequest(spec=bad), timeout=10),
                grpc.StatusCode.INVALID_ARGUMENT,
            )
            assert field_of(err) == "constraint"
            await expect_error(
                control.CreateService(
                    control_pb2.CreateServiceRequest(spec=replicated_spec("web", 1)), timeout=10
                ),
                grpc.StatusCode.ALREADY_EXISTS,
            )
            for call in (
                control.GetService(control_pb2.GetServiceRequest(service_id="nope"), timeout=10),
                control.ScaleService(
                    control_pb2.ScaleServiceRequest(service_id="nope", replicas=1), timeout=10
                ),
                control.GetNode(control_pb2.GetNodeRequest(node_id="nope"), timeout=10),
                control.RemoveService(
                    control_pb2.RemoveServiceRequest(service_id="nope"), timeout=10
                ),
            ):
                await expect_error(call, grpc.StatusCode.NOT_FOUND)

            # A stale update: refused, and nothing changed.
            fresh = replicated_spec("web", 5)
            await control.UpdateService(
                control_pb2.UpdateServiceRequest(
                    service_id=service.id, version=service.meta.version, spec=fresh
                ),
                timeout=10,
            )
            stale = replicated_spec("web", 7)
            err = await expect_error(
                control.UpdateService(
                    control_pb2.UpdateServiceRequest(
                        service_id=service.id, version=service.meta.version, spec=stale
                    ),
                    timeout=10,
                ),
                grpc.StatusCode.FAILED_PRECONDITION,
            )
            assert "out of sequence" in (err.details() or "")
            current = await control.GetService(
                control_pb2.GetServiceRequest(service_id="web"), timeout=10
            )
            assert current.spec.replicated.replicas == 5

            # A global service cannot be scaled.
            spec = replicated_spec("everywhere", 0)
            spec.ClearField("replicated")
            getattr(spec, "global").SetInParent()
            await control.CreateService(control_pb2.CreateServiceRequest(spec=spec), timeout=10)
            await expect_error(
                control.ScaleService(
                    control_pb2.ScaleServiceRequest(service_id="everywhere", replicas=3),
                    timeout=10,
                ),
                grpc.StatusCode.FAILED_PRECONDITION,
            )

            # Concurrent scales: each is applied (one after the other), none lost.
            results = await asyncio.gather(
                *(
                    control.ScaleService(
                        control_pb2.ScaleServiceRequest(service_id="web", replicas=n), timeout=10
                    )
                    for n in (11, 12, 13, 14)
                )
            )
            versions = sorted(result.meta.version for result in results)
            assert len(set(versions)) == 4
            last = max(results, key=lambda r: r.meta.version)
            current = await control.GetService(
                control_pb2.GetServiceRequest(service_id="web"), timeout=10
            )
            assert current.spec.replicated.replicas == last.spec.replicated.replicas

    asyncio.run(scenario())


def test_only_managers_of_this_cluster_may_call_control(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with running_manager(manager_config(tmp_path / "m", etcd)) as manager:
            token = await manager.worker_token()
            worker = await join_cluster(manager.endpoint.join_address, token, tmp_path / "w")
            assert worker.role == WORKER
            credentials = identity_channel_credentials(worker)
            async with manager_channel(manager.endpoint.address, credentials) as channel:
                control = control_pb2_grpc.ControlStub(channel)
                await expect_error(
                    control.ListServices(control_pb2.ListServicesRequest(), timeout=10),
                    grpc.StatusCode.PERMISSION_DENIED,
                )
            # No client certificate: the TLS handshake itself fails.
            anonymous = bootstrap_channel_credentials(manager.client_identity.ca_pem)
            async with manager_channel(manager.endpoint.address, anonymous) as channel:
                control = control_pb2_grpc.ControlStub(channel)
                await expect_error(
                    control.ListServices(control_pb2.ListServicesRequest(), timeout=5),
                    grpc.StatusCode.UNAVAILABLE,
                )
            # A manager certificate from another cluster's CA: refused as well.
            stranger = ClusterCA.create().issue_identity(MANAGER)
            credentials = identity_channel_credentials(stranger)
            async with manager_channel(manager.endpoint.address, credentials) as channel:
                control = control_pb2_grpc.ControlStub(channel)
                await expect_error(
                    control.ListServices(control_pb2.ListServicesRequest(), timeout=5),
                    grpc.StatusCode.UNAVAILABLE,
                )

    asyncio.run(scenario())


def test_a_restarted_manager_loses_nothing(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def snapshot(manager: RunningManager) -> tuple[list[str], list[tuple[str, int]], str]:
        async with manager.control() as control:
            services = await control.ListServices(control_pb2.ListServicesRequest(), timeout=10)
            tasks = await control.ListTasks(control_pb2.ListTasksRequest(), timeout=10)
            info = await control.GetCluster(control_pb2.GetClusterRequest(), timeout=10)
        return (
            sorted(s.id for s in services.services),
            sorted((t.id, t.status.state) for t in tasks.tasks),
            info.cluster_id,
        )

    async def scenario() -> None:
        config = manager_config(tmp_path / "m", etcd)
        agent = FakeAgent("node0", tmp_path / "agent0")
        async with running_manager(config) as manager:
            await agent.join(manager)
            agent.start()
            async with manager.control() as control:
                await control.CreateService(
                    control_pb2.CreateServiceRequest(spec=replicated_spec("db", 3)), timeout=10
                )
            await eventually(lambda: _running(agent, 3), what="3 running")

            async def stored_running() -> bool:
                states = [state for _, state in (await snapshot(manager))[1]]
                return states == [types_pb2.RUNNING] * 3

            # The agent reports before the manager stores: compare what was stored.
            await eventually(stored_running, what="3 running in the store")
            await agent.stop()
            before = await snapshot(manager)
        async with running_manager(config) as manager:
            assert manager.endpoint.cluster_id == before[2]
            after = await snapshot(manager)
            assert after == before
            agent._address = manager.endpoint.address
            agent.start()
            await eventually(lambda: _running(agent, 3), what="3 running again")
            assert await snapshot(manager) == before
            await agent.stop()

    asyncio.run(scenario())


async def _running(agent: FakeAgent, count: int) -> bool:
    return len(agent.running()) == count


def test_etcd_outage_answers_unavailable_and_recovers(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with (
            running_manager(manager_config(tmp_path / "m", etcd)) as manager,
            manager.control() as control,
        ):
            await control.CreateService(
                control_pb2.CreateServiceRequest(spec=replicated_spec("web", 1)), timeout=10
            )
            await asyncio.to_thread(etcd.stop)

            async def unavailable() -> bool:
                try:
                    await control.ListServices(control_pb2.ListServicesRequest(), timeout=10)
                except grpc.aio.AioRpcError as err:
                    return err.code() == grpc.StatusCode.UNAVAILABLE and "cluster store" in (
                        err.details() or ""
                    )
                return False

            await eventually(unavailable, what="UNAVAILABLE while etcd is down")
            await expect_error(
                control.CreateService(
                    control_pb2.CreateServiceRequest(spec=replicated_spec("api", 1)), timeout=15
                ),
                grpc.StatusCode.UNAVAILABLE,
            )
            await asyncio.to_thread(etcd.start)

            async def recovered() -> bool:
                listing = await control.ListServices(control_pb2.ListServicesRequest(), timeout=10)
                return [s.spec.annotations.name for s in listing.services] == ["web"]

            await eventually(recovered, timeout=30, what="the manager serving again")
            await control.CreateService(
                control_pb2.CreateServiceRequest(spec=replicated_spec("api", 1)), timeout=10
            )

    asyncio.run(scenario())


def test_metrics_and_http_sd(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with running_manager(manager_config(tmp_path / "m", etcd)) as manager:
            agent = FakeAgent("node0", tmp_path / "agent0")
            await agent.join(manager)
            agent.start()
            try:
                port = manager.endpoint.metrics_port

                def get(path: str) -> bytes:
                    url = f"http://127.0.0.1:{port}{path}"
                    with urllib.request.urlopen(url, timeout=10) as response:
                        body: bytes = response.read()
                        return body

                async def sd_lists_agent() -> bool:
                    targets = json.loads(await asyncio.to_thread(get, "/sd"))
                    return bool(targets) and targets[0]["targets"] == ["127.0.0.1:9005"]

                await eventually(sd_lists_agent, what="the agent in /sd")
                text = (await asyncio.to_thread(get, "/metrics")).decode()
                assert 'pyswarm_nodes{state="ready"} 1.0' in text
                assert "pyswarm_etcd_request_duration_seconds_count" in text
                assert "pyswarm_services 0.0" in text
            finally:
                await agent.stop()

    asyncio.run(scenario())


def test_the_ca_key_is_kept_sealed_in_etcd_for_every_manager(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario() -> None:
        async with running_manager(manager_config(tmp_path / "m", etcd)) as manager:
            cluster_id = manager.endpoint.cluster_id
            async with etcd_client(etcd) as client:
                raw = await Store(client).get(CLUSTERS, cluster_id)
                record = read_key_file(manager.config.state_dir)
                assert record is not None
                codec = SealingCodec(cluster_id, open_key_file(record))
                cluster = await Store(client, codec=codec).get(CLUSTERS, cluster_id)
            assert not raw.root_ca_key and not raw.worker_join_token and raw.sealed_secrets
            assert authorities(cluster).current.cert_pem == manager.client_identity.ca_pem
            assert cluster.managers[manager.endpoint.manager_id] == manager.endpoint.address
            assert cluster.worker_join_token

    asyncio.run(scenario())
