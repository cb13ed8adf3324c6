"""ImageStore: the content-addressed image store of one agent.

Images arrive through a staging area (staging.py): archives and pulls are copied,
verified and unpacked under the store's tmp/ and only then moved into place
(store_commit.py), so a rejected archive writes nothing. The files and the index
are store_files.py's; finding images by name is store_lookup.py's; rmi, prune
and disk usage are store_removal.py's; `image save` is save.py's. Methods are
safe to call from several threads: one lock guards the index.

The store keeps a blob-to-layer index: for each image, the stored blob that
carries each of its layers. A pull whose layer diff id is already unpacked does
not fetch the manifest's blob for it ("Already exists"); the image then keeps
the registry's manifest and names the stored blob of the same layer beside it.
Save and push send that blob in a manifest rewritten to name it
(local_manifest.py).
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from pathlib import Path

from pyswarm.images import oci, store_removal
from pyswarm.images.archive import read_archive
from pyswarm.images.digest import compression_of
from pyswarm.images.errors import ImageError, ImageNotFound
from pyswarm.images.metadata import ImageRecord
from pyswarm.images.reference import parse_tagged
from pyswarm.images.save import save_images
from pyswarm.images.staging import StagedImage, StagedLayer, Staging
from pyswarm.images.store_commit import commit, move_tag
from pyswarm.images.store_files import StoreFiles
from pyswarm.images.store_lookup import copy_image, find, short_id
from pyswarm.proto import agent_pb2, types_pb2

__all__ = ["ImageStore", "short_id"]


class ImageStore:
    """Images and their layers under `root` (created if missing)."""

    def __init__(self, root: Path) -> None:
        self._files = StoreFiles(root)
        self.root = self._files.root
        self.blob_dir = self._files.blob_dir
        self.layer_root = self._files.layer_root
        self.tmp_dir = self._files.tmp_dir
        self._files.remove_leftovers()

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
        with self.stage() as staging:
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
            return self.commit(staging, [staged])[0]

    def load(self, archive_path: Path) -> builtins.list[types_pb2.Image]:
        """Load every image of a `docker save` or OCI archive, with the archive's tags."""
        with self.stage() as staging:
            return self.commit(staging, read_archive(archive_path, staging))

    def stage(self) -> Staging:
        """A staging area for content arriving from elsewhere (a pull, a build)."""
        return Staging(self.tmp_dir, self._unpacked)

    def commit(
        self, staging: Staging, staged: builtins.list[StagedImage]
    ) -> builtins.list[types_pb2.Image]:
        """Move staged images into the store (blobs the store already has may be absent).

        A layer whose blob is neither staged nor stored is accepted when its diff id
        is unpacked and carried by another stored blob (see `has_layer`).
        """
        return commit(self._files, staging, staged)

    def _unpacked(self, diff_id: str) -> bool:
        with self._files.lock:
            return diff_id in self._files.meta.layers

    # ---- layers and blobs, for the registry client ------------------------------------

    def has_layer_blob(self, blob: str, diff_id: str) -> bool:
        """True when blob `blob` is stored and its layer `diff_id` is unpacked."""
        with self._files.lock:
            return blob in self._files.meta.blobs and diff_id in self._files.meta.layers

    def has_layer(self, diff_id: str) -> bool:
        """True when layer `diff_id` is unpacked and a stored blob carries it (any compression)."""
        with self._files.lock:
            meta = self._files.meta
            return diff_id in meta.layers and bool(meta.layer_carrier(diff_id))

    def layer_size(self, diff_id: str) -> int:
        """Bytes of unpacked layer `diff_id` (docker history's SIZE); 0 if not unpacked."""
        with self._files.lock:
            record = self._files.meta.layers.get(diff_id)
            return record.size if record is not None else 0

    def blob_path(self, digest: str) -> Path:
        """The stored file of blob `digest` (configs, manifests, layer blobs)."""
        with self._files.lock:
            if digest not in self._files.meta.blobs:
                raise ImageError(f"blob {digest} is missing from the store")
            return self._files.blob_path(digest)

    def layer_blobs(self, image_id: str) -> builtins.list[str]:
        """The layer blob digests of image `image_id`'s manifest, bottom-up."""
        with self._files.lock:
            return list(self._record(image_id).layer_blobs)

    def local_layer_blobs(self, image_id: str) -> builtins.list[str]:
        """The stored blobs that carry image `image_id`'s layers, bottom-up.

        Each is the manifest's blob where the store has it, else a stored blob of
        the same layer compressed differently.
        """
        with self._files.lock:
            return list(self._record(image_id).local_blobs)

    def _record(self, image_id: str) -> ImageRecord:
        record = self._files.meta.images.get(image_id)
        if record is None:
            raise ImageNotFound(image_id)
        return record

    # ---- reading -------------------------------------------------------------------

    def list(self) -> builtins.list[types_pb2.Image]:
        """Every image, newest first."""
        with self._files.lock:
            images = [copy_image(record.image) for record in self._files.meta.images.values()]
        images.sort(key=lambda i: (i.created_at.seconds, i.created_at.nanos, i.id), reverse=True)
        return images

    def resolve(self, ref: str) -> types_pb2.Image:
        """The image `ref` names: NAME[:TAG], NAME@DIGEST, a full id or a unique id prefix."""
        with self._files.lock:
            return copy_image(find(self._files.meta, ref)[0].image)

    def layer_dirs(self, image: types_pb2.Image) -> builtins.list[Path]:
        """The image's unpacked layer dirs, top-most first (overlayfs lowerdir order)."""
        with self._files.lock:
            dirs: builtins.list[Path] = []
            for diff_id in reversed(image.layers):
                record = self._files.meta.layers.get(diff_id)
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
        return store_removal.disk_usage(self._files, in_use)

    # ---- naming, removing, saving ----------------------------------------------------

    def tag(self, source: str, target: str) -> types_pb2.Image:
        """Add tag `target` to the image `source` names (moving it from another image)."""
        tag = parse_tagged(target).tagged
        with self._files.lock:
            record, _ = find(self._files.meta, source)
            move_tag(self._files, tag, record)
            self._files.save_index()
            return copy_image(record.image)

    def remove(
        self, ref: str, *, force: bool, in_use: set[str]
    ) -> tuple[builtins.list[str], builtins.list[str]]:
        """Untag or delete as `docker rmi` does; returns (untagged refs, deleted image ids).

        See store_removal.remove for the rules.
        """
        return store_removal.remove(self._files, ref, force=force, in_use=in_use)

    def prune(self, *, all: bool, in_use: set[str]) -> tuple[builtins.list[str], int]:
        """Delete dangling (untagged) images, or every unused one with `all`.

        Also drops layers and blobs no image references. Returns (deleted ids, bytes freed).
        """
        return store_removal.prune(self._files, all=all, in_use=in_use)

    def save(self, references: builtins.list[str], out_path: Path) -> None:
        """Write the images `references` name to one archive docker and OCI tools load.

        NAME:TAG saves that tag, a bare NAME every tag of that repository, an id the
        image without tags.
        """
        save_images(self._files, references, out_path)
