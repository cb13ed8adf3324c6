"""Push an image from the store to a registry, uploading only the blobs it lacks.

Each layer blob is checked with HEAD first ("Layer already exists"); a blob the
image was pulled with from another repository of the same registry is mounted
from there; the rest are uploaded (chunked when larger than `chunk_size`). The
config follows, then the manifest under the tag, which publishes the image.

A layer the store keeps in another blob than the manifest's (a pull that found
its diff id already unpacked, see local_manifest.py) is pushed as the manifest
says when the registry has that blob; otherwise the stored blob goes up and the
manifest pushed is rewritten to name it (same config, so the same image id, but
another manifest digest, which the result reports).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from pyswarm.common.credentials import Credentials
from pyswarm.images.digest import sha256_bytes
from pyswarm.images.local_manifest import local_manifest
from pyswarm.images.registry.client import Manifest, RegistryClient
from pyswarm.images.registry.client import _embedded_media_type as media_type_of
from pyswarm.images.registry.names import resolve_name
from pyswarm.images.registry.progress import (
    Progress,
    ProgressReader,
    Report,
    byte_reporter,
)
from pyswarm.images.store import ImageStore, short_id

DEFAULT_CHUNK = 16 << 20


@dataclass
class PushResult:
    digest: str
    size: int  # bytes of the manifest, as docker prints "size: N"
    tag: str


def push(
    store: ImageStore,
    reference: str,
    *,
    credentials: Credentials | None = None,
    insecure: Collection[str] = (),
    report: Report | None = None,
    client: RegistryClient | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> PushResult:
    """Push the image `reference` names (its registry host is in the name) to its registry."""
    remote = resolve_name(reference)
    image = store.resolve(reference)
    client = client or RegistryClient(remote.api_host, credentials=credentials, insecure=insecure)
    emit: Report = report or (lambda _: None)
    repo = remote.repository
    sources = _mount_sources(image.repo_digests, remote.host, repo)
    layer_blobs = store.layer_blobs(image.id)
    sent: list[str] = []  # the blob each layer is pushed as
    for blob, local in zip(layer_blobs, store.local_layer_blobs(image.id), strict=True):
        if blob != local and _reachable(client, repo, blob, sources, emit):
            sent.append(blob)  # the registry has the manifest's own blob: keep it
        else:
            _push_blob(client, store, repo, local, sources, emit, chunk_size)
            sent.append(local)
    config_path = store.blob_path(image.id)
    if not client.has_blob(repo, image.id, push=True):
        with open(config_path, "rb") as f:
            client.upload_blob(repo, image.id, f, config_path.stat().st_size)
    stored = store.blob_path(image.manifest_digest).read_bytes()
    data = local_manifest(stored, layer_blobs, sent, store.blob_path)
    manifest = Manifest(media_type_of(data), data, sha256_bytes(data))
    tag = remote.reference.tag or "latest"
    client.put_manifest(repo, tag, manifest)
    return PushResult(manifest.digest, len(data), tag)


def _reachable(
    client: RegistryClient, repo: str, blob: str, sources: list[str], emit: Report
) -> bool:
    """True when `repo` has `blob` (a blob this store lacks) or can mount it from `sources`."""
    if client.has_blob(repo, blob, push=True):
        emit(Progress(short_id(blob), "Layer already exists", 0, 0))
        return True
    mounted = next((s for s in sources if client.mount_blob(repo, blob, s)), "")
    if mounted:
        emit(Progress(short_id(blob), f"Mounted from {mounted}", 0, 0))
    return bool(mounted)


def _push_blob(
    client: RegistryClient,
    store: ImageStore,
    repo: str,
    blob: str,
    sources: list[str],
    emit: Report,
    chunk_size: int,
) -> None:
    """Make sure `repo` has stored blob `blob`: already there, mounted or uploaded."""
    layer_id = short_id(blob)
    path = store.blob_path(blob)
    size = path.stat().st_size
    if client.has_blob(repo, blob, push=True):
        emit(Progress(layer_id, "Layer already exists", size, size))
        return
    mounted = next((s for s in sources if client.mount_blob(repo, blob, s)), "")
    if mounted:
        emit(Progress(layer_id, f"Mounted from {mounted}", size, size))
        return
    emit(Progress(layer_id, "Preparing", 0, size))
    with open(path, "rb") as f:
        source = ProgressReader(f, byte_reporter(emit, layer_id, "Pushing", size))
        client.upload_blob(repo, blob, source, size, chunk_size)  # type: ignore[arg-type]
    emit(Progress(layer_id, "Pushed", size, size))


def _mount_sources(repo_digests: Collection[str], host: str, repository: str) -> list[str]:
    """Other repositories of the same registry this image was pulled from."""
    sources = []
    for entry in repo_digests:
        name = entry.split("@", 1)[0]
        first, _, rest = name.partition("/")
        if first == host and rest and rest != repository:
            sources.append(rest)
    return sources
