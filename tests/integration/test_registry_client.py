"""The registry client against a real Distribution registry and a tiny static one.

Pushes and pulls go through real HTTP on 127.0.0.1; stores are real ImageStores.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pyswarm.common.credentials import Credentials
from pyswarm.common.errors import NotFound
from pyswarm.images import ImageStore, InvalidArchive, oci
from pyswarm.images.busybox import write_busybox_rootfs
from pyswarm.images.registry import (
    Manifest,
    ManifestUnknown,
    PlatformNotFound,
    Progress,
    RegistryAuthError,
    RegistryClient,
    RegistryUnavailable,
    pull,
    push,
)
from pyswarm.images.registry.download import MAX_RESUMES
from pyswarm.images.testing import (
    ArchiveImage,
    digest,
    directory,
    file,
    layer_tar,
    oci_archive,
)
from pyswarm.proto import types_pb2
from pyswarm.proto.types_pb2 import Image
from tests.harness import static_registry
from tests.harness.registry_process import RegistryProcess
from tests.harness.static_registry import Request, StaticRegistry, serve_image

BASE = layer_tar([directory("etc"), file("etc/os-release", b"base\n")], compress=True)
MIDDLE = layer_tar([directory("app"), file("app/run.sh", b"#!/bin/sh\n" * 50)], compress=True)
TOP = layer_tar([file("app/config", os.urandom(50_000))], compress=True)


def _load(store: ImageStore, path: Path, images: list[ArchiveImage]) -> None:
    oci_archive(path, images)
    store.load(path)


def test_push_then_pull_busybox(registry: RegistryProcess, tmp_path: Path) -> None:
    source = ImageStore(tmp_path / "a")
    name = f"{registry.host}/test/busybox:1"
    write_busybox_rootfs(tmp_path / "rootfs.tar")
    image = source.import_rootfs(tmp_path / "rootfs.tar", name)
    events: list[Progress] = []
    pushed = push(source, name, report=events.append, chunk_size=256 << 10)  # chunked PATCHes
    assert pushed.digest == image.manifest_digest
    assert [e.status for e in events][-1] == "Pushed"
    events.clear()
    again = push(source, name, report=events.append)
    assert [e.status for e in events] == ["Layer already exists"]
    assert again.digest == pushed.digest

    target = ImageStore(tmp_path / "b")
    result = pull(target, name, report=events.append)
    assert result.image.id == image.id
    assert result.updated
    assert list(result.image.repo_digests) == [f"{registry.host}/test/busybox@{pushed.digest}"]
    assert target.resolve(name).id == image.id
    assert (target.layer_dirs(result.image)[0] / "bin" / "busybox").exists()

    events.clear()
    client = RegistryClient(registry.host)
    second = pull(target, name, report=events.append, client=client)
    assert not second.updated
    assert [e.status for e in events] == ["Already exists"]
    config_size = target.blob_path(image.id).stat().st_size
    manifest_size = target.blob_path(image.manifest_digest).stat().st_size
    assert client.transport.received == config_size + manifest_size  # no layer bytes


def test_pull_moves_only_the_missing_layer(registry: RegistryProcess, tmp_path: Path) -> None:
    source = ImageStore(tmp_path / "a")
    two = ArchiveImage([BASE, MIDDLE], [f"{registry.host}/test/two:1"])
    three = ArchiveImage([BASE, MIDDLE, TOP], [f"{registry.host}/test/three:1"])
    _load(source, tmp_path / "images.tar", [two, three])
    push(source, two.tags[0])
    push(source, three.tags[0])

    target = ImageStore(tmp_path / "b")
    pull(target, two.tags[0])
    client = RegistryClient(registry.host)
    events: list[Progress] = []
    result = pull(target, three.tags[0], report=events.append, client=client)
    assert result.image.id == three.id
    statuses = [e.status for e in events if e.status in ("Already exists", "Pull complete")]
    assert statuses == ["Already exists", "Already exists", "Pull complete"]
    overhead = sum(
        target.blob_path(d).stat().st_size for d in (three.id, result.image.manifest_digest)
    )
    assert client.transport.received - overhead == len(TOP)


def _push_gzip_variant(host: str, busybox: Image, plain_layer: bytes) -> tuple[bytes, bytes]:
    """Push test/gz:1, an image of busybox's layer gzip-compressed; (config, manifest)."""
    gz = gzip.compress(plain_layer, mtime=0)
    config = oci.build_config(
        types_pb2.ImageConfig(cmd=["echo", "gz"], env=[oci.DEFAULT_PATH]),
        list(busybox.layers),
        datetime(2024, 1, 2, tzinfo=UTC),
        "test",
    )
    layer = oci.Descriptor(oci.LAYER_MEDIA_TYPES["gzip"], digest(gz), len(gz), {})
    manifest = oci.build_manifest(digest(config), len(config), [layer])
    client = RegistryClient(host)
    for blob in (gz, config):
        client.upload_blob("test/gz", digest(blob), io.BytesIO(blob), len(blob))
    document = Manifest(oci.MANIFEST_MEDIA_TYPE, manifest, digest(manifest))
    client.put_manifest("test/gz", "1", document)
    return config, manifest


