"""Certificates renew themselves, against a real manager, real etcd and real mutual TLS,
with the cluster's time on an injected clock: an agent renews at its jittered point and
its session carries on; a manager's server certificate renews and new connections get
it while open ones carry on; `--cert-expiry` is bounded and used for what is issued
next; a node whose certificate expired while it was off is told, once, to rejoin."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509

from pyswarm.agent.cluster.state import ClusterState, cluster_dir
from pyswarm.common.clock import ManualClock
from pyswarm.common.join import join_cluster
from pyswarm.common.node_identity import WORKER, NodeIdentity
from pyswarm.common.rpc_errors import FIELD_KEY
from pyswarm.manager.ca import ClusterCA
from pyswarm.manager.ca.authority import CLOCK_SKEW, NODE_LIFETIME
from pyswarm.manager.store import EmbeddedEtcd
from pyswarm.proto import control_pb2, types_pb2
from tests.harness.agent_process import AgentProcess
from tests.harness.certificates import (
    RunningExecutor,
    agent_session,
    past_clock,
    presented_certificate,
)
from tests.harness.manager import RunningManager, expect_error, manager_config, running_manager
from tests.waiting import eventually


async def running_tasks(manager: RunningManager) -> set[str]:
    async with manager.control() as control:
        tasks = await control.ListTasks(control_pb2.ListTasksRequest(), timeout=10)
    return {t.id for t in tasks.tasks if t.status.state == types_pb2.RUNNING}


async def run_service(manager: RunningManager, replicas: int) -> set[str]:
    """A service of `replicas` tasks, once they all run; their ids."""
    spec = types_pb2.ServiceSpec()
    spec.annotations.name = "steady"
    spec.task.container.image = "busybox:latest"
    spec.task.container.command.extend(["sleep", "1000"])
    spec.replicated.replicas = replicas
    async with manager.control() as control:
        await control.CreateService(control_pb2.CreateServiceRequest(spec=spec), timeout=10)

    async def all_running() -> set[str] | None:
        ids = await running_tasks(manager)
        return ids if len(ids) == replicas else None

    return await eventually(all_running, what=f"{replicas} tasks running")


def test_an_agent_renews_at_its_jittered_point_and_stays_in_session(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario() -> None:
        clock = past_clock()
        node_dir = tmp_path / "node"
        executor = RunningExecutor()
        async with (
            running_manager(manager_config(tmp_path / "m", etcd), clock) as manager,
            agent_session(manager, node_dir, clock, seed=11, executor=executor) as session,
        ):
            running = await run_service(manager, replicas=2)
            first = session.identity
            life = first.not_after - first.not_before
            # The point is SwarmKit's: a random draw between 50 % and 80 % of the life.
            assert session.renew_at == first.jittered_renewal(random.Random(11))
            assert first.not_before + life / 2 <= session.renew_at <= first.not_before + life * 0.8
            assert session.renewals == 0 and session.sessions == 1

            point = session.renew_at
            await clock.set(point)
            await eventually(
                lambda: session.renewals == 1 and session.connected.is_set(),
                what="the renewed certificate in session",
            )
            renewed = session.identity
            assert renewed.node_id == first.node_id and renewed.role == WORKER
            assert renewed.cert_pem != first.cert_pem
            # Issued at the clock's time, and saved for the next agent start.
            assert renewed.not_before == (point - CLOCK_SKEW).replace(microsecond=0)
            assert NodeIdentity.load(node_dir).cert_pem == renewed.cert_pem
            assert session.sessions == 2  # it reconnected with the new certificate
            assert session.renew_at > clock.now()  # the next point is ahead again

            async def recorded() -> bool:
                async with manager.control() as control:
                    nodes = await control.ListNodes(control_pb2.ListNodesRequest(), timeout=10)
                node = next(n for n in nodes.nodes if n.id == first.node_id)
                return node.certificate.not_after.ToDatetime(tzinfo=dt.UTC) == renewed.not_after

            await eventually(recorded, what="node inspect showing the renewed certificate")
            # Its tasks ran on: the same tasks, running, each started once.
            assert await running_tasks(manager) == running
            assert executor.starts == dict.fromkeys(running, 1)

    asyncio.run(scenario())


def test_a_manager_renews_its_server_certificate_for_new_connections(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario() -> None:
        clock = past_clock()
        async with running_manager(manager_config(tmp_path / "m", etcd), clock) as manager:
            before = await presented_certificate(manager.endpoint.join_address)
            client_before = manager.client_identity
            async with manager.control(client_before) as open_connection:
                await open_connection.ListNodes(control_pb2.ListNodesRequest(), timeout=10)
                life = before.not_valid_after_utc - before.not_valid_before_utc
                # Past the latest point (80 %) of both the server and the CLI certificate.
                await clock.set(before.not_valid_before_utc + life * 0.8 + dt.timedelta(minutes=1))

                async def renewed_on_handshake() -> x509.Certificate | None:
                    cert = await presented_certificate(manager.endpoint.join_address)
                    return cert if cert.serial_number != before.serial_number else None

                after = await eventually(renewed_on_handshake, what="a renewed server cert")
                assert after.subject == before.subject  # the same manager
                assert after.not_valid_before_utc > before.not_valid_before_utc
                main = await presented_certificate(manager.endpoint.address)
                assert main.serial_number == after.serial_number  # both ports
                # The connection opened before the renewal carries on.
                await open_connection.ListNodes(control_pb2.ListNodesRequest(), timeout=10)

            # The CLI identity on this host was renewed too, and new connections verify
            # the renewed server certificate against the cluster root.
            def renewed_client() -> NodeIdentity | None:
                current = manager.client_identity
                return current if current.not_before > client_before.not_before else None

            client_after = await eventually(renewed_client, what="the CLI identity renewed")
            assert client_after.node_id == client_before.node_id
            async with manager.control(client_after) as control:
                await control.ListNodes(control_pb2.ListNodesRequest(), timeout=10)

    asyncio.run(scenario())


def _cli(manager_address: str, cert_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PYSWARM_HOST": manager_address, "PYSWARM_CERT_DIR": str(cert_dir)}
    return subprocess.run(
        [sys.executable, "-m", "pyswarm.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


def test_cert_expiry_is_at_least_an_hour_and_sets_the_next_certificates_life(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario() -> None:
        async with running_manager(manager_config(tmp_path / "m", etcd)) as manager:
            address, client_dir = manager.endpoint.address, manager.config.client_dir
            for bad, why in (("59m", "at least 1h"), ("soon", "a duration such as")):
                result = await asyncio.to_thread(
                    _cli, address, client_dir, "swarm", "update", "--cert-expiry", bad
                )
                assert result.returncode != 0
                assert len(result.stderr.strip().splitlines()) == 1, result.stderr
                assert "--cert-expiry" in result.stderr and why in result.stderr
            request = control_pb2.UpdateCertificateExpiryRequest()
            request.expiry.FromTimedelta(dt.timedelta(minutes=30))
            async with manager.control() as control:
                err = await expect_error(
                    control.UpdateCertificateExpiry(request, timeout=10),
                    grpc.StatusCode.INVALID_ARGUMENT,
                )
            trailing: Any = err.trailing_metadata() or ()
            assert (FIELD_KEY, "--cert-expiry") in [tuple(item) for item in trailing]
            assert (await manager.root_ca()).node_cert_expiry.ToTimedelta() == NODE_LIFETIME

            result = await asyncio.to_thread(
                _cli, address, client_dir, "swarm", "update", "--cert-expiry", "1h30m"
            )
            assert result.returncode == 0 and result.stdout == "Swarm updated.\n", result.stderr
            expiry = dt.timedelta(hours=1, minutes=30)
            assert (await manager.root_ca()).node_cert_expiry.ToTimedelta() == expiry
            worker = await join_cluster(
                manager.endpoint.join_address, (await manager.tokens()).worker, tmp_path / "n"
            )
            assert worker.not_after - worker.not_before == expiry + CLOCK_SKEW

    asyncio.run(scenario())


def test_a_node_whose_certificate_expired_while_off_is_told_to_rejoin(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path / "agent")
    agent.root.mkdir()
    try:
        # A membership whose certificate ran out an hour ago (issued on a clock 3 h back).
        issued_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
        ca = ClusterCA.create(clock=ManualClock(issued_at))
        identity = ca.issue_identity(WORKER, lifetime=dt.timedelta(hours=2) - CLOCK_SKEW)
        directory = cluster_dir(agent.state_dir)
        identity.save(directory)
        ClusterState(directory, managers=["127.0.0.1:9"], node_id=identity.node_id).save()

        result = agent.cli("agent", *agent.flags(), check=False, timeout=60)
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        expired = f"{identity.not_after:%Y-%m-%d %H:%M:%S} UTC"
        assert lines == [
            f"Error: this node's certificate expired on {expired}; "
            "leave and join again with a join token"
        ]
    finally:
        agent.close()
