"""A stage's current image, and turning one build step into a new stored image.

Each step's image is a full image in the store (config blob, manifest, layers), so a
RUN can start a container from it and the cache can hand it out again. The config is
the parent's document with the step's change, a new history entry (`empty_layer`
for metadata steps) and, for file steps, one more diff id: whatever the base image
carried that this builder does not know is kept as it was.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyswarm.images import ImageStore, oci
from pyswarm.images.local_manifest import layer_media_type
from pyswarm.images.staging import StagedImage, StagedLayer, Staging

PLAIN_LAYER = oci.LAYER_MEDIA_TYPES[""]


@dataclass
class ImageState:
    """Where a stage is: its image id ("" on `FROM scratch` before any step), the
    config document and the layers bottom-up."""

    image_id: str
    document: dict[str, Any]
    layers: list[StagedLayer] = field(default_factory=list)

    @property
    def config(self) -> dict[str, Any]:
        runtime: dict[str, Any] = self.document.setdefault("config", {})
        return runtime


def scratch() -> ImageState:
    arch, os_name = oci.host_platform()
    document = {
        "architecture": arch,
        "os": os_name,
        "config": {"Env": [oci.DEFAULT_PATH]},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    }
    return ImageState("", document)


def load(store: ImageStore, reference: str) -> ImageState:
    """The state of a stored image: its config as stored, its layers as the blobs this
    store holds (a pulled layer the store already had may sit in another blob than the
    registry's manifest names; the built image's manifest names the local one)."""
    image = store.resolve(reference)
    document = oci.parse_json(store.blob_path(image.id).read_bytes(), f"image {image.id}")
    layers = [
        StagedLayer(blob, layer_media_type(store.blob_path(blob), oci.MANIFEST_MEDIA_TYPE), diff_id)
        for blob, diff_id in zip(store.local_layer_blobs(image.id), image.layers, strict=True)
    ]
    document.setdefault("history", [])
    return ImageState(image.id, document, layers)


def commit(
    store: ImageStore,
    state: ImageState,
    created_by: str,
    layer_tar: Path | None,
    *,
    comment: str = "",
) -> ImageState:
    """A new image: `state` plus `layer_tar` (None for a metadata-only step)."""
    document = copy.deepcopy(state.document)
    created = oci.rfc3339(datetime.now(UTC))
    entry: dict[str, Any] = {"created": created, "created_by": created_by}
    if comment:
        entry["comment"] = comment
    label = f"build step {created_by[:60]!r}"
    with store.stage() as staging:
        layers = list(state.layers)
        if layer_tar is not None:
            with open(layer_tar, "rb") as source:
                blob = staging.add_blob(source, label)
            diff_id = staging.layer(blob, label)
            layers.append(StagedLayer(blob, PLAIN_LAYER, diff_id))
            document.setdefault("rootfs", {"type": "layers"}).setdefault("diff_ids", [])
            document["rootfs"]["diff_ids"].append(diff_id)
        else:
            entry["empty_layer"] = True
        document.setdefault("history", []).append(entry)
        document["created"] = created
        config = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        config_digest = staging.add_bytes(config, label)
        descriptors = [
            oci.Descriptor(layer.media_type, layer.blob, _blob_size(store, staging, layer.blob), {})
            for layer in layers
        ]
        manifest = oci.build_manifest(config_digest, len(config), descriptors)
        manifest_digest = staging.add_bytes(manifest, label)
        image = oci.parse_config(config, config_digest)
        store.commit(staging, [StagedImage(image, manifest_digest, layers)])
    return ImageState(config_digest, document, layers)


def _blob_size(store: ImageStore, staging: Staging, digest: str) -> int:
    if digest in staging.blobs:
        return staging.blobs[digest][1]
    return store.blob_path(digest).stat().st_size
