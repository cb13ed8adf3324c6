"""Bounds on what a registry or an archive can make a node store, over real HTTP:

- a blob longer than its manifest declares is refused naming its digest, whether the
  registry announces the length or just sends more (read no further than one byte
  past the declared size);
- a layer that expands far beyond its compressed size (a decompression bomb) is
  refused naming the layer: by its tar headers before anything is written, or by the
  decompressed stream itself;
- registry credentials go only to the registry (and, as docker does, to the token
  realm it names, wherever that is): never to a host a redirect points at.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zlib
from pathlib import Path

import pytest

from pyswarm.common.credentials import Credentials
from pyswarm.images import ImageStore, oci
from pyswarm.images.decompression import MIN_UNCOMPRESSED_LIMIT, DecompressionBomb
from pyswarm.images.registry import RegistryClient, pull
from pyswarm.images.registry.errors import BlobTooLarge
from pyswarm.images.testing import ArchiveImage, digest, directory, file, layer_tar
from tests.harness import static_registry
from tests.harness.static_registry import StaticRegistry, serve_image

LAYER = layer_tar([directory("etc"), file("etc/os-release", b"bounded\n")], compress=True)
GOOD = Credentials(static_registry.USER, static_registry.SECRET)


def assert_store_empty(store: ImageStore) -> None:
    assert store.list() == []
    assert list(store.blob_dir.iterdir()) == []
    assert list(store.layer_root.iterdir()) == []
    assert list(store.tmp_dir.iterdir()) == []


@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "no-length"])
def test_a_blob_longer_than_declared_is_refused(announced: bool, tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    image = ArchiveImage([LAYER])
    with StaticRegistry() as server:
        serve_image(server, image, [LAYER])  # the manifest declares len(LAYER)
        path = f"/v2/test/img/blobs/{digest(LAYER)}"
        server.add_blob("test/img", digest(LAYER), LAYER + bytes(4 << 20))
        if not announced:
            server.unannounced.add(path)
        client = RegistryClient(server.host)
        with pytest.raises(BlobTooLarge) as refused:
            pull(store, f"{server.host}/test/img:1", client=client)
    message = str(refused.value)
    assert f"blob {digest(LAYER)}" in message and "\n" not in message
    assert f"larger than the {len(LAYER)} bytes its manifest declares" in message
    # Read no further than one byte past the declared size (plus manifest and config).
    config = image.config()
    manifest_bytes = server.content["/v2/test/img/manifests/1"][1]
    assert client.transport.received <= len(manifest_bytes) + len(config) + len(LAYER) + 1
    assert_store_empty(store)


def gzip_members(*parts: bytes) -> bytes:
    """One gzip member per part: a valid gzip stream (readers join the members)."""
    out = b""
    for part in parts:
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)
        out += packer.compress(part) + packer.flush()
    return out


def config_for(diff_ids: list[str]) -> bytes:
    arch, os_name = oci.host_platform()
    return json.dumps(
        {
            "architecture": arch,
            "os": os_name,
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()


def serve_layer(server: StaticRegistry, layer: bytes) -> None:
    """test/img:1 with the one layer; its config's diff id is not computed (a bomb's
    would take gigabytes), so nothing past the bound can match it anyway."""
    config = config_for(["sha256:" + "0" * 64])
    manifest = oci.build_manifest(
        digest(config),
        len(config),
        [oci.Descriptor(oci.LAYER_MEDIA_TYPES["gzip"], digest(layer), len(layer), {})],
    )
    server.add_blob("test/img", digest(config), config)
    server.add_manifest("test/img", "1", oci.MANIFEST_MEDIA_TYPE, manifest)
    server.add_blob("test/img", digest(layer), layer)


def test_a_layer_whose_headers_announce_a_bomb_is_refused_before_writing(tmp_path: Path) -> None:
    # A tar header announcing 2 GiB of file in a layer of a few hundred bytes.
    info = tarfile.TarInfo("bomb")
    info.size = 2 << 30
    layer = gzip_members(info.tobuf(format=tarfile.PAX_FORMAT) + bytes(4096))
    store = ImageStore(tmp_path / "store")
    with StaticRegistry() as server:
        serve_layer(server, layer)
        with pytest.raises(DecompressionBomb) as refused:
            pull(store, f"{server.host}/test/img:1")
    message = str(refused.value)
    assert f"layer {digest(layer)}" in message and "member 'bomb'" in message
    assert "decompression bomb" in message and "\n" not in message
    assert_store_empty(store)


def test_a_layer_that_expands_past_the_bound_is_refused(tmp_path: Path) -> None:
    # A small valid tar, then more than the bound of zeros in 64 MiB gzip members
    # (each compresses to about 64 KiB): tarfile stops at the tar's end, the digest
    # pass reads on, and the stream stops it at the bound.
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        data = b"hello\n"
        member = tarfile.TarInfo("hello")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    zeros = gzip_members(bytes(64 << 20))
    count = MIN_UNCOMPRESSED_LIMIT // (64 << 20) + 1
    layer = gzip_members(tar.getvalue()) + zeros * count
    assert len(layer) * 100 < MIN_UNCOMPRESSED_LIMIT  # the 1 GiB floor is the bound here
    store = ImageStore(tmp_path / "store")
    with StaticRegistry() as server:
        serve_layer(server, layer)
        with pytest.raises(DecompressionBomb) as refused:
            pull(store, f"{server.host}/test/img:1")
    message = str(refused.value)
    assert f"layer {digest(layer)}: expands past {MIN_UNCOMPRESSED_LIMIT} bytes" in message
    assert_store_empty(store)


def test_a_modest_layer_is_not_mistaken_for_a_bomb(tmp_path: Path) -> None:
    # 8 MiB of zeros in one file: 1000 times smaller compressed, but under the floor.
    layer = layer_tar([file("sparse.db", bytes(8 << 20))], compress=True)
    assert len(layer) * 100 < 8 << 20
    image = ArchiveImage([layer])
    with StaticRegistry() as server:
        serve_image(server, image, [layer])
        server.add_blob("test/img", digest(layer), layer)
        result = pull(ImageStore(tmp_path / "store"), f"{server.host}/test/img:1")
    assert result.image.id == image.id
    assert gzip.decompress(layer)  # sanity: it is the layer we meant


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_credentials_never_follow_a_redirect_to_another_host(scheme: str, tmp_path: Path) -> None:
    image = ArchiveImage([LAYER])
    with StaticRegistry(auth=scheme) as registry, StaticRegistry() as storage:
        serve_image(registry, image, [LAYER])
        path = f"/v2/test/img/blobs/{digest(LAYER)}"
        storage.content["/cdn/layer"] = ("application/octet-stream", LAYER)
        registry.redirects[path] = f"http://{storage.host}/cdn/layer"
        result = pull(ImageStore(tmp_path / "s"), f"{registry.host}/test/img:1", credentials=GOOD)
    assert result.image.id == image.id
    followed = [r for r in storage.requests if r.path == "/cdn/layer"]
    assert followed, "the redirect was not followed"
    assert all("Authorization" not in r.headers for r in followed)
    # The registry itself did get them (the blob request that was redirected).
    assert any("Authorization" in r.headers for r in registry.requests if r.path == path)


def test_a_token_realm_on_another_host_gets_the_credentials_as_docker_sends_them(
    tmp_path: Path,
) -> None:
    # Docker answers a bearer challenge by asking the realm the registry names for a
    # token, with the registry's credentials, whatever host the realm is on (Docker
    # Hub's realm is auth.docker.io, not the registry's host); it refuses a realm that
    # would downgrade to plain http, which only loopback or --insecure-registry hosts
    # may use. So do we; the realm never sees a request for content.
    image = ArchiveImage([LAYER])
    with StaticRegistry() as auth, StaticRegistry(auth="bearer") as registry:
        registry.realm_server = auth
        serve_image(registry, image, [LAYER])
        registry.add_blob("test/img", digest(LAYER), LAYER)
        result = pull(ImageStore(tmp_path / "s"), f"{registry.host}/test/img:1", credentials=GOOD)
    assert result.image.id == image.id
    token_requests = [r for r in auth.requests if r.path.startswith("/token")]
    assert token_requests and all(
        r.headers.get("Authorization", "").startswith("Basic ") for r in token_requests
    )
    assert [r for r in auth.requests if not r.path.startswith("/token")] == []
    registry_auth = {r.headers.get("Authorization", "") for r in registry.requests}
    assert not any(value.startswith("Basic ") for value in registry_auth)
