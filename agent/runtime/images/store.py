"""ImageStore: the content-addressed image store of one agent.

Layout under `root`:
    blobs/sha256/<hex>   configs, manifests and layer blobs as they arrived
    l/<12+ hex>          one unpacked dir per layer diff id, shared by every image
                         using it; short names keep overlay's lowerdir option small
    tmp/                 staging areas and the agent's upload spool (same filesystem)
    metadata.json        the index (see metadata.py), replaced atomically
Archives are staged and verified under tmp/ and moved into place with renames, so
a rejected archive writes nothing. Methods are safe to call from several threads:
one lock guards the index. After a crash, files the index does not name are
removed when the store is opened.
"""

from __future__ import annotations

import builtins
import os
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from pyswarm.agent.runtime.images import oci
from pyswarm.agent.runtime.images.archive import read_archive
from pyswarm.agent.runtime.images.digest import compression_of
from pyswarm.agent.runtime.images.errors import (
    ImageConflict,
    ImageError,
    ImageNotFound,
    InvalidReference,
)
from pyswarm.agent.runtime.images.metadata import ImageRecord, LayerRecord, Metadata
from pyswarm.agent.runtime.images.reference import is_id_prefix, parse_reference, parse_tagged
from pyswarm.agent.runtime.images.save import SavedImage, write_archive
from pyswarm.agent.runtime.images.staging import StagedImage, StagedLayer, Staging
from pyswarm.proto import agent_pb2, types_pb2

_SHORT_NAME = 12


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


