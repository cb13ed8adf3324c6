"""`pyswarm image ...` (and docker's short forms: images, rmi)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer

from pyswarm.cli import build as _build
from pyswarm.cli import client, registry
from pyswarm.cli.output import Format, ago, human_size, print_json, print_json_lines, print_table
from pyswarm.cli.parse import CliInputError
from pyswarm.proto import agent_pb2, types_pb2

app = typer.Typer(help="Manage images on this host.", no_args_is_help=True)
CHUNK = 1 << 20


def _chunks(source: BinaryIO, reference: str = "") -> Iterator[agent_pb2.ArchiveChunk]:
    yield agent_pb2.ArchiveChunk(reference=reference)
    while data := source.read(CHUNK):
        yield agent_pb2.ArchiveChunk(data=data)


def _open(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as err:
        raise CliInputError(f"open {path}: {err.strerror}", field="file") from None


def _repo_tag(tag: str) -> tuple[str, str]:
    repo, sep, version = tag.rpartition(":")
    if not sep or "/" in version:
        return tag, "latest"
    return repo, version


def image_dict(image: types_pb2.Image) -> dict[str, Any]:
    c = image.config
    return {
        "Id": image.id,
        "RepoTags": list(image.repo_tags),
        "RepoDigests": list(image.repo_digests),
        "Created": image.created_at.ToJsonString() if image.created_at.seconds else "",
        "Architecture": image.platform.architecture,
        "Os": image.platform.os,
        "Size": image.size,
        "Config": {
            "Env": list(c.env),
            "Cmd": list(c.cmd),
            "Entrypoint": list(c.entrypoint) or None,
            "WorkingDir": c.working_dir,
            "User": c.user,
            "Labels": dict(c.labels),
            "ExposedPorts": {p: {} for p in c.exposed_ports},
        },
        "RootFS": {"Type": "layers", "Layers": list(image.layers)},
    }


@app.command("import")
def import_(
    file: Annotated[str, typer.Argument(help="Rootfs tarball (plain or gzip), or - for stdin")],
    reference: Annotated[str, typer.Argument(help="NAME[:TAG]")],
) -> None:
    """Import a rootfs tarball as a one-layer image."""
    with _open(file) as source:
        image = client.images().Import(_chunks(source, reference))
    print(image.id)


@app.command("load")
def load(
    input: Annotated[str, typer.Option("-i", "--input", help="Archive, or - for stdin")] = "-",
    quiet: Annotated[bool, typer.Option("-q", "--quiet")] = False,
) -> None:
    """Load images from a `docker save` or OCI archive."""
    with _open(input) as source:
        response = client.images().Load(_chunks(source))
    if not quiet:
        for image in response.images:
            for tag in image.repo_tags or [image.id]:
                print(f"Loaded image: {tag}" if tag != image.id else f"Loaded image ID: {tag}")


@app.command("save")
def save(
    images: Annotated[list[str], typer.Argument()],
    output: Annotated[str, typer.Option("-o", "--output")] = "",
) -> None:
    """Save images to a tar archive (docker and OCI layouts)."""
    if not output and sys.stdout.isatty():
        raise CliInputError(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect", field="-o"
        )
    stream = client.images().Save(agent_pb2.ImageSaveRequest(references=images))
    target = Path(output)
    tmp = target.with_name(target.name + ".part") if output else None
    out: BinaryIO = open(tmp, "wb") if tmp else sys.stdout.buffer  # noqa: SIM115
    try:
        for chunk in stream:
            out.write(chunk.data)
    finally:
        if tmp:
            out.close()
    if tmp:
        tmp.replace(target)


@app.command("ls")
def ls(
    reference: Annotated[str, typer.Argument()] = "",
    quiet: Annotated[bool, typer.Option("-q", "--quiet")] = False,
    format: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """List images."""
    images = client.images().List(agent_pb2.ImageRef(reference=reference)).images
    if quiet:
        for image in images:
            print(image.id.removeprefix("sha256:")[:12])
        return
    rows = []
    for image in images:
        created = ago(image.created_at.seconds)
        short = image.id.removeprefix("sha256:")[:12]
        for tag in image.repo_tags or ["<none>:<none>"]:
            repo, version = _repo_tag(tag)
            rows.append([repo, version, short, created, human_size(image.size)])
    if format == Format.json:
        keys = ["Repository", "Tag", "ID", "CreatedSince", "Size"]
        print_json_lines([dict(zip(keys, row, strict=True)) for row in rows])
        return
    print_table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows)


# Config fields the Image message does not carry, read from the config blob as stored.
_RAW_CONFIG_KEYS = ("Healthcheck", "Volumes", "StopSignal", "Shell", "OnBuild")


@app.command("inspect")
def inspect(images: Annotated[list[str], typer.Argument()]) -> None:
    """Show images in detail (JSON)."""
    import json

    stub = client.images()
    result = []
    for ref in images:
        image = stub.Inspect(agent_pb2.ImageRef(reference=ref))
        info = image_dict(image)
        raw = json.loads(stub.RawConfig(agent_pb2.ImageRef(reference=image.id)).config)
        runtime = raw.get("config") or {}
        info["Config"].update({k: runtime[k] for k in _RAW_CONFIG_KEYS if k in runtime})
        info["Author"] = raw.get("author", "")
        result.append(info)
    print_json(result)


@app.command("history")
def history(
    image: Annotated[str, typer.Argument()],
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Do not truncate output")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only show image IDs")] = False,
    format: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Show the history of an image."""
    entries = client.images().History(agent_pb2.ImageRef(reference=image)).entries

    def short(image_id: str) -> str:
        return image_id if no_trunc or image_id == "<missing>" else image_id[7:19]

    if quiet:
        for entry in entries:
            print(short(entry.id))
        return
    rows = []
    for entry in entries:
        created_by = " ".join(entry.created_by.split()) if not no_trunc else entry.created_by
        if not no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        created = ago(entry.created.seconds) if entry.created.seconds else "N/A"
        rows.append([short(entry.id), created, created_by, human_size(entry.size), entry.comment])
    if format == Format.json:
        keys = ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"]
        print_json_lines([dict(zip(keys, row, strict=True)) for row in rows])
        return
    print_table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], rows)


