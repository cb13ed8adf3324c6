"""The one place the CLI turns failures into a one-line message and an exit code.

Never a traceback: gRPC statuses, input errors and a missing agent all become
"Error...: <message>" on stderr. docker's run/create exit 125 when the daemon
refuses, exec 126; other commands exit 1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from pyswarm.common.errors import PyswarmError

_failure_code = 1


def expect_failure_code(code: int) -> None:
    """The exit code this command uses when the request itself fails."""
    global _failure_code
    _failure_code = code


def describe(err: BaseException) -> tuple[str, int]:
    """(one-line message, exit code) for any error a command may raise."""
    from pyswarm.cli.client import AgentUnavailable

    if isinstance(err, PyswarmError):
        return f"Error: {err.message}", _failure_code
    if isinstance(err, AgentUnavailable):
        return f"Error: {err}", _failure_code
    import grpc

    from pyswarm.common.manager_failover import reached_no_server
    from pyswarm.common.rpc_errors import describe as describe_rpc

    if isinstance(err, grpc.RpcError):
        message, exit_code = describe_rpc(err)
        if getattr(err, "code", lambda: None)() == grpc.StatusCode.UNAVAILABLE:
            if not reached_no_server(message):
                # A manager answered, unable to serve (e.g. the cluster has no quorum).
                return f"Error response from daemon: {message}", _failure_code
            return f"Error: cannot reach the pyswarm agent: {message}", _failure_code
        return f"Error response from daemon: {message}", exit_code or _failure_code
    if isinstance(err, OSError):
        return f"Error: {err.strerror or err}: {err.filename or ''}".rstrip(": "), _failure_code
    return f"Error: {type(err).__name__}: {err}", _failure_code


def report(err: BaseException) -> int:
    message, code = describe(err)
    print(message, file=sys.stderr)
    return code


def apply_each(refs: list[str], action: Callable[[str], object]) -> None:
    """docker's way with several targets: act on each, print each that worked, report
    each that failed on its own line, and exit 1 if any did."""
    import typer

    failed = False
    for ref in refs:
        try:
            action(ref)
            print(ref)
        except Exception as err:
            report(err)
            failed = True
    if failed:
        raise typer.Exit(1)