def test_pull_reuses_a_layer_another_blob_brought(
    registry: RegistryProcess, tmp_path: Path
) -> None:
    """A layer unpacked from `image import` (plain tar) is not fetched again as gzip."""
    store = ImageStore(tmp_path / "store")
    write_busybox_rootfs(tmp_path / "rootfs.tar")
    busybox = store.import_rootfs(tmp_path / "rootfs.tar", "busybox:latest")
    [plain] = store.layer_blobs(busybox.id)
    plain_layer = store.blob_path(plain).read_bytes()
    assert plain_layer[:2] != b"\x1f\x8b"
    config, manifest = _push_gzip_variant(registry.host, busybox, plain_layer)

    name = f"{registry.host}/test/gz:1"
    events: list[Progress] = []
    puller = RegistryClient(registry.host)
    result = pull(store, name, report=events.append, client=puller)
    assert result.image.id == digest(config) != busybox.id
    assert result.image.manifest_digest == result.digest == digest(manifest)
    assert [e.status for e in events] == ["Already exists"]
    assert puller.transport.received == len(config) + len(manifest)  # no layer bytes
    assert store.layer_dirs(result.image) == store.layer_dirs(busybox)
    assert store.local_layer_blobs(result.image.id) == [plain]

    store.remove("busybox:latest", force=False, in_use=set())  # the plain blob stays
    store.save([name], tmp_path / "saved.tar")
    loaded_store = ImageStore(tmp_path / "loaded")
    [loaded] = loaded_store.load(tmp_path / "saved.tar")
    assert loaded.id == result.image.id and list(loaded.repo_tags) == [name]
    assert loaded_store.layer_blobs(loaded.id) == [plain]
    assert (loaded_store.layer_dirs(loaded)[0] / "bin" / "busybox").exists()

    same = f"{registry.host}/test/same:1"  # the manifest's own blob mounts from test/gz
    store.tag(name, same)
    assert push(store, same).digest == digest(manifest)

    other = RegistryProcess(tmp_path / "other")
    other.root.mkdir()
    try:
        other.start()
        copy = f"{other.host}/test/copy:1"  # lacks the gzip blob: the plain one goes up
        store.tag(name, copy)
        pushed = push(store, copy)
        assert pushed.digest != digest(manifest)
        target = ImageStore(tmp_path / "target")
        back = pull(target, copy)
        assert back.image.id == result.image.id and back.digest == pushed.digest
        assert target.layer_blobs(back.image.id) == [plain]
        assert (target.layer_dirs(back.image)[0] / "bin" / "busybox").exists()
    finally:
        other.close()


