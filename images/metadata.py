"""The store's index: images, unpacked layers and blobs, persisted as one JSON file.

Which stored blob carries each unpacked layer is read off the image records
(`local_blobs` beside the image's diff ids): every unpacked layer belongs to some
image, so that index can never name a layer or blob the store has dropped.

One file keeps every change atomic (a tag moving between images, an image and
its layers appearing together): it is written to a temp file, fsynced and renamed
over the old one. Images are kept as `Image` protos (proto JSON on disk).
Callers hold the store's lock around reads and writes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from pyswarm.images.errors import ImageError
from pyswarm.proto import types_pb2

FORMAT_VERSION = 1


@dataclass
class ImageRecord:
    """An image, the layer blobs its manifest lists and the stored blobs that carry them.

    `local_blobs[i]` is `layer_blobs[i]` when that blob is stored; when a pull found
    layer i already unpacked it is another stored blob with the same diff id (the
    same tar compressed differently), and the manifest's blob was never fetched.
    """

    image: types_pb2.Image
    layer_blobs: list[str]  # bottom-up, as the manifest names them
    local_blobs: list[str] = field(default_factory=list)  # empty: the same as layer_blobs

    def __post_init__(self) -> None:
        if not self.local_blobs:
            self.local_blobs = list(self.layer_blobs)

    def blobs(self) -> set[str]:
        """Every blob this image keeps alive: config, manifest and its stored layer blobs."""
        return {self.image.id, self.image.manifest_digest, *self.local_blobs}


@dataclass
class LayerRecord:
    """An unpacked layer: its short directory name under <root>/l and its bytes."""

    dir: str
    size: int


@dataclass
class Metadata:
    images: dict[str, ImageRecord] = field(default_factory=dict)
    layers: dict[str, LayerRecord] = field(default_factory=dict)
    blobs: dict[str, int] = field(default_factory=dict)  # digest -> bytes on disk

    @classmethod
    def read(cls, path: Path) -> Metadata:
        """Load the index; a missing file is an empty store."""
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise ImageError(f"image store index {path} is unreadable: {exc}") from None
        if document.get("version") != FORMAT_VERSION:
            raise ImageError(f"image store index {path} has unknown version")
        meta = cls()
        for image_id, entry in document["images"].items():
            image = json_format.ParseDict(entry["image"], types_pb2.Image())
            layer_blobs = list(entry["layer_blobs"])
            local_blobs = list(entry.get("local_blobs") or layer_blobs)
            meta.images[image_id] = ImageRecord(image, layer_blobs, local_blobs)
        for diff_id, entry in document["layers"].items():
            meta.layers[diff_id] = LayerRecord(entry["dir"], int(entry["size"]))
        meta.blobs = {digest: int(size) for digest, size in document["blobs"].items()}
        return meta

    def write(self, path: Path) -> None:
        """Persist atomically: temp file, fsync, rename."""
        document: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "images": {
                image_id: {
                    "image": json_format.MessageToDict(
                        record.image, preserving_proto_field_name=True
                    ),
                    "layer_blobs": record.layer_blobs,
                    "local_blobs": record.local_blobs,
                }
                for image_id, record in self.images.items()
            },
            "layers": {d: {"dir": r.dir, "size": r.size} for d, r in self.layers.items()},
            "blobs": self.blobs,
        }
        tmp = path.with_name(path.name + ".tmp")
        # 0600, as every record of the agent: only root reads what the store holds.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with open(fd, "w") as f:
            json.dump(document, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def image_with_tag(self, tag: str) -> ImageRecord | None:
        for record in self.images.values():
            if tag in record.image.repo_tags:
                return record
        return None

    def layer_carrier(self, diff_id: str) -> str:
        """A stored blob whose content is layer `diff_id`, or "" (the blob-to-layer index)."""
        for record in self.images.values():
            for layer, blob in zip(record.image.layers, record.local_blobs, strict=False):
                if layer == diff_id and blob in self.blobs:
                    return blob
        return ""

    def layer_users(self) -> dict[str, int]:
        """How many images use each diff id."""
        users: dict[str, int] = {}
        for record in self.images.values():
            for diff_id in set(record.image.layers):
                users[diff_id] = users.get(diff_id, 0) + 1
        return users
