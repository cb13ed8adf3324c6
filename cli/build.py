"""`pyswarm image build` (and `pyswarm build`): send a context, print docker's classic output.

The context directory is sent as a tar, less what `.dockerignore` excludes (the
Dockerfile and `.dockerignore` are always sent). Symlinks go as symlinks; whether a
COPY may use them is the agent's call.
"""

from __future__ import annotations

import os
import secrets
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated

import typer

from pyswarm.cli import client
from pyswarm.cli.dockerignore import Matcher, read_patterns
from pyswarm.cli.output import human_size
from pyswarm.cli.parse import CliInputError
from pyswarm.proto import agent_pb2

CHUNK = 1 << 20


def write_context(root: Path, dockerfile: Path, out: IO[bytes]) -> str:
    """Tar `root` into `out` as .dockerignore allows; returns the Dockerfile's name in it."""
    ignore = root / ".dockerignore"
    matcher = Matcher(read_patterns(ignore.read_text()) if ignore.is_file() else [])
    try:
        name = dockerfile.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        name = ""  # outside the context: sent under a name of its own
    always = {name, ".dockerignore"}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory, dirs, files in os.walk(root):
            dirs.sort()
            relative_dir = Path(directory).relative_to(root).as_posix()
            keep_dirs = []
            for entry in sorted([*dirs, *files]):
                relative = entry if relative_dir == "." else f"{relative_dir}/{entry}"
                is_dir = entry in dirs and not os.path.islink(os.path.join(directory, entry))
                excluded = matcher.excluded(relative) and relative not in always
                if is_dir and (not excluded or matcher.has_exceptions):
                    keep_dirs.append(entry)
                if not excluded:
                    tar.add(os.path.join(directory, entry), arcname=relative, recursive=False)
            dirs[:] = keep_dirs
        if not name:
            name = f".dockerfile.{secrets.token_hex(6)}"
            tar.add(str(dockerfile), arcname=name)
    return name


def _args(values: list[str]) -> dict[str, str]:
    result = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not key:
            raise CliInputError(f"invalid build arg {value!r}: KEY=VALUE", field="--build-arg")
        if sep:
            result[key] = text
        elif key in os.environ:
            result[key] = os.environ[key]
    return result


def _requests(options: agent_pb2.BuildOptions, source: IO[bytes]) -> Iterator[agent_pb2.BuildChunk]:
    yield agent_pb2.BuildChunk(options=options)
    while data := source.read(CHUNK):
        yield agent_pb2.BuildChunk(data=data)


def build(
    context: Annotated[str, typer.Argument(help="The build context directory")],
    tag: Annotated[list[str] | None, typer.Option("-t", "--tag", help="NAME[:TAG]")] = None,
    file: Annotated[str, typer.Option("-f", "--file", help="The Dockerfile")] = "",
    build_arg: Annotated[
        list[str] | None, typer.Option("--build-arg", help="KEY=VALUE (or KEY from the env)")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not use the cache")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print the image id only")] = False,
    network: Annotated[str, typer.Option("--network", help="RUN network: bridge|none")] = "bridge",
) -> None:
    """Build an image from a Dockerfile."""
    root = Path(context)
    if not root.is_dir():
        raise CliInputError(
            f"unable to prepare context: path {context!r} not found", field="context"
        )
    if network not in ("bridge", "none"):
        raise CliInputError(f"--network {network}: use bridge or none", field="--network")
    dockerfile = Path(file) if file else root / "Dockerfile"
    if not dockerfile.is_file():
        raise CliInputError(
            f"unable to prepare context: Cannot locate specified Dockerfile: {dockerfile}",
            field="--file",
        )
    with tempfile.TemporaryFile() as spool:
        name = write_context(root, dockerfile, spool)
        size = spool.tell()
        spool.seek(0)
        options = agent_pb2.BuildOptions(
            tags=tag or [],
            dockerfile=name,
            build_args=_args(build_arg or []),
            no_cache=no_cache,
            network=network,
        )
        image_id = ""
        if not quiet:
            sys.stdout.write(f"Sending build context to the pyswarm agent  {human_size(size)}\n")
        for progress in client.images().Build(_requests(options, spool)):
            if progress.stream and not quiet:
                sys.stdout.write(progress.stream)
                sys.stdout.flush()
            image_id = progress.image_id or image_id
    if quiet:
        print(image_id)
