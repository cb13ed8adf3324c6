"""Pulls on assignment against real registries on 127.0.0.1: one pull per image however
many tasks wait, counted once; an index tag pinned to the index's digest, as docker does.

The stores are real ImageStores; the registry is Debian's docker-registry, or the tiny
static one where an image index is needed (docker-registry stores what a push sends).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from pyswarm.agent.cluster.image_pull import PULL_COUNTS, SharedPulls, find_local
from pyswarm.images import ImageStore, oci
from pyswarm.images.registry import PullResult, RegistryClient, pull, push
from pyswarm.images.registry.resolve import resolve_digest
from pyswarm.images.testing import (
    ArchiveImage,
    digest,
    directory,
    file,
    layer_tar,
    oci_archive,
)
from tests.harness.registry_process import RegistryProcess
from tests.harness.static_registry import StaticRegistry, serve_image

LAYERS = [
    layer_tar([directory("etc"), file("etc/os-release", b"shared\n")], compress=True),
    layer_tar([file("data", os.urandom(400_000))], compress=True),
]


def test_two_tasks_needing_one_image_share_one_pull(
    registry: RegistryProcess, tmp_path: Path
) -> None:
    name = f"{registry.host}/shared/app:1"
    source = ImageStore(tmp_path / "source")
    image = ArchiveImage(LAYERS, [name])
    oci_archive(tmp_path / "image.tar", [image])
    source.load(tmp_path / "image.tar")
    pushed = push(source, name)
    pinned = resolve_digest(name)
    assert pinned == f"{name}@{pushed.digest}"

    target = ImageStore(tmp_path / "target")
    assert find_local(target, pinned) is None
    lines: dict[str, list[str]] = {"a": [], "b": []}
    received_before, layers_before = PULL_COUNTS.snapshot()

    async def both() -> tuple[PullResult, PullResult]:
        pulls = SharedPulls(target)
        return await asyncio.gather(
            pulls.pull(pinned, None, lines["a"].append),
            pulls.pull(pinned, None, lines["b"].append),
        )

    first, second = asyncio.run(both())
    assert first is second  # one pull, one result for both waiters
    assert first.image.id == image.id
    assert find_local(target, pinned) == pinned
    received_after, layers_after = PULL_COUNTS.snapshot()
    assert layers_after["fetched"] - layers_before["fetched"] == len(LAYERS)
    assert layers_after["present"] == layers_before["present"]
    assert received_after - received_before >= sum(len(layer) for layer in LAYERS)
    for seen in lines.values():
        assert seen and seen[0].startswith(f"pulling {pinned}: ")


def test_a_failed_pull_reaches_every_waiter(registry: RegistryProcess, tmp_path: Path) -> None:
    name = f"{registry.host}/shared/absent:1"

    async def both() -> tuple[PullResult | BaseException, PullResult | BaseException]:
        pulls = SharedPulls(ImageStore(tmp_path))
        return await asyncio.gather(
            pulls.pull(name, None, lambda _: None),
            pulls.pull(name, None, lambda _: None),
            return_exceptions=True,
        )

    errors = asyncio.run(both())
    assert all(isinstance(e, Exception) and "manifest unknown" in str(e) for e in errors)


def test_an_index_tag_is_pinned_to_the_index_digest(tmp_path: Path) -> None:
    image = ArchiveImage(LAYERS, ["img"])
    with StaticRegistry() as server:
        manifest_digest = serve_image(server, image, LAYERS)
        for layer in LAYERS:
            server.add_blob("test/img", digest(layer), layer)
        manifest = server.content["/v2/test/img/manifests/1"][1]
        server.add_manifest("test/img", manifest_digest, oci.MANIFEST_MEDIA_TYPE, manifest)
        architecture, system = oci.host_platform()
        index = json.dumps({
            "schemaVersion": 2,
            "mediaType": oci.INDEX_MEDIA_TYPE,
            "manifests": [{
                "mediaType": oci.MANIFEST_MEDIA_TYPE, "digest": manifest_digest,
                "size": len(manifest), "platform": {"architecture": architecture, "os": system},
            }],
        }).encode()  # fmt: skip
        for ref in ("multi", digest(index)):  # by tag and by digest, as a registry serves it
            server.add_manifest("test/img", ref, oci.INDEX_MEDIA_TYPE, index)
        name = f"{server.host}/test/img:multi"

        pinned = resolve_digest(name)
        assert pinned == f"{name}@{digest(index)}"
        assert RegistryClient(server.host).get_manifest("test/img", "multi").digest == digest(index)
        store = ImageStore(tmp_path)
        pull(store, pinned)
        # The store knows the image by its own manifest; the index digest is a repo digest.
        assert find_local(store, pinned) == image.id