class ImageStore:
    """Images and their layers under `root` (created if missing)."""

    def __init__(self, root: Path) -> None:
        root = root.absolute()  # layer dirs go into mount options: never relative
        self.root = root
        self.blob_dir = root / "blobs" / "sha256"
        self.layer_root = root / "l"
        self.tmp_dir = root / "tmp"
        for directory in (self.blob_dir, self.layer_root, self.tmp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.chmod(0o700)
        self._index = root / "metadata.json"
        self._lock = threading.RLock()
        self._meta = Metadata.read(self._index)
        self._remove_leftovers()

    # ---- adding images -------------------------------------------------------------

    def import_rootfs(
        self, tar_path: Path, reference: str, config: types_pb2.ImageConfig | None = None
    ) -> types_pb2.Image:
        """Make a one-layer image from a rootfs tar (plain or compressed), tagged `reference`.

        The config defaults to Cmd ["sh"] and the usual PATH. Its creation time is the
        newest mtime in the tar, so importing the same tar twice gives the same id.
        """
        tag = parse_tagged(reference).tagged
        label = f"rootfs {tar_path.name}"
        with Staging(self.tmp_dir, self._has_layer) as staging:
            with open(tar_path, "rb") as source:
                blob = staging.add_blob(source, label)
            diff_id = staging.layer(blob, label)
            created = datetime.fromtimestamp(staging.newest_mtime.get(diff_id, 0.0), UTC)
            config_json = oci.build_config(
                config if config is not None else oci.default_config(),
                [diff_id],
                created,
                "pyswarm image import",
            )
            config_digest = staging.add_bytes(config_json, label)
            media_type = oci.LAYER_MEDIA_TYPES[compression_of(staging.blob_path(blob))]
            layer = oci.Descriptor(media_type, blob, staging.blobs[blob][1], {})
            manifest = oci.build_manifest(config_digest, len(config_json), [layer])
            manifest_digest = staging.add_bytes(manifest, label)
            image = oci.parse_config(config_json, config_digest)
            image.repo_tags.append(tag)
            staged = StagedImage(image, manifest_digest, [StagedLayer(blob, media_type, diff_id)])
            return self._commit(staging, [staged])[0]

    def load(self, archive_path: Path) -> builtins.list[types_pb2.Image]:
        """Load every image of a `docker save` or OCI archive, with the archive's tags."""
        with Staging(self.tmp_dir, self._has_layer) as staging:
            return self._commit(staging, read_archive(archive_path, staging))

    def _has_layer(self, diff_id: str) -> bool:
        with self._lock:
            return diff_id in self._meta.layers

    # ---- for the registry client ---------------------------------------------------

    def stage(self) -> Staging:
        """A staging area for content arriving from elsewhere (a registry pull)."""
        return Staging(self.tmp_dir, self._has_layer)

    def has_layer_blob(self, blob: str, diff_id: str) -> bool:
        """True when blob `blob` is stored and its layer `diff_id` is unpacked."""
        with self._lock:
            return blob in self._meta.blobs and diff_id in self._meta.layers

    def commit(
        self, staging: Staging, staged: builtins.list[StagedImage]
    ) -> builtins.list[types_pb2.Image]:
        """Move staged images into the store (blobs the store already has may be absent)."""
        return self._commit(staging, staged)

    def blob_path(self, digest: str) -> Path:
        """The stored file of blob `digest` (configs, manifests, layer blobs)."""
        with self._lock:
            if digest not in self._meta.blobs:
                raise ImageError(f"blob {digest} is missing from the store")
            return self._blob_path(digest)

    def layer_blobs(self, image_id: str) -> builtins.list[str]:
        """The layer blob digests of image `image_id`'s manifest, bottom-up."""
        with self._lock:
            record = self._meta.images.get(image_id)
            if record is None:
                raise ImageNotFound(image_id)
            return list(record.layer_blobs)

    def _commit(
        self, staging: Staging, staged: builtins.list[StagedImage]
    ) -> builtins.list[types_pb2.Image]:
        with self._lock:
            try:
                for item in staged:
                    for layer in item.layers:
                        self._place_layer(staging, layer)
                    blobs = [item.image.id, item.manifest_digest, *(x.blob for x in item.layers)]
                    for digest in blobs:
                        self._place_blob(staging, digest)
                    self._add_image(item)
                self._meta.write(self._index)
            except BaseException:
                self._meta = Metadata.read(self._index)
                raise
            ids = dict.fromkeys(item.image.id for item in staged)
            return [_copy(self._meta.images[image_id].image) for image_id in ids]

    def _place_layer(self, staging: Staging, layer: StagedLayer) -> None:
        if layer.diff_id in self._meta.layers:
            return
        source = staging.layers.get(layer.diff_id)
        if source is None:  # it was in the store at staging time and pruned since
            source = staging.unpack_again(layer.blob, f"layer {layer.diff_id}")
        directory, size = source
        hex_id = layer.diff_id.removeprefix("sha256:")
        taken = {record.dir for record in self._meta.layers.values()}
        length = _SHORT_NAME
        while hex_id[:length] in taken:
            length += 4
        name = hex_id[:length]
        shutil.rmtree(self.layer_root / name, ignore_errors=True)  # a crash leftover
        os.rename(directory, self.layer_root / name)
        self._meta.layers[layer.diff_id] = LayerRecord(name, size)

    def _place_blob(self, staging: Staging, digest: str) -> None:
        if digest in self._meta.blobs:
            return
        if digest not in staging.blobs:  # pruned since the pull saw it in the store
            raise ImageError(f"blob {digest} was removed while being used: pull again")
        path, size = staging.blobs[digest]
        os.rename(path, self._blob_path(digest))
        self._meta.blobs[digest] = size

    def _add_image(self, item: StagedImage) -> None:
        record = self._meta.images.get(item.image.id)
        if record is None:
            image = _copy(item.image)
            del image.repo_tags[:]
            del image.repo_digests[:]
            image.manifest_digest = item.manifest_digest
            image.size = sum(self._meta.layers[d].size for d in set(image.layers))
            if not image.HasField("created_at"):
                image.created_at.GetCurrentTime()
            record = ImageRecord(image, [layer.blob for layer in item.layers])
            self._meta.images[image.id] = record
        for tag in item.image.repo_tags:
            self._move_tag(tag, record)
        for repo_digest in item.image.repo_digests:
            if repo_digest not in record.image.repo_digests:
                record.image.repo_digests.append(repo_digest)

    def _move_tag(self, tag: str, record: ImageRecord) -> None:
        """Point `tag` at `record`; the image that had it keeps its other tags."""
        previous = self._meta.image_with_tag(tag)
        if previous is record:
            return
        if previous is not None:
            previous.image.repo_tags.remove(tag)
        record.image.repo_tags.append(tag)

    # ---- reading -------------------------------------------------------------------

    def list(self) -> builtins.list[types_pb2.Image]:
        """Every image, newest first."""
        with self._lock:
            records = list(self._meta.images.values())
        images = [_copy(record.image) for record in records]
        images.sort(key=lambda i: (i.created_at.seconds, i.created_at.nanos, i.id), reverse=True)
        return images

    def resolve(self, ref: str) -> types_pb2.Image:
        """The image `ref` names: NAME[:TAG], NAME@DIGEST, a full id or a unique id prefix."""
        with self._lock:
            return _copy(self._find(ref)[0].image)

    def _find(self, ref: str) -> tuple[ImageRecord, str]:
        """The record `ref` names and, when `ref` named a tag, that NAME:TAG."""
        if ref.startswith("sha256:") and len(ref) == 71:
            record = self._meta.images.get(ref)
            if record is None:
                raise ImageNotFound(ref)
            return record, ""
        try:
            parsed = parse_reference(ref)
        except InvalidReference:
            if not is_id_prefix(ref):
                raise
        else:
            if parsed.digest:
                for record in self._meta.images.values():
                    if parsed.digest in (record.image.id, record.image.manifest_digest) and (
                        parsed.name in _repositories(record.image)
                    ):
                        return record, ""
            else:
                record_or_none = self._meta.image_with_tag(parsed.tagged)
                if record_or_none is not None:
                    return record_or_none, parsed.tagged
        if is_id_prefix(ref):
            prefix = "sha256:" + ref.removeprefix("sha256:")
            matches = [r for i, r in self._meta.images.items() if i.startswith(prefix)]
            if len(matches) == 1:
                return matches[0], ""
            if len(matches) > 1:
                raise InvalidReference(ref, f"id prefix matches {len(matches)} images")
        raise ImageNotFound(ref)

    def layer_dirs(self, image: types_pb2.Image) -> builtins.list[Path]:
        """The image's unpacked layer dirs, top-most first (overlayfs lowerdir order)."""
        with self._lock:
            dirs: builtins.list[Path] = []
            for diff_id in reversed(image.layers):
                record = self._meta.layers.get(diff_id)
                if record is None:
                    raise ImageError(
                        f"image {short_id(image.id)}: layer {diff_id} is missing from the store"
                    )
                path = self.layer_root / record.dir
                if path not in dirs:  # a repeated layer adds nothing above its top copy
                    dirs.append(path)
            return dirs

    def disk_usage(self, in_use: set[str]) -> agent_pb2.DiskUsageResponse:
        """Image counts and bytes; each shared layer is counted once."""
        with self._lock:
            users = self._meta.layer_users()
            size = {d: self._meta.layers[d].size for d in users if d in self._meta.layers}
            active = [r for i, r in self._meta.images.items() if i in in_use]
            active_layers = {d for r in active for d in r.image.layers}
            total = sum(size.values())
            shared = sum(s for d, s in size.items() if users[d] > 1)
            return agent_pb2.DiskUsageResponse(
                images_count=len(self._meta.images),
                images_active=len(active),
                images_size=total,
                images_shared_size=shared,
                images_unique_size=total - shared,
                images_reclaimable=total - sum(size.get(d, 0) for d in active_layers),
                blobs_size=sum(self._meta.blobs.values()),
            )

    # ---- naming and removing ---------------------------------------------------------

    def tag(self, source: str, target: str) -> types_pb2.Image:
        """Add tag `target` to the image `source` names (moving it from another image)."""
        tag = parse_tagged(target).tagged
        with self._lock:
            record, _ = self._find(source)
            self._move_tag(tag, record)
            self._save_index()
            return _copy(record.image)

    def remove(
        self, ref: str, *, force: bool, in_use: set[str]
    ) -> tuple[builtins.list[str], builtins.list[str]]:
        """Untag or delete as `docker rmi` does; returns (untagged refs, deleted image ids).

        A tag of an image with other tags is only untagged. An image in `in_use` is never
        deleted: without `force` that is a conflict; with `force` its tags are removed and
        its content kept for the containers using it. Removing by id an image tagged in
        several repositories needs `force`.
        """
        with self._lock:
            record, tag = self._find(ref)
            image = record.image
            if tag and len(image.repo_tags) > 1:
                image.repo_tags.remove(tag)
                self._save_index()
                return [tag], []
            if image.id in in_use:
                if not force:
                    raise ImageConflict(_in_use_message(ref, image.id, by_tag=bool(tag)))
                untagged = _untag_all(image)
                self._save_index()
                return untagged, []
            if not tag and len(set(_repositories(image))) > 1 and not force:
                raise ImageConflict(
                    f"conflict: unable to delete {short_id(image.id)} (must be forced)"
                    " - image is referenced in multiple repositories"
                )
            untagged = _untag_all(image)
            self._delete([image.id])
            return untagged, [image.id]

    def prune(self, *, all: bool, in_use: set[str]) -> tuple[builtins.list[str], int]:
        """Delete dangling (untagged) images, or every unused one with `all`.

        Also drops layers and blobs no image references. Returns (deleted ids, bytes freed).
        """
        with self._lock:
            doomed = [
                image_id
                for image_id, record in self._meta.images.items()
                if image_id not in in_use and (all or not record.image.repo_tags)
            ]
            return doomed, self._delete(doomed)

    def _delete(self, image_ids: builtins.list[str]) -> int:
        """Drop images and whatever only they used; index first, then files. Bytes freed."""
        for image_id in image_ids:
            del self._meta.images[image_id]
        blobs_kept = {d for r in self._meta.images.values() for d in r.blobs()}
        layers_kept = {d for r in self._meta.images.values() for d in r.image.layers}
        dead_blobs = {d: s for d, s in self._meta.blobs.items() if d not in blobs_kept}
        dead_layers = {d: r for d, r in self._meta.layers.items() if d not in layers_kept}
        for digest in dead_blobs:
            del self._meta.blobs[digest]
        for diff_id in dead_layers:
            del self._meta.layers[diff_id]
        self._save_index()
        for digest in dead_blobs:
            self._blob_path(digest).unlink(missing_ok=True)
        for record in dead_layers.values():
            _remove_dir(self.layer_root / record.dir, self.tmp_dir)
        return sum(dead_blobs.values()) + sum(r.size for r in dead_layers.values())

    # ---- saving --------------------------------------------------------------------

    def save(self, references: builtins.list[str], out_path: Path) -> None:
        """Write the images `references` name to one archive docker and OCI tools load.

        NAME:TAG saves that tag, a bare NAME every tag of that repository, an id the
        image without tags. Blobs are hard-linked aside under the lock, then written
        without it.
        """
        if not references:
            raise InvalidReference("", "image save needs at least one image")
        with self._lock:
            chosen: dict[str, SavedImage] = {}
            for ref in references:
                for record, tags in self._select_for_save(ref):
                    saved = chosen.setdefault(
                        record.image.id, SavedImage(_copy(record.image), [], record.layer_blobs)
                    )
                    saved.tags.extend(t for t in tags if t not in saved.tags)
            spool = Path(os.path.join(self.tmp_dir, f"save-{os.getpid()}-{time.monotonic_ns()}"))
            spool.mkdir()
            try:
                for digest in {d for s in chosen.values() for d in _save_blobs(s)}:
                    os.link(self._blob_path(digest), spool / digest.removeprefix("sha256:"))
            except BaseException:
                shutil.rmtree(spool)
                raise
        try:
            write_archive(
                out_path, list(chosen.values()), lambda d: spool / d.removeprefix("sha256:")
            )
        finally:
            shutil.rmtree(spool)

    def _select_for_save(self, ref: str) -> builtins.list[tuple[ImageRecord, builtins.list[str]]]:
        try:
            parsed = parse_reference(ref)
        except InvalidReference:
            parsed = None
        if parsed is not None and not parsed.explicit_tag and not parsed.digest:
            prefix = parsed.name + ":"
            found = [
                (record, [t for t in record.image.repo_tags if t.startswith(prefix)])
                for record in self._meta.images.values()
            ]
            found = [(record, tags) for record, tags in found if tags]
            if found:
                return found
        record, tag = self._find(ref)
        return [(record, [tag] if tag else [])]

    # ---- files ---------------------------------------------------------------------

    def _blob_path(self, digest: str) -> Path:
        return self.blob_dir / digest.removeprefix("sha256:")

    def _save_index(self) -> None:
        try:
            self._meta.write(self._index)
        except BaseException:
            self._meta = Metadata.read(self._index)
            raise

    def _remove_leftovers(self) -> None:
        """Remove staging areas and files a crash left outside the index."""
        for entry in self.tmp_dir.iterdir():
            if entry.name.startswith(("stage-", "save-", "trash-")):
                shutil.rmtree(entry, ignore_errors=True)
        layer_dirs = {record.dir for record in self._meta.layers.values()}
        for entry in self.layer_root.iterdir():
            if entry.name not in layer_dirs:
                _remove_dir(entry, self.tmp_dir)
        blobs = {digest.removeprefix("sha256:") for digest in self._meta.blobs}
        for entry in self.blob_dir.iterdir():
            if entry.name not in blobs:
                entry.unlink()


def _copy(image: types_pb2.Image) -> types_pb2.Image:
    result = types_pb2.Image()
    result.CopyFrom(image)
    return result


def _repositories(image: types_pb2.Image) -> list[str]:
    names = [tag.rsplit(":", 1)[0] for tag in image.repo_tags]
    names += [digest.split("@", 1)[0] for digest in image.repo_digests]
    return names


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


def _save_blobs(saved: SavedImage) -> list[str]:
    return [saved.image.id, saved.image.manifest_digest, *saved.layer_blobs]


def _remove_dir(path: Path, tmp_dir: Path) -> None:
    """Rename aside first so a half-removed layer is never visible under its name."""
    if not path.is_dir() or path.is_symlink():
        path.unlink(missing_ok=True)
        return
    trash = tmp_dir / f"trash-{path.name}-{time.monotonic_ns()}"
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)
