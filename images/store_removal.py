"""What images cost and how they go: `docker rmi`, `image prune` and `system df` counts.

Removal changes the index first and the files after it, so a crash in between
leaves only files the index no longer names (swept when the store opens). A
layer or blob goes when no image is left that uses it; an image keeps alive its
config, its manifest and the stored blob of each layer (which may be another
compression of the manifest's, see local_manifest.py).
"""

from __future__ import annotations

from pyswarm.images.errors import ImageConflict
from pyswarm.images.store_files import StoreFiles
from pyswarm.images.store_lookup import find, repositories, short_id
from pyswarm.proto import agent_pb2, types_pb2


def remove(
    files: StoreFiles, ref: str, *, force: bool, in_use: set[str]
) -> tuple[list[str], list[str]]:
    """Untag or delete as `docker rmi` does; returns (untagged refs, deleted image ids).

    A tag of an image with other tags is only untagged. An image in `in_use` is never
    deleted: without `force` that is a conflict; with `force` its tags are removed and
    its content kept for the containers using it. Removing by id an image tagged in
    several repositories needs `force`.
    """
    with files.lock:
        record, tag = find(files.meta, ref)
        image = record.image
        if tag and len(image.repo_tags) > 1:
            image.repo_tags.remove(tag)
            files.save_index()
            return [tag], []
        if image.id in in_use:
            if not force:
                raise ImageConflict(_in_use_message(ref, image.id, by_tag=bool(tag)))
            untagged = _untag_all(image)
            files.save_index()
            return untagged, []
        if not tag and len(set(repositories(image))) > 1 and not force:
            raise ImageConflict(
                f"conflict: unable to delete {short_id(image.id)} (must be forced)"
                " - image is referenced in multiple repositories"
            )
        untagged = _untag_all(image)
        delete(files, [image.id])
        return untagged, [image.id]


def prune(files: StoreFiles, *, all: bool, in_use: set[str]) -> tuple[list[str], int]:
    """Delete dangling (untagged) images, or every unused one with `all`.

    Also drops layers and blobs no image references. Returns (deleted ids, bytes freed).
    """
    with files.lock:
        doomed = [
            image_id
            for image_id, record in files.meta.images.items()
            if image_id not in in_use and (all or not record.image.repo_tags)
        ]
        return doomed, delete(files, doomed)


def delete(files: StoreFiles, image_ids: list[str]) -> int:
    """Drop images and whatever only they used; index first, then files. Bytes freed."""
    with files.lock:
        meta = files.meta
        for image_id in image_ids:
            del meta.images[image_id]
        blobs_kept = {d for r in meta.images.values() for d in r.blobs()}
        layers_kept = {d for r in meta.images.values() for d in r.image.layers}
        dead_blobs = {d: s for d, s in meta.blobs.items() if d not in blobs_kept}
        dead_layers = {d: r for d, r in meta.layers.items() if d not in layers_kept}
        for digest in dead_blobs:
            del meta.blobs[digest]
        for diff_id in dead_layers:
            del meta.layers[diff_id]
        files.save_index()
        for digest in dead_blobs:
            files.blob_path(digest).unlink(missing_ok=True)
        for record in dead_layers.values():
            files.remove_dir(files.layer_root / record.dir)
        return sum(dead_blobs.values()) + sum(r.size for r in dead_layers.values())


def disk_usage(files: StoreFiles, in_use: set[str]) -> agent_pb2.DiskUsageResponse:
    """Image counts and bytes; each shared layer is counted once."""
    with files.lock:
        meta = files.meta
        users = meta.layer_users()
        size = {d: meta.layers[d].size for d in users if d in meta.layers}
        active = [r for i, r in meta.images.items() if i in in_use]
        active_layers = {d for r in active for d in r.image.layers}
        total = sum(size.values())
        shared = sum(s for d, s in size.items() if users[d] > 1)
        return agent_pb2.DiskUsageResponse(
            images_count=len(meta.images),
            images_active=len(active),
            images_size=total,
            images_shared_size=shared,
            images_unique_size=total - shared,
            images_reclaimable=total - sum(size.get(d, 0) for d in active_layers),
            blobs_size=sum(meta.blobs.values()),
        )


def _untag_all(image: types_pb2.Image) -> list[str]:
    untagged = [*image.repo_tags, *image.repo_digests]
    del image.repo_tags[:]
    del image.repo_digests[:]
    return untagged


def _in_use_message(ref: str, image_id: str, *, by_tag: bool) -> str:
    if by_tag:
        return (
            f'conflict: unable to remove repository reference "{ref}" (must force)'
            f" - image {short_id(image_id)} is being used by a container"
        )
    return (
        f"conflict: unable to delete {short_id(image_id)} (must be forced)"
        " - image is being used by a container"
    )