@app.command("tag")
def tag(source: str, target: str) -> None:
    """Give an image another name."""
    client.images().Tag(agent_pb2.TagImageRequest(source=source, target=target))


@app.command("rm")
def rm(
    images: Annotated[list[str], typer.Argument()],
    force: Annotated[bool, typer.Option("-f", "--force")] = False,
) -> None:
    """Remove images."""
    from pyswarm.cli.errors import report

    stub = client.images()
    failed = False
    for ref in images:
        try:
            response = stub.Remove(agent_pb2.RemoveImageRequest(reference=ref, force=force))
        except Exception as err:
            report(err)
            failed = True
            continue
        for name in response.untagged:
            print(f"Untagged: {name}")
        for digest in response.deleted:
            print(f"Deleted: {digest}")
    if failed:
        raise typer.Exit(1)


@app.command("prune")
def prune(
    all: Annotated[bool, typer.Option("-a", "--all", help="All unused images")] = False,
    force: Annotated[bool, typer.Option("-f", "--force", help="Do not ask")] = True,
) -> None:
    """Remove unused images."""
    response = client.images().Prune(agent_pb2.PruneImagesRequest(all=all))
    if response.deleted:
        print("Deleted Images:")
        for digest in response.deleted:
            print(f"deleted: {digest}")
        print()
    print(f"Total reclaimed space: {human_size(response.space_reclaimed)}")


@app.command("busybox")
def busybox(
    reference: Annotated[str, typer.Argument(help="NAME[:TAG]")] = "busybox:latest",
    binary: Annotated[str, typer.Option(help="A static busybox")] = "/bin/busybox",
) -> None:
    """Make a busybox image from the host's static busybox (no network needed)."""
    import tempfile

    from pyswarm.images.busybox import write_busybox_rootfs

    with tempfile.TemporaryDirectory() as tmp:
        tar = Path(tmp) / "busybox.tar"
        if not Path(binary).is_file():
            raise CliInputError(
                f"{binary} not found: install busybox-static (apt-get install busybox-static)",
                field="--binary",
            )
        write_busybox_rootfs(tar, Path(binary))
        with open(tar, "rb") as source:
            image = client.images().Import(_chunks(source, reference))
    print(image.id)


app.command("build")(_build.build)
app.command("pull")(registry.pull)
app.command("push")(registry.push)
app.command("search")(registry.search)