def test_unknown_repository_or_tag_is_not_found(registry: RegistryProcess, tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    for name in (f"{registry.host}/test/nothing:1", f"{registry.host}/test/busybox:nope"):
        with pytest.raises(ManifestUnknown) as caught:
            pull(store, name)
        assert isinstance(caught.value, NotFound)
        assert "\n" not in str(caught.value) and name in str(caught.value)
    assert store.list() == []


def test_cross_repository_mount_and_monolithic_upload(registry: RegistryProcess) -> None:
    client = RegistryClient(registry.host)
    blob = os.urandom(3000)
    blob_digest = digest(blob)
    assert not client.has_blob("test/src", blob_digest)
    client.upload_blob("test/src", blob_digest, io.BytesIO(blob), len(blob))
    assert client.has_blob("test/src", blob_digest)
    assert not client.has_blob("test/dst", blob_digest)
    assert client.mount_blob("test/dst", blob_digest, "test/src")
    assert client.has_blob("test/dst", blob_digest)
    assert not client.mount_blob("test/dst", digest(b"absent"), "test/src")


def test_corrupted_blob_is_rejected_and_nothing_stored(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    image = ArchiveImage([BASE])
    with StaticRegistry() as server:
        serve_image(server, image, [BASE])
        server.add_blob("test/img", digest(BASE), BASE[:-10] + b"x" * 10)
        with pytest.raises(InvalidArchive, match="does not match"):
            pull(store, f"{server.host}/test/img:1")
    assert store.list() == []
    assert list(store.blob_dir.iterdir()) == []
    assert list(store.layer_root.iterdir()) == []
    assert list(store.tmp_dir.iterdir()) == []


def test_truncated_download_fails_cleanly(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    image = ArchiveImage([BASE, TOP])
    with StaticRegistry() as server:
        serve_image(server, image, [BASE, TOP])
        server.add_blob("test/img", digest(BASE), BASE)
        server.add_blob("test/img", digest(TOP), TOP)
        path = f"/v2/test/img/blobs/{digest(TOP)}"
        server.truncate[path] = len(TOP) // 2  # every answer, resumed or not, breaks there
        with pytest.raises(RegistryUnavailable, match="broke off") as caught:
            pull(store, f"{server.host}/test/img:1")
        tries = [r for r in server.requests if r.path == path]
    assert f"blob {digest(TOP)}" in str(caught.value) and "\n" not in str(caught.value)
    assert len(tries) == 1 + MAX_RESUMES
    assert [r.headers.get("Range") for r in tries[1:]] == [f"bytes={len(TOP) // 2}-"] * MAX_RESUMES
    assert store.list() == []
    assert list(store.blob_dir.iterdir()) == []
    assert list(store.tmp_dir.iterdir()) == []


@pytest.mark.parametrize("ranges", [True, False])
def test_broken_download_resumes(ranges: bool, tmp_path: Path) -> None:
    """A download cut once goes on from where it broke (206), or starts over (200)."""
    store = ImageStore(tmp_path)
    image = ArchiveImage([BASE, TOP])
    cut = len(TOP) // 3
    with StaticRegistry() as server:
        server.ranges = ranges
        serve_image(server, image, [BASE, TOP])
        server.add_blob("test/img", digest(BASE), BASE)
        server.add_blob("test/img", digest(TOP), TOP)
        path = f"/v2/test/img/blobs/{digest(TOP)}"
        server.break_once[path] = cut
        client = RegistryClient(server.host)
        result = pull(store, f"{server.host}/test/img:1", client=client)
        tries = [r for r in server.requests if r.path == path]
    assert result.image.id == image.id
    assert [r.headers.get("Range") for r in tries] == [None, f"bytes={cut}-"]
    top_dir = store.layer_dirs(result.image)[0]
    assert (top_dir / "app" / "config").stat().st_size == 50_000
    overhead = sum(store.blob_path(d).stat().st_size for d in (image.id, result.digest))
    layer_bytes = client.transport.received - overhead
    assert layer_bytes == len(BASE) + len(TOP) + (0 if ranges else cut)


def test_resumed_download_is_verified_over_the_whole_blob(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    image = ArchiveImage([TOP])
    cut = len(TOP) // 2
    with StaticRegistry() as server:
        serve_image(server, image, [TOP])
        server.add_blob("test/img", digest(TOP), TOP)
        server.break_once[f"/v2/test/img/blobs/{digest(TOP)}"] = cut

        def resume_with_other_bytes(request: Request) -> None:
            if "Range" in request.headers:
                server.add_blob("test/img", digest(TOP), TOP[:cut] + bytes(len(TOP) - cut))

        server.on_request = resume_with_other_bytes
        with pytest.raises(InvalidArchive, match=f"does not match {digest(TOP)}"):
            pull(store, f"{server.host}/test/img:1")
    assert store.list() == [] and list(store.blob_dir.iterdir()) == []
    assert list(store.tmp_dir.iterdir()) == []


def test_index_without_this_platform_is_a_named_error(tmp_path: Path) -> None:
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": oci.INDEX_MEDIA_TYPE,
            "manifests": [
                {
                    "mediaType": oci.MANIFEST_MEDIA_TYPE,
                    "digest": digest(b"m"),
                    "size": 1,
                    "platform": {"architecture": "s390x", "os": "zos"},
                }
            ],
        }
    ).encode()
    with StaticRegistry() as server:
        server.add_manifest("test/img", "1", oci.INDEX_MEDIA_TYPE, index)
        with pytest.raises(PlatformNotFound, match="no matching manifest for linux/"):
            pull(ImageStore(tmp_path), f"{server.host}/test/img:1")


def test_index_selects_this_platform(tmp_path: Path) -> None:
    image = ArchiveImage([BASE])
    arch, os_name = oci.host_platform()
    with StaticRegistry() as server:
        manifest_digest = serve_image(server, image, [BASE])
        server.add_blob("test/img", digest(BASE), BASE)
        manifest = server.content["/v2/test/img/manifests/1"]
        server.add_manifest("test/img", manifest_digest, *manifest)
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": oci.INDEX_MEDIA_TYPE,
                "manifests": [
                    {
                        "mediaType": oci.MANIFEST_MEDIA_TYPE,
                        "digest": manifest_digest,
                        "size": len(manifest[1]),
                        "platform": {"architecture": arch, "os": os_name},
                    }
                ],
            }
        ).encode()
        server.add_manifest("test/img", "multi", oci.INDEX_MEDIA_TYPE, index)
        result = pull(ImageStore(tmp_path), f"{server.host}/test/img:multi")
    assert result.image.id == image.id
    assert result.digest == digest(index)


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_auth_challenges(scheme: str, tmp_path: Path) -> None:
    image = ArchiveImage([BASE])
    good = Credentials(static_registry.USER, static_registry.SECRET)
    with StaticRegistry(auth=scheme) as server:
        serve_image(server, image, [BASE])
        server.add_blob("test/img", digest(BASE), BASE)
        name = f"{server.host}/test/img:1"
        with pytest.raises(RegistryAuthError):
            pull(ImageStore(tmp_path / "anon"), name)
        with pytest.raises(RegistryAuthError):
            pull(ImageStore(tmp_path / "bad"), name, credentials=Credentials("user", "wrong"))
        result = pull(ImageStore(tmp_path / "ok"), name, credentials=good)
        if scheme == "bearer":
            assert "scope=repository%3Atest%2Fimg%3Apull" in server.token_requests[-1]
    assert result.image.id == image.id


def test_real_registry_with_htpasswd_auth(tmp_path: Path) -> None:
    good = Credentials("alice", "wonderland")
    process = RegistryProcess(tmp_path / "registry", users={good.username: good.password})
    process.root.mkdir()
    try:
        process.start()
        source = ImageStore(tmp_path / "a")
        image = ArchiveImage([BASE], [f"{process.host}/private/img:1"])
        _load(source, tmp_path / "img.tar", [image])
        with pytest.raises(RegistryAuthError):
            push(source, image.tags[0])
        push(source, image.tags[0], credentials=good)
        with pytest.raises(RegistryAuthError):
            pull(ImageStore(tmp_path / "b"), image.tags[0], credentials=Credentials("alice", "x"))
        assert pull(ImageStore(tmp_path / "c"), image.tags[0], credentials=good).image.id == (
            image.id
        )
    finally:
        process.close()
