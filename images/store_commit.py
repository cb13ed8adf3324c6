"""Moving staged images into the store: layers and blobs by rename, then one index write.

Everything was verified in the staging area; here it only changes place, under
the store's lock. A layer or blob the store already has is not moved again. A
layer may be named by a blob the store lacks (a pull that found the diff id
already unpacked): the image then records the stored blob that carries the same
layer (`ImageRecord.local_blobs`, see local_manifest.py). If anything fails, the
index is read back from disk and the staging area (removed by its owner) takes
the rest with it.
"""

from __future__ import annotations

import os
import shutil

from pyswarm.images.errors import ImageError
from pyswarm.images.metadata import ImageRecord, LayerRecord
from pyswarm.images.staging import StagedImage, StagedLayer, Staging
from pyswarm.images.store_files import StoreFiles
from pyswarm.images.store_lookup import copy_image
from pyswarm.proto import types_pb2

_SHORT_NAME = 12


def commit(files: StoreFiles, staging: Staging, staged: list[StagedImage]) -> list[types_pb2.Image]:
    """Add `staged` (with their tags and repo digests) and return the stored images."""
    with files.lock:
        try:
            for item in staged:
                local_blobs = [_local_blob(files, staging, layer) for layer in item.layers]
                for layer, local in zip(item.layers, local_blobs, strict=True):
                    _place_layer(files, staging, layer, local)
                for digest in [item.image.id, item.manifest_digest, *local_blobs]:
                    _place_blob(files, staging, digest)
                _add_image(files, item, local_blobs)
            files.meta.write(files.index_path)
        except BaseException:
            files.reload()
            raise
        ids = dict.fromkeys(item.image.id for item in staged)
        return [copy_image(files.meta.images[image_id].image) for image_id in ids]


def move_tag(files: StoreFiles, tag: str, record: ImageRecord) -> None:
    """Point `tag` at `record`; the image that had it keeps its other tags."""
    previous = files.meta.image_with_tag(tag)
    if previous is record:
        return
    if previous is not None:
        previous.image.repo_tags.remove(tag)
    record.image.repo_tags.append(tag)


def _local_blob(files: StoreFiles, staging: Staging, layer: StagedLayer) -> str:
    """The blob to keep for `layer`: its own, or a stored one of the same diff id."""
    if layer.blob in staging.blobs or layer.blob in files.meta.blobs:
        return layer.blob
    carrier = files.meta.layer_carrier(layer.diff_id)
    if not carrier:  # pruned since the pull saw it in the store
        raise ImageError(f"blob {layer.blob} was removed while being used: pull again")
    return carrier


def _place_layer(files: StoreFiles, staging: Staging, layer: StagedLayer, local_blob: str) -> None:
    meta = files.meta
    if layer.diff_id in meta.layers:
        return
    source = staging.layers.get(layer.diff_id)
    if source is None:  # it was in the store at staging time and pruned since
        if local_blob not in staging.blobs:
            raise ImageError(f"layer {layer.diff_id} was removed while being used: pull again")
        source = staging.unpack_again(local_blob, f"layer {layer.diff_id}")
    directory, size = source
    hex_id = layer.diff_id.removeprefix("sha256:")
    taken = {record.dir for record in meta.layers.values()}
    length = _SHORT_NAME
    while hex_id[:length] in taken:
        length += 4
    name = hex_id[:length]
    shutil.rmtree(files.layer_root / name, ignore_errors=True)  # a crash leftover
    os.rename(directory, files.layer_root / name)
    meta.layers[layer.diff_id] = LayerRecord(name, size)


def _place_blob(files: StoreFiles, staging: Staging, digest: str) -> None:
    if digest in files.meta.blobs:
        return
    if digest not in staging.blobs:  # pruned since the pull saw it in the store
        raise ImageError(f"blob {digest} was removed while being used: pull again")
    path, size = staging.blobs[digest]
    os.rename(path, files.blob_path(digest))
    files.meta.blobs[digest] = size


def _add_image(files: StoreFiles, item: StagedImage, local_blobs: list[str]) -> None:
    meta = files.meta
    record = meta.images.get(item.image.id)
    if record is None:
        image = copy_image(item.image)
        del image.repo_tags[:]
        del image.repo_digests[:]
        image.manifest_digest = item.manifest_digest
        image.size = sum(meta.layers[d].size for d in set(image.layers))
        if not image.HasField("created_at"):
            image.created_at.GetCurrentTime()
        record = ImageRecord(image, [layer.blob for layer in item.layers], local_blobs)
        meta.images[image.id] = record
    for tag in item.image.repo_tags:
        move_tag(files, tag, record)
    for repo_digest in item.image.repo_digests:
        if repo_digest not in record.image.repo_digests:
            record.image.repo_digests.append(repo_digest)
