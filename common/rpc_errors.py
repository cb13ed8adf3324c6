"""The one place where pyswarm errors become gRPC statuses, and back.

Servers install `ErrorInterceptor`, so servicers just raise PyswarmError subclasses;
clients call `describe` on an AioRpcError to get the one-line message and the exit
code a CLI should use.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from pyswarm.common.errors import (
    AlreadyExists,
    ErrorKind,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PyswarmError,
    ResourceExhausted,
    Unavailable,
)

log = logging.getLogger(__name__)

EXIT_CODE_KEY = "pyswarm-exit-code"
FIELD_KEY = "pyswarm-field"

_CODES = {
    ErrorKind.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorKind.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorKind.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorKind.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.INTERNAL: grpc.StatusCode.INTERNAL,
}


async def _abort(context: aio.ServicerContext[Any, Any], err: Exception) -> None:
    if isinstance(err, PyswarmError):
        metadata = []
        exit_code = getattr(err, "exit_code", None)
        if isinstance(exit_code, int):
            metadata.append((EXIT_CODE_KEY, str(exit_code)))
        if err.field:
            metadata.append((FIELD_KEY, err.field))
        if metadata:
            context.set_trailing_metadata(tuple(metadata))
        await context.abort(_CODES[err.kind], err.message)
    log.exception("unexpected error in RPC")
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {err}")


def _wrap_unary(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def wrapper(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await behavior(request, context)
        except (PyswarmError, OSError, ValueError) as err:
            await _abort(context, err)

    return wrapper


def _wrap_stream(behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def wrapper(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        try:
            async for item in behavior(request, context):
                yield item
        except (PyswarmError, OSError, ValueError) as err:
            await _abort(context, err)

    return wrapper


class ErrorInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Turns PyswarmError raised by any servicer into the matching status code."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler: Any = await continuation(handler_call_details)
        if handler is None:
            return handler
        return rewrap_handler(handler, _wrap_unary, _wrap_stream)


def rewrap_handler(
    handler: Any,
    wrap_unary: Callable[[Any], Any],
    wrap_stream: Callable[[Any], Any],
) -> Any:
    """`handler` (an RpcMethodHandler) with its behaviour wrapped: `wrap_unary` for calls
    that answer once, `wrap_stream` for calls that answer with a stream. For interceptors."""
    codecs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(wrap_unary(handler.unary_unary), **codecs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(wrap_unary(handler.stream_unary), **codecs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap_stream(handler.unary_stream), **codecs)
    return grpc.stream_stream_rpc_method_handler(wrap_stream(handler.stream_stream), **codecs)


def describe(err: grpc.RpcError) -> tuple[str, int | None]:
    """The one-line message of a failed call and the exit code the server asked for."""
    call: Any = err
    code = call.code() if hasattr(call, "code") else None
    details = str(call.details() or "") if hasattr(call, "details") else ""
    exit_code: int | None = None
    trailing: Any = call.trailing_metadata() if hasattr(call, "trailing_metadata") else None
    for item in trailing or ():
        key, value = item[0], item[1]
        if key == EXIT_CODE_KEY and str(value).isdigit():
            exit_code = int(value)
    if not details.strip():
        details = "the server is unavailable" if code == grpc.StatusCode.UNAVAILABLE else str(code)
    return details.splitlines()[0], exit_code


_KINDS = {code: kind for kind, code in _CODES.items()}
_ERRORS: dict[ErrorKind, type[PyswarmError]] = {
    error.kind: error
    for error in (
        InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, PermissionDenied,
        Unavailable, ResourceExhausted,
    )
}  # fmt: skip


def error_of(err: grpc.RpcError) -> PyswarmError:
    """A failed call as the PyswarmError the server raised (its kind, message and field),
    for a server that relays another's answer (the agent relaying the manager's)."""
    call: Any = err
    code = call.code() if hasattr(call, "code") else None
    message, _exit_code = describe(err)
    field = ""
    trailing: Any = call.trailing_metadata() if hasattr(call, "trailing_metadata") else None
    for item in trailing or ():
        if item[0] == FIELD_KEY:
            field = str(item[1])
    kind = _KINDS.get(code, ErrorKind.UNAVAILABLE) if code is not None else ErrorKind.UNAVAILABLE
    error_type = _ERRORS.get(kind, Unavailable)
    return error_type(message, field=field)
