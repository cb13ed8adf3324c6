"""`pyswarm events`: the cluster's events as they happen (or replayed with --since),
printed as docker prints them:

    2026-12-06T21:00:00.000000000Z service update abc123 (name=web, replicas.new=3, ...)

or one JSON object per line with --format json (docker's Type, Action, Actor, scope,
time and timeNano). Without --until the stream runs until interrupted.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from pyswarm.cli.output import Format
from pyswarm.cli.parse import parse_filters, parse_time_ns
from pyswarm.common.manager_client import control
from pyswarm.proto import control_pb2

__all__ = ["event_json", "event_line", "events"]


def event_time_text(time_ns: int, *, local: bool = True) -> str:
    """docker's fixed-width RFC 3339 with nanoseconds ("Z" for UTC)."""
    moment = datetime.fromtimestamp(time_ns // 10**9, UTC)
    if local:
        moment = moment.astimezone()
    offset = moment.strftime("%z")
    zone = "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%S')}.{time_ns % 10**9:09d}{zone}"


def event_line(event: control_pb2.Event, *, local: bool = True) -> str:
    """One event as `docker events` prints it."""
    attributes = ", ".join(f"{k}={v}" for k, v in sorted(event.actor.attributes.items()))
    when = event_time_text(event.time.ToNanoseconds(), local=local)
    line = f"{when} {event.type} {event.action} {event.actor.id}"
    return f"{line} ({attributes})" if attributes else line


def event_json(event: control_pb2.Event) -> dict[str, Any]:
    """One event as `docker events --format json` gives it."""
    time_ns = event.time.ToNanoseconds()
    shown: dict[str, Any] = {}
    if event.type == "container":  # docker's older fields, still given for containers
        shown = {
            "status": event.action,
            "id": event.actor.id,
            "from": event.actor.attributes.get("image", ""),
        }
    shown.update({
        "Type": event.type, "Action": event.action,
        "Actor": {"ID": event.actor.id, "Attributes": dict(sorted(event.actor.attributes.items()))},
        "scope": "swarm", "time": time_ns // 10**9, "timeNano": time_ns,
    })  # fmt: skip
    return shown


def events(
    filter: Annotated[
        list[str] | None,
        typer.Option(
            "-f",
            "--filter",
            help="type=, event=, service=, node=, network=, secret=, config=, container=",
        ),
    ] = None,
    since: Annotated[str, typer.Option("--since", help="Show events since (10m, a date)")] = "",
    until: Annotated[str, typer.Option("--until", help="Stream events until this time")] = "",
    format: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Get real-time events from the cluster (services, tasks, nodes, networks, containers)."""
    import json

    request = control_pb2.EventsRequest(filters=parse_filters(filter))
    if since:
        request.since.FromNanoseconds(parse_time_ns(since, "--since"))
    if until:
        request.until.FromNanoseconds(parse_time_ns(until, "--until"))
    for message in control().Events(request):
        if message.warning:
            print(f"WARNING: {message.warning}", file=sys.stderr)
        for event in message.events:
            if format == Format.json:
                sys.stdout.write(json.dumps(event_json(event)) + "\n")
            else:
                sys.stdout.write(event_line(event) + "\n")
        sys.stdout.flush()
