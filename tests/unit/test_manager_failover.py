"""The CLI's failover on a manager's UNAVAILABLE answer: real gRPC servers on loopback,
one answering as a manager without quorum does, the next as a healthy one."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from pyswarm.common.manager_failover import ManagerFailover
from pyswarm.proto import control_pb2, control_pb2_grpc, types_pb2

SERVICE = control_pb2.DESCRIPTOR.services_by_name["Control"].full_name
NO_QUORUM = "the cluster has no quorum: etcdserver: no leader"


class _Manager:
    """Control.GetService alone, served through a generic handler."""

    def __init__(self, name: str, refuse: str = "", code: grpc.StatusCode | None = None) -> None:
        self.name = name
        self.refuse = refuse
        self.code = code or grpc.StatusCode.UNAVAILABLE
        self.calls = 0

    def GetService(self, request: Any, context: Any) -> types_pb2.Service:
        self.calls += 1
        if self.refuse:
            context.abort(self.code, self.refuse)
        return types_pb2.Service(id=f"{request.service_id}@{self.name}")


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[grpc.Server] = []

    def start(manager: _Manager) -> str:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.unary_unary_rpc_method_handler(
            manager.GetService,
            request_deserializer=control_pb2.GetServiceRequest.FromString,
            response_serializer=types_pb2.Service.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"GetService": handler}),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(None)


def _stub(first: str, others: list[str]) -> tuple[control_pb2_grpc.ControlStub, ManagerFailover]:
    failover = ManagerFailover(others, grpc.insecure_channel)
    channel = grpc.intercept_channel(grpc.insecure_channel(first), failover)
    return control_pb2_grpc.ControlStub(channel), failover


def _get(stub: control_pb2_grpc.ControlStub) -> types_pb2.Service:
    request = control_pb2.GetServiceRequest(service_id="web")
    return stub.GetService(request, timeout=10)


def test_a_manager_without_quorum_is_passed_over_for_the_next(serve: Any) -> None:
    cut_off, down_port, healthy = _Manager("a", NO_QUORUM), "127.0.0.1:1", _Manager("c")
    stub, failover = _stub(serve(cut_off), [down_port, serve(healthy)])
    try:
        # The unreachable second manager is skipped as well; the third one answers.
        assert _get(stub).id == "web@c"
        assert (cut_off.calls, healthy.calls) == (1, 1)
    finally:
        failover.close()


def test_an_answer_other_than_unavailable_is_the_answer(serve: Any) -> None:
    missing = _Manager("a", "service web not found", grpc.StatusCode.NOT_FOUND)
    other = _Manager("b")
    stub, failover = _stub(serve(missing), [serve(other)])
    try:
        with pytest.raises(grpc.RpcError) as raised:
            _get(stub)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert other.calls == 0
    finally:
        failover.close()


def test_when_no_manager_can_serve_the_first_refusal_is_told(serve: Any) -> None:
    first, second = _Manager("a", NO_QUORUM), _Manager("b", "the manager is not connected")
    stub, failover = _stub(serve(first), [serve(second)])
    try:
        with pytest.raises(grpc.RpcError) as raised:
            _get(stub)
        assert raised.value.details() == NO_QUORUM
        assert (first.calls, second.calls) == (1, 1)
    finally:
        failover.close()
