"""`pyswarm service logs`: the output of every task of a service (or of one task),
from every node, as docker prints it.

Each line gets docker's context column, "web.1.abcdef123456@node-2    | line": the task's
name, its id (12 characters unless --no-trunc; none with --no-task-ids) and the node's
hostname, padded to the widest context seen so far. stderr lines go to stderr. A node
whose logs cannot be had is a warning on stderr, not a hang. Registered on the service
app by cli/service.py.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from pyswarm.cli.parse import CliInputError, parse_time_ns
from pyswarm.cli.service import app

if TYPE_CHECKING:
    from pyswarm.proto import dispatcher_pb2

SHORT_ID = 12


def parse_since(text: str, now: float | None = None) -> int:
    """docker's --since: a unix timestamp, an RFC 3339 date or a duration before now
    (10m, 1h, 90s); nanoseconds since the epoch. '' is 0 (from the start)."""
    return parse_time_ns(text, "--since", now)


def parse_tail(text: str) -> int:
    if text == "all":
        return -1
    if not text.isdigit():
        raise CliInputError(f'invalid value "{text}" for --tail', field="--tail")
    return int(text)


def log_context(message: dispatcher_pb2.LogMessage, *, no_trunc: bool, no_task_ids: bool) -> str:
    """docker's "web.1.abcdef123456@node-2" for a line."""
    name = message.task_name or message.task_id
    if not no_task_ids and message.task_name:
        name += "." + (message.task_id if no_trunc else message.task_id[:SHORT_ID])
    return f"{name}@{message.node_name or message.node_id}"


def timestamp_text(time_unix_nano: int) -> str:
    """RFC 3339 in UTC with all nine fraction digits, so that stamps align (as docker)."""
    seconds, nanos = divmod(time_unix_nano, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


@app.command("logs")
def logs(
    target: Annotated[str, typer.Argument(metavar="SERVICE|TASK")],
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Follow log output")] = False,
    tail: Annotated[
        str, typer.Option("-n", "--tail", help="Lines from the end of each task's log")
    ] = "all",
    timestamps: Annotated[bool, typer.Option("-t", "--timestamps")] = False,
    since: Annotated[
        str, typer.Option(help="From this time: a timestamp, a date or a duration (10m)")
    ] = "",
    no_task_ids: Annotated[bool, typer.Option("--no-task-ids", help="No task ids")] = False,
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Full task ids")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="Lines only, no context column")] = False,
) -> None:
    """Show the logs of a service or a task, from every node."""
    from pyswarm.common.manager_client import control
    from pyswarm.proto import control_pb2, dispatcher_pb2

    request = control_pb2.ServiceLogsRequest(
        service_id=target, follow=follow, tail=parse_tail(tail), since_unix_nano=parse_since(since)
    )
    width = 0
    for reply in control().ServiceLogs(request):
        if reply.warning:
            print(f"warning: {reply.warning}", file=sys.stderr, flush=True)
        for message in reply.messages:
            stream = (
                sys.stderr if message.stream == dispatcher_pb2.LogMessage.STDERR else sys.stdout
            )
            line = message.data
            if timestamps:
                line = timestamp_text(message.time_unix_nano).encode() + b" " + line
            if not raw:
                context = log_context(message, no_trunc=no_trunc, no_task_ids=no_task_ids)
                width = max(width, len(context))
                line = f"{context.ljust(width)}    | ".encode() + line
            stream.buffer.write(line)
            stream.flush()
