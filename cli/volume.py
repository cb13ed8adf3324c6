"""`pyswarm volume create|ls|inspect|rm|prune`: this host's volumes (docker's local
driver), asked of the local agent."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pyswarm.cli import client
from pyswarm.cli.errors import apply_each, report
from pyswarm.cli.output import Format, human_size, print_json, print_json_lines, print_table
from pyswarm.cli.parse import CliInputError
from pyswarm.proto import agent_pb2, types_pb2

app = typer.Typer(help="Manage volumes on this host.", no_args_is_help=True)


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    """KEY=VALUE (or KEY, an empty value) items of a repeatable flag."""
    pairs = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise CliInputError(f'invalid argument "{item}" for "{flag}" flag', field=flag)
        pairs[key] = value
    return pairs


def volume_dict(volume: agent_pb2.Volume) -> dict[str, Any]:
    """docker's `volume inspect` object."""
    document: dict[str, Any] = {
        "CreatedAt": volume.created_at.ToJsonString() if volume.created_at.seconds else "",
        "Driver": volume.driver,
        "Labels": dict(volume.labels) or None,
        "Mountpoint": volume.mountpoint,
        "Name": volume.name,
        "Options": dict(volume.options) or None,
        "Scope": volume.scope,
    }
    if volume.size >= 0 and volume.ref_count >= 0:
        document["UsageData"] = {"RefCount": volume.ref_count, "Size": volume.size}
    return document


def mount_dict(mount: types_pb2.Mount) -> dict[str, Any]:
    """One of docker's `inspect` "Mounts" entries."""
    from pyswarm.common.mounts import TYPE_NAMES

    document: dict[str, Any] = {"Type": TYPE_NAMES.get(mount.type, "")}
    if mount.type == types_pb2.Mount.VOLUME:
        document.update(Name=mount.source, Source="", Driver="local")
    else:
        document["Source"] = mount.source
    document.update(
        Destination=mount.target,
        Mode="ro" if mount.read_only else "",
        RW=not mount.read_only,
        Propagation=(mount.bind_propagation or "rprivate")
        if mount.type == types_pb2.Mount.BIND
        else "",
    )
    return document


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Volume name (none: a random one)")] = "",
    driver: Annotated[str, typer.Option("-d", "--driver", help="Volume driver")] = "local",
    opt: Annotated[
        list[str] | None,
        typer.Option("-o", "--opt", help="Driver option: type=tmpfs|none|FS, device=.., o=.."),
    ] = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="KEY=VALUE")] = None,
    name_option: Annotated[str, typer.Option("--name", hidden=True)] = "",
) -> None:
    """Create a volume."""
    if name and name_option and name != name_option:
        raise CliInputError(
            "conflicting options: either specify --name or provide positional arg, not both",
            field="--name",
        )
    request = agent_pb2.VolumeCreateRequest(
        name=name or name_option,
        driver=driver,
        options=_pairs(opt or [], "--opt"),
        labels=_pairs(label or [], "--label"),
    )
    print(client.volumes().Create(request).name)


@app.command("ls")
def ls(
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only names")] = False,
    filter: Annotated[
        list[str] | None,
        typer.Option(
            "-f", "--filter", help="name=, label=KEY[=VALUE], dangling=true|false, driver="
        ),
    ] = None,
    format: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """List volumes."""
    request = agent_pb2.VolumeListRequest(filters=filter or [])
    volumes = client.volumes().List(request).volumes
    if quiet:
        for volume in volumes:
            print(volume.name)
        return
    if format == Format.json:
        print_json_lines([_ls_dict(v) for v in volumes])
        return
    print_table(["DRIVER", "VOLUME NAME"], [[v.driver, v.name] for v in volumes])


def _ls_dict(volume: agent_pb2.Volume) -> dict[str, str]:
    """docker's `volume ls --format json` line (its columns, as strings)."""
    return {
        "Availability": "N/A",
        "Driver": volume.driver,
        "Group": "N/A",
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(volume.labels.items())),
        "Links": "N/A",
        "Mountpoint": volume.mountpoint,
        "Name": volume.name,
        "Scope": volume.scope,
        "Size": "N/A",
        "Status": "N/A",
    }


@app.command("inspect")
def inspect(
    names: Annotated[list[str], typer.Argument()],
    format: Annotated[str, typer.Option("--format")] = "json",
) -> None:
    """Show volumes in detail, as docker's JSON."""
    if format != "json":
        raise CliInputError(f"invalid --format {format!r}: only json", field="--format")
    stub = client.volumes()
    found = []
    failed = False
    for name in names:
        try:
            found.append(volume_dict(stub.Inspect(agent_pb2.VolumeRef(name=name))))
        except Exception as err:
            report(err)
            failed = True
    print_json(found)
    if failed:
        raise typer.Exit(1)


@app.command("rm")
def rm(
    names: Annotated[list[str], typer.Argument()],
    force: Annotated[
        bool, typer.Option("-f", "--force", help="A missing volume is no error")
    ] = False,
) -> None:
    """Remove volumes (refused while a container uses one)."""
    stub = client.volumes()
    apply_each(names, lambda n: stub.Remove(agent_pb2.VolumeRemoveRequest(name=n, force=force)))


@app.command("prune")
def prune(
    all: Annotated[bool, typer.Option("-a", "--all", help="All unused volumes, named too")] = False,
    filter: Annotated[
        list[str] | None, typer.Option("--filter", help="label=KEY[=VALUE], label!=...")
    ] = None,
    force: Annotated[bool, typer.Option("-f", "--force", help="Do not ask")] = True,
) -> None:
    """Remove unused anonymous volumes (with --all, every unused volume)."""
    request = agent_pb2.VolumePruneRequest(all=all, filters=filter or [])
    response = client.volumes().Prune(request)
    if response.deleted:
        print("Deleted Volumes:")
        for name in response.deleted:
            print(name)
        print()
    print(f"Total reclaimed space: {human_size(response.space_reclaimed)}")
