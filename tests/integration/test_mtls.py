"""Mutual TLS and the join flow with real certificates over a real grpc.aio server.

Two ports as the manager will serve them: the main port (mutual TLS: NodeCA and a
`Whoami` method that answers with the caller's verified identity) and the join port
(server-only TLS: NodeCA alone). Every client dials 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import socket
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from grpc import aio

from pyswarm.common.errors import PermissionDenied, Unavailable
from pyswarm.common.join import join_cluster, renew_certificate
from pyswarm.common.join_token import ca_fingerprint, format_join_token, parse_join_token
from pyswarm.common.node_identity import MANAGER, WORKER, NodeIdentity
from pyswarm.common.rpc_errors import ErrorInterceptor
from pyswarm.common.tls import (
    bootstrap_channel_credentials,
    identity_channel_credentials,
    identity_server_credentials,
    manager_channel,
    require_role,
)
from pyswarm.common.trust_errors import InvalidJoinToken, UntrustedRemoteCA
from pyswarm.manager.ca import (
    ClusterCA,
    NodeCAService,
    generate_join_tokens,
    rotate_join_token,
)
from pyswarm.proto import ca_pb2, ca_pb2_grpc, control_pb2

T = TypeVar("T")
WHOAMI = "/pyswarm.test.Whoami/Who"
MANAGERS_ONLY = "/pyswarm.test.Whoami/ManagersOnly"


class CountingNodeCA(NodeCAService):
    """The real servicer, counting the issue calls that reached it."""

    issue_calls = 0

    async def IssueNodeCertificate(
        self, request: ca_pb2.IssueNodeCertificateRequest, context: Any
    ) -> ca_pb2.IssueNodeCertificateResponse:
        self.issue_calls += 1
        return await super().IssueNodeCertificate(request, context)


@dataclass
class Cluster:
    """A CA, its tokens (rotate by assigning `tokens`) and the two listening addresses."""

    ca: ClusterCA
    tokens: control_pb2.JoinTokens
    node_ca: CountingNodeCA = field(init=False)
    main_address: str = ""
    join_address: str = ""
    whoami_calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.node_ca = CountingNodeCA(self.ca, self.current_tokens)

    async def current_tokens(self) -> control_pb2.JoinTokens:
        return self.tokens


async def _whoami(request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
    peer = require_role(context, WORKER, MANAGER)
    answer = {"node_id": peer.node_id, "role": peer.role, "cluster": peer.cluster_id}
    return json.dumps(answer).encode()


async def _managers_only(request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
    return require_role(context, MANAGER).node_id.encode()


def _raw_handler(behavior: Callable[..., Awaitable[Any]]) -> grpc.RpcMethodHandler[bytes, bytes]:
    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=lambda data: data,
        response_serializer=lambda data: data,
    )


@asynccontextmanager
async def running_cluster() -> AsyncIterator[Cluster]:
    ca = ClusterCA.create()
    cluster = Cluster(ca, generate_join_tokens(ca.fingerprint()))
    manager = ca.issue_identity(MANAGER)

    async def whoami(request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
        cluster.whoami_calls.append("called")
        return await _whoami(request, context)

    handlers = {"Who": _raw_handler(whoami), "ManagersOnly": _raw_handler(_managers_only)}
    main = aio.server(interceptors=[ErrorInterceptor()])
    whoami_service = grpc.method_handlers_generic_handler("pyswarm.test.Whoami", handlers)
    main.add_generic_rpc_handlers((whoami_service,))
    ca_pb2_grpc.add_NodeCAServicer_to_server(cluster.node_ca, main)
    main_port = main.add_secure_port("127.0.0.1:0", identity_server_credentials(manager))
    join = aio.server(interceptors=[ErrorInterceptor()])
    ca_pb2_grpc.add_NodeCAServicer_to_server(cluster.node_ca, join)
    join_credentials = identity_server_credentials(manager, require_client_auth=False)
    join_port = join.add_secure_port("127.0.0.1:0", join_credentials)
    cluster.main_address = f"127.0.0.1:{main_port}"
    cluster.join_address = f"127.0.0.1:{join_port}"
    await main.start()
    await join.start()
    try:
        yield cluster
    finally:
        await main.stop(None)
        await join.stop(None)


def run(scenario: Callable[[Cluster], Awaitable[T]]) -> T:
    async def body() -> T:
        async with running_cluster() as cluster:
            return await scenario(cluster)

    return asyncio.run(body())


def _raw(channel: aio.Channel, method: str) -> aio.UnaryUnaryMultiCallable[bytes, bytes]:
    """A bytes-in, bytes-out callable for one of the test service's methods."""
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)


