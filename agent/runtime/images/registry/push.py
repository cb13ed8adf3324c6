"""Push an image from the store to a registry, uploading only the blobs it lacks.

Each layer blob is checked with HEAD first ("Layer already exists"); a blob the
image was pulled with from another repository of the same registry is mounted
from there; the rest are uploaded (chunked when larger than `chunk_size`). The
config follows, then the manifest under the tag, which publishes the image.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from pyswarm.agent.runtime.images.registry.client import Manifest, RegistryClient
from pyswarm.agent.runtime.images.registry.client import _embedded_media_type as media_type_of
from pyswarm.agent.runtime.images.registry.names import resolve_name
from pyswarm.agent.runtime.images.registry.progress import (
    Progress,
    ProgressReader,
    Report,
    byte_reporter,
)
from pyswarm.agent.runtime.images.store import ImageStore, short_id
from pyswarm.common.credentials import Credentials

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
    for blob in store.layer_blobs(image.id):
        layer_id = short_id(blob)
        path = store.blob_path(blob)
        size = path.stat().st_size
        if client.has_blob(repo, blob, push=True):
            emit(Progress(layer_id, "Layer already exists", size, size))
            continue
        mounted = next((s for s in sources if client.mount_blob(repo, blob, s)), "")
        if mounted:
            emit(Progress(layer_id, f"Mounted from {mounted}", size, size))
            continue
        emit(Progress(layer_id, "Preparing", 0, size))
        with open(path, "rb") as f:
            source = ProgressReader(f, byte_reporter(emit, layer_id, "Pushing", size))
            client.upload_blob(repo, blob, source, size, chunk_size)  # type: ignore[arg-type]
        emit(Progress(layer_id, "Pushed", size, size))
    config_path = store.blob_path(image.id)
    if not client.has_blob(repo, image.id, push=True):
        with open(config_path, "rb") as f:
            client.upload_blob(repo, image.id, f, config_path.stat().st_size)
    data = store.blob_path(image.manifest_digest).read_bytes()
    manifest = Manifest(media_type_of(data), data, image.manifest_digest)
    tag = remote.reference.tag or "latest"
    client.put_manifest(repo, tag, manifest)
    return PushResult(manifest.digest, len(data), tag)


def _mount_sources(repo_digests: Collection[str], host: str, repository: str) -> list[str]:
    """Other repositories of the same registry this image was pulled from."""
    sources = []
    for entry in repo_digests:
        name = entry.split("@", 1)[0]
        first, _, rest = name.partition("/")
        if first == host and rest and rest != repository:
            sources.append(rest)
    return sources
