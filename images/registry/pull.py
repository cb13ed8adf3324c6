"""Pull an image from a registry into the store, moving only the layers it lacks.

The manifest (through an index, for this host's platform) and the config come
first; each layer whose diff id the store already holds unpacked is reported
"Already exists" and not fetched, whichever blob brought it there: the same
blob, or the same tar compressed differently (an `image import`, a `load`, a
pull from elsewhere). The store then records its own blob beside the manifest's
(see local_manifest.py), which save and push use. The others stream into a staging
area, are verified against their digests and diff ids and unpacked by the safe
unpacker; only when all of that succeeds does the store commit the image, with
its tag and its repository digest. A failure leaves the store as it was.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from pyswarm.common.credentials import Credentials
from pyswarm.images import oci
from pyswarm.images.errors import ImageNotFound
from pyswarm.images.registry.client import Manifest, RegistryClient
from pyswarm.images.registry.errors import PlatformNotFound, RegistryError
from pyswarm.images.registry.names import RemoteName, resolve_name
from pyswarm.images.registry.progress import (
    Progress,
    ProgressReader,
    Report,
    byte_reporter,
)
from pyswarm.images.staging import StagedImage, StagedLayer
from pyswarm.images.store import ImageStore, short_id
from pyswarm.proto import types_pb2

_INDEXES = {oci.INDEX_MEDIA_TYPE, oci.DOCKER_LIST_MEDIA_TYPE}


@dataclass
class PullResult:
    image: types_pb2.Image
    digest: str  # the digest the tag resolved to (an index's, for multi-platform images)
    name: str  # NAME:TAG or NAME@DIGEST as docker prints it
    updated: bool  # False when the tag already named this image


def pull(
    store: ImageStore,
    reference: str,
    *,
    credentials: Credentials | None = None,
    insecure: Collection[str] = (),
    report: Report | None = None,
    client: RegistryClient | None = None,
) -> PullResult:
    """Pull `reference` into `store`; `report` gets a Progress per layer event."""
    remote = resolve_name(reference)
    client = client or RegistryClient(remote.api_host, credentials=credentials, insecure=insecure)
    emit: Report = report or (lambda _: None)
    top = client.get_manifest(remote.repository, remote.target)
    manifest = _platform_manifest(client, remote, top)
    document = oci.parse_json(manifest.data, f"manifest {manifest.digest}")
    config = oci.manifest_config(document, f"manifest {manifest.digest}")
    layers = oci.parse_descriptors(document, "layers", f"manifest {manifest.digest}")
    name = str(remote.reference)
    with store.stage() as staging:
        config_digest = staging.add_blob(
            client.open_blob(remote.repository, config.digest, config.size),
            f"config of {name}",
            config.digest,
        )
        image = oci.parse_config(staging.blob_path(config_digest).read_bytes(), config_digest)
        if len(image.layers) != len(layers):
            raise RegistryError(
                f"{name}: manifest lists {len(layers)} layers, config {len(image.layers)}"
            )
        manifest_digest = staging.add_bytes(manifest.data, f"manifest of {name}", manifest.digest)
        staged_layers = []
        present = [store.has_layer(diff_id) for diff_id in image.layers]
        for layer, have in zip(layers, present, strict=True):  # every layer up front, as docker
            layer_id = short_id(layer.digest)
            if have:
                emit(Progress(layer_id, "Already exists", layer.size, layer.size))
            else:
                emit(Progress(layer_id, "Pulling fs layer", 0, layer.size))
        for layer, diff_id, have in zip(layers, image.layers, present, strict=True):
            layer_id = short_id(layer.digest)
            if not have:
                source = ProgressReader(
                    client.open_blob(remote.repository, layer.digest, layer.size),
                    byte_reporter(emit, layer_id, "Downloading", layer.size),
                )
                blob = staging.add_blob(source, f"layer {layer.digest}", layer.digest)
                emit(Progress(layer_id, "Extracting", layer.size, layer.size))
                staging.layer(blob, f"layer {layer.digest}", diff_id)
                emit(Progress(layer_id, "Pull complete", layer.size, layer.size))
            staged_layers.append(StagedLayer(layer.digest, layer.media_type, diff_id))
        if remote.reference.tag:
            image.repo_tags.append(remote.reference.tagged)
        image.repo_digests.append(f"{remote.reference.name}@{top.digest}")
        before = _tagged_id(store, remote)
        committed = store.commit(staging, [StagedImage(image, manifest_digest, staged_layers)])
    return PullResult(committed[0], top.digest, name, before != committed[0].id)


def _platform_manifest(client: RegistryClient, remote: RemoteName, top: Manifest) -> Manifest:
    """`top` itself, or the entry of an index for this host's (architecture, os)."""
    if top.media_type not in _INDEXES:
        return top
    document = oci.parse_json(top.data, f"index {top.digest}")
    entries = oci.parse_descriptors(document, "manifests", f"index {top.digest}")
    wanted = oci.host_platform()
    for entry in entries:
        if entry.platform == wanted:
            return client.get_manifest(remote.repository, entry.digest)
    raise PlatformNotFound(str(remote.reference), f"{wanted[1]}/{wanted[0]}")


def _tagged_id(store: ImageStore, remote: RemoteName) -> str:
    if not remote.reference.tag or remote.reference.digest:
        return ""
    try:
        return store.resolve(remote.reference.tagged).id
    except ImageNotFound:  # not there yet: the usual case
        return ""
