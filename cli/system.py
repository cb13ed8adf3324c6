"""`pyswarm system df`: what images, containers and volumes use on disk."""

from __future__ import annotations

from typing import Annotated

import typer

from pyswarm.cli import client
from pyswarm.cli.output import Format, human_size, print_json_lines, print_table
from pyswarm.proto import agent_pb2

app = typer.Typer(help="Manage pyswarm on this host.", no_args_is_help=True)


def _pct(part: int, whole: int) -> str:
    return f"{human_size(part)} ({100 * part // whole if whole else 0}%)"


def _volumes_row() -> list[str]:
    """docker's "Local Volumes" row: active = used by a container; reclaimable = the
    size of the unused ones."""
    volumes = client.volumes().List(agent_pb2.VolumeListRequest(usage=True)).volumes
    size = sum(v.size for v in volumes)
    active = sum(1 for v in volumes if v.ref_count > 0)
    reclaimable = sum(v.size for v in volumes if v.ref_count == 0)
    return [
        "Local Volumes", str(len(volumes)), str(active), human_size(size),
        _pct(reclaimable, size), "-", "-",
    ]  # fmt: skip


@app.command("df")
def df(format: Annotated[Format, typer.Option("--format")] = Format.table) -> None:
    """Show disk usage: images (real and shared size), containers' writable layers and
    local volumes."""
    usage = client.images().DiskUsage(agent_pb2.DiskUsageRequest())
    rows = [
        [
            "Images", str(usage.images_count), str(usage.images_active),
            human_size(usage.images_size), _pct(usage.images_reclaimable, usage.images_size),
            human_size(usage.images_shared_size), human_size(usage.images_unique_size),
        ],
        [
            "Containers", str(usage.containers_count), str(usage.containers_running),
            human_size(usage.containers_size),
            _pct(usage.containers_reclaimable, usage.containers_size), "-", "-",
        ],
    ]  # fmt: skip
    rows.append(_volumes_row())
    headers = ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE", "SHARED", "UNIQUE"]
    if format == Format.json:
        keys = ["Type", "TotalCount", "Active", "Size", "Reclaimable", "Shared", "Unique"]
        print_json_lines([dict(zip(keys, row, strict=True)) for row in rows])
        return
    print_table(headers, rows)