async def call_whoami(address: str, credentials: grpc.ChannelCredentials) -> dict[str, Any]:
    async with manager_channel(address, credentials) as channel:
        answer = await _raw(channel, WHOAMI)(b"", timeout=10)
    result: dict[str, Any] = json.loads(answer)
    return result


def test_a_node_of_the_cluster_is_served_and_seen_by_name() -> None:
    async def scenario(cluster: Cluster) -> tuple[NodeIdentity, dict[str, Any]]:
        worker = cluster.ca.issue_identity(WORKER)
        return worker, await call_whoami(cluster.main_address, identity_channel_credentials(worker))

    worker, seen = run(scenario)
    assert seen == {"node_id": worker.node_id, "role": WORKER, "cluster": worker.cluster_id}


def test_a_certificate_from_another_cluster_fails_the_handshake() -> None:
    async def scenario(cluster: Cluster) -> tuple[grpc.StatusCode, list[str]]:
        stranger = ClusterCA.create().issue_identity(MANAGER)
        # It trusts our root (as if it had stolen ca.crt), but its own cert is foreign.
        credentials = grpc.ssl_channel_credentials(
            root_certificates=cluster.ca.cert_pem,
            private_key=stranger.key_pem,
            certificate_chain=stranger.cert_pem,
        )
        with pytest.raises(aio.AioRpcError) as refused:
            await call_whoami(cluster.main_address, credentials)
        return refused.value.code(), cluster.whoami_calls

    code, calls = run(scenario)
    assert code == grpc.StatusCode.UNAVAILABLE
    assert calls == []


def test_a_client_without_a_certificate_fails_the_handshake() -> None:
    async def scenario(cluster: Cluster) -> tuple[grpc.StatusCode, list[str]]:
        credentials = bootstrap_channel_credentials(cluster.ca.cert_pem)
        with pytest.raises(aio.AioRpcError) as refused:
            await call_whoami(cluster.main_address, credentials)
        return refused.value.code(), cluster.whoami_calls

    code, calls = run(scenario)
    assert code == grpc.StatusCode.UNAVAILABLE
    assert calls == []


def test_a_worker_is_denied_a_managers_only_method() -> None:
    async def scenario(cluster: Cluster) -> tuple[aio.AioRpcError, bytes]:
        worker = cluster.ca.issue_identity(WORKER)
        manager = cluster.ca.issue_identity(MANAGER)
        async with manager_channel(
            cluster.main_address, identity_channel_credentials(worker)
        ) as channel:
            with pytest.raises(aio.AioRpcError) as denied:
                await _raw(channel, MANAGERS_ONLY)(b"", timeout=10)
        async with manager_channel(
            cluster.main_address, identity_channel_credentials(manager)
        ) as channel:
            allowed: bytes = await _raw(channel, MANAGERS_ONLY)(b"", timeout=10)
        assert allowed == manager.node_id.encode()
        return denied.value, allowed

    denied, _ = run(scenario)
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "is a worker" in (denied.details() or "")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_join_then_call_over_mutual_tls(tmp_path: Path) -> None:
    cert_dir = tmp_path / "certificates"

    async def scenario(cluster: Cluster) -> tuple[NodeIdentity, dict[str, Any], str]:
        identity = await join_cluster(cluster.join_address, cluster.tokens.worker, cert_dir)
        seen = await call_whoami(cluster.main_address, identity_channel_credentials(identity))
        return identity, seen, cluster.ca.cluster_id

    identity, seen, cluster_id = run(scenario)
    assert identity.role == WORKER
    assert identity.cluster_id == cluster_id
    assert seen["node_id"] == identity.node_id and seen["role"] == WORKER
    assert NodeIdentity.load(cert_dir) == identity
    assert _mode(cert_dir) == 0o700
    assert _mode(cert_dir / "node.key") == 0o600


def test_the_manager_token_makes_a_manager(tmp_path: Path) -> None:
    async def scenario(cluster: Cluster) -> NodeIdentity:
        return await join_cluster(cluster.join_address, cluster.tokens.manager, tmp_path)

    assert run(scenario).role == MANAGER


def test_a_token_of_another_cluster_is_refused_before_the_secret_is_sent(
    tmp_path: Path,
) -> None:
    async def scenario(cluster: Cluster) -> tuple[str, int]:
        other_cluster = generate_join_tokens(ClusterCA.create().fingerprint())
        with pytest.raises(UntrustedRemoteCA) as refused:
            await join_cluster(cluster.join_address, other_cluster.worker, tmp_path / "certs")
        return str(refused.value), cluster.node_ca.issue_calls

    message, issue_calls = run(scenario)
    assert "does not match the join token's fingerprint" in message
    assert issue_calls == 0
    assert not (tmp_path / "certs").exists()


