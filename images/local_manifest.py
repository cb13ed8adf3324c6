"""The manifest of an image as this store holds it, when that differs from the pulled one.

A pull that finds a layer's diff id already unpacked does not fetch the
manifest's blob for it: the store keeps the layer through another blob with the
same uncompressed content (say the plain tar `image import` stored, where the
registry has it gzip-compressed). The image keeps the registry's manifest, so its
id, manifest digest and repo digest stay what the registry says. Whatever writes
the image out (`image save`, `image push` to a registry that lacks the manifest's
blob) sends the stored blob instead, in a copy of the manifest whose layer
descriptors are rewritten to name it; config and diff ids, hence the image id,
do not change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyswarm.images import oci
from pyswarm.images.digest import compression_of

# Docker's layer media types, for manifests of docker's own media type.
_DOCKER_LAYER_TYPES = {
    "": "application/vnd.docker.image.rootfs.diff.tar",
    "gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
}


def layer_media_type(blob: Path, manifest_media_type: str) -> str:
    """The media type a manifest of `manifest_media_type` gives the layer blob `blob`."""
    compression = compression_of(blob)
    if manifest_media_type == oci.DOCKER_MANIFEST_MEDIA_TYPE:
        docker_type = _DOCKER_LAYER_TYPES.get(compression)
        if docker_type:
            return docker_type
    return oci.LAYER_MEDIA_TYPES[compression]


def local_manifest(
    manifest: bytes,
    layer_blobs: list[str],
    local_blobs: list[str],
    blob_file: Callable[[str], Path],
) -> bytes:
    """`manifest` with each layer blob replaced by its local blob (the same bytes if none is).

    `blob_file(digest)` finds a stored blob, to learn its size and compression.
    """
    pairs = zip(layer_blobs, local_blobs, strict=True)
    replaced = {theirs: ours for theirs, ours in pairs if theirs != ours}
    if not replaced:
        return manifest
    document: dict[str, Any] = json.loads(manifest)
    media_type = str(document.get("mediaType") or oci.MANIFEST_MEDIA_TYPE)
    layers = []
    for entry in document.get("layers", []):
        ours = replaced.get(entry.get("digest"))
        if ours:
            path = blob_file(ours)
            entry = {
                **{k: v for k, v in entry.items() if k not in ("urls",)},
                "mediaType": layer_media_type(path, media_type),
                "digest": ours,
                "size": path.stat().st_size,
            }
        layers.append(entry)
    document["layers"] = layers
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
