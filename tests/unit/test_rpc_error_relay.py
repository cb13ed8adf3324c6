"""A failed call turned back into the PyswarmError the far server raised (the agent
relays the manager's answer to `run --network` this way)."""

from __future__ import annotations

import grpc
from grpc import aio

from pyswarm.common.errors import FailedPrecondition, NotFound, Unavailable
from pyswarm.common.rpc_errors import FIELD_KEY, error_of


def _failed(code: grpc.StatusCode, details: str, field: str = "") -> aio.AioRpcError:
    trailing = aio.Metadata((FIELD_KEY, field)) if field else aio.Metadata()
    return aio.AioRpcError(code, aio.Metadata(), trailing, details, None)


def test_kind_message_and_field_survive_the_relay() -> None:
    error = error_of(_failed(grpc.StatusCode.NOT_FOUND, "network 'x' not found", "network"))
    assert isinstance(error, NotFound)
    assert (str(error), error.field) == ("network 'x' not found", "network")
    refused = error_of(
        _failed(grpc.StatusCode.FAILED_PRECONDITION, "network p is not manually attachable")
    )
    assert isinstance(refused, FailedPrecondition) and refused.field == ""


def test_a_failure_without_a_pyswarm_kind_is_unavailable() -> None:
    error = error_of(_failed(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
    assert isinstance(error, Unavailable) and str(error) == "Deadline Exceeded"