def test_a_wrong_secret_is_refused_and_nothing_is_issued(tmp_path: Path) -> None:
    async def scenario(cluster: Cluster) -> tuple[PermissionDenied, int]:
        forged = format_join_token(cluster.ca.fingerprint(), "0" * 25)
        with pytest.raises(PermissionDenied) as refused:
            await join_cluster(cluster.join_address, forged, tmp_path / "certs")
        return refused.value, cluster.node_ca.issue_calls

    refusal, issue_calls = run(scenario)
    assert "refused" in str(refusal) and "invalid join token" in str(refusal)
    assert issue_calls == 1  # it reached the CA, which said no
    assert not (tmp_path / "certs").exists()


def test_a_rotated_token_no_longer_joins(tmp_path: Path) -> None:
    async def scenario(cluster: Cluster) -> NodeIdentity:
        old = cluster.tokens.worker
        cluster.tokens = rotate_join_token(cluster.tokens, WORKER)
        with pytest.raises(PermissionDenied):
            await join_cluster(cluster.join_address, old, tmp_path / "old")
        return await join_cluster(cluster.join_address, cluster.tokens.worker, tmp_path / "new")

    assert run(scenario).role == WORKER


def test_a_malformed_token_is_refused_without_dialling(tmp_path: Path) -> None:
    async def scenario(cluster: Cluster) -> int:
        with pytest.raises(InvalidJoinToken) as refused:
            await join_cluster(cluster.join_address, "SWMTKN-1-short-secret", tmp_path)
        assert refused.value.field == "token"
        return cluster.node_ca.issue_calls

    assert run(scenario) == 0


def test_the_join_port_wants_a_token() -> None:
    async def scenario(cluster: Cluster) -> aio.AioRpcError:
        credentials = bootstrap_channel_credentials(cluster.ca.cert_pem)
        async with manager_channel(cluster.join_address, credentials) as channel:
            stub = ca_pb2_grpc.NodeCAStub(channel)
            request = ca_pb2.IssueNodeCertificateRequest(csr=b"not a csr")
            with pytest.raises(aio.AioRpcError) as refused:
                await stub.IssueNodeCertificate(request, timeout=10)
        return refused.value

    refused = run(scenario)
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "join token is required" in (refused.details() or "")


def test_a_bad_csr_is_invalid_argument(tmp_path: Path) -> None:
    async def scenario(cluster: Cluster) -> aio.AioRpcError:
        credentials = bootstrap_channel_credentials(cluster.ca.cert_pem)
        async with manager_channel(cluster.join_address, credentials) as channel:
            stub = ca_pb2_grpc.NodeCAStub(channel)
            request = ca_pb2.IssueNodeCertificateRequest(
                token=cluster.tokens.worker, csr=b"not a csr"
            )
            with pytest.raises(aio.AioRpcError) as refused:
                await stub.IssueNodeCertificate(request, timeout=10)
        return refused.value

    refused = run(scenario)
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "certificate signing request" in (refused.details() or "")


def test_renewal_over_mutual_tls_keeps_the_node_id(tmp_path: Path) -> None:
    async def scenario(cluster: Cluster) -> tuple[NodeIdentity, NodeIdentity]:
        joined = await join_cluster(cluster.join_address, cluster.tokens.worker, tmp_path)
        renewed = await renew_certificate(cluster.main_address, joined, tmp_path)
        return joined, renewed

    joined, renewed = run(scenario)
    assert renewed.node_id == joined.node_id and renewed.role == WORKER
    assert renewed.key_pem != joined.key_pem
    assert NodeIdentity.load(tmp_path) == renewed


def test_the_root_is_served_to_the_join_port_and_pinned_by_the_token() -> None:
    async def scenario(cluster: Cluster) -> tuple[bytes, bytes]:
        credentials = bootstrap_channel_credentials(cluster.ca.cert_pem)
        async with manager_channel(cluster.join_address, credentials) as channel:
            stub = ca_pb2_grpc.NodeCAStub(channel)
            answer = await stub.GetRootCACertificate(
                ca_pb2.GetRootCACertificateRequest(), timeout=10
            )
        return answer.certificate, parse_join_token(cluster.tokens.worker).ca_digest

    root, pinned = run(scenario)
    assert ca_fingerprint(root) == pinned


def test_an_unreachable_manager_is_unavailable(tmp_path: Path) -> None:
    async def scenario(cluster: Cluster) -> str:
        closed = f"127.0.0.1:{_closed_port()}"
        with pytest.raises(Unavailable) as unreachable:
            await join_cluster(closed, cluster.tokens.worker, tmp_path)
        return str(unreachable.value)

    assert "cannot reach the manager" in run(scenario)


def _closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
