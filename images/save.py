"""`image save`: the chosen images in one archive that both `docker load` and OCI tools read.

Layout: oci-layout, index.json (one manifest entry per tag, naming it the way
containerd and docker 25+ do), manifest.json (docker's Config/RepoTags/Layers)
and blobs/sha256/<hex> holding configs, manifests and layers as stored. Headers
are fixed (root owner, mtime 0) so the same images give the same bytes. An image
whose layers the store keeps in blobs other than its manifest's (a pull that
reused unpacked layers) is written with those blobs and a manifest naming them
(local_manifest.py); its config, hence its id, is unchanged.

Blobs are hard-linked into a spool under the store's lock, then the archive is
written from the spool without it, so a concurrent `rmi` cannot pull a blob away
mid-write.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyswarm.images import oci
from pyswarm.images.digest import sha256_bytes
from pyswarm.images.errors import InvalidReference
from pyswarm.images.local_manifest import local_manifest
from pyswarm.images.metadata import ImageRecord
from pyswarm.images.reference import parse_tagged
from pyswarm.images.store_files import StoreFiles
from pyswarm.images.store_lookup import copy_image, find_tagged
from pyswarm.proto import types_pb2


@dataclass(frozen=True)
class SavedImage:
    """One image to write: its tags, layer blobs bottom-up and manifest ("": the image's)."""

    image: types_pb2.Image
    tags: list[str]
    layer_blobs: list[str]
    manifest_digest: str = ""

    @property
    def manifest(self) -> str:
        return self.manifest_digest or self.image.manifest_digest


def save_images(files: StoreFiles, references: list[str], out_path: Path) -> None:
    """Write the images `references` name (see `find_tagged`) to a new archive `out_path`."""
    if not references:
        raise InvalidReference("", "image save needs at least one image")
    with files.lock:
        chosen: dict[str, tuple[ImageRecord, list[str]]] = {}
        for ref in references:
            for record, tags in find_tagged(files.meta, ref):
                kept = chosen.setdefault(record.image.id, (record, []))[1]
                kept.extend(t for t in tags if t not in kept)
        spool = files.spool_dir("save")
        try:
            saved = [_spool(files, spool, record, tags) for record, tags in chosen.values()]
        except BaseException:
            shutil.rmtree(spool)
            raise
    try:
        write_archive(out_path, saved, lambda d: spool / d.removeprefix("sha256:"))
    finally:
        shutil.rmtree(spool)


def _spool(files: StoreFiles, spool: Path, record: ImageRecord, tags: list[str]) -> SavedImage:
    """Link the image's stored blobs into `spool`, with a local manifest if it needs one."""
    image = copy_image(record.image)
    for digest in (image.id, image.manifest_digest, *record.local_blobs):
        target = spool / digest.removeprefix("sha256:")
        if not target.exists():
            os.link(files.blob_path(digest), target)
    stored = files.blob_path(image.manifest_digest).read_bytes()
    manifest = local_manifest(stored, record.layer_blobs, record.local_blobs, files.blob_path)
    manifest_digest = sha256_bytes(manifest)
    target = spool / manifest_digest.removeprefix("sha256:")
    if not target.exists():  # never write through a link into the store
        target.write_bytes(manifest)
    return SavedImage(image, tags, list(record.local_blobs), manifest_digest)


def write_archive(
    out_path: Path, images: list[SavedImage], blob_file: Callable[[str], Path]
) -> None:
    """Write `images` to a new tar at `out_path`; `blob_file(digest)` locates each blob."""
    index_entries: list[dict[str, Any]] = []
    docker_entries: list[dict[str, Any]] = []
    blobs: dict[str, None] = {}
    for saved in images:
        image = saved.image
        manifest_file = blob_file(saved.manifest)
        manifest_bytes = manifest_file.read_bytes()
        media_type = _manifest_media_type(manifest_bytes)
        descriptor: dict[str, Any] = {
            "mediaType": media_type,
            "digest": saved.manifest,
            "size": len(manifest_bytes),
        }
        for tag in saved.tags or [""]:
            entry = dict(descriptor)
            if tag:
                entry["annotations"] = {
                    "io.containerd.image.name": _full_name(tag),
                    "org.opencontainers.image.ref.name": tag.rsplit(":", 1)[1],
                }
            index_entries.append(entry)
        docker_entries.append(
            {
                "Config": _blob_name(image.id),
                "RepoTags": saved.tags or None,
                "Layers": [_blob_name(blob) for blob in saved.layer_blobs],
            }
        )
        blobs.update(dict.fromkeys([image.id, saved.manifest, *saved.layer_blobs]))

    index = {"schemaVersion": 2, "mediaType": oci.INDEX_MEDIA_TYPE, "manifests": index_entries}
    try:
        with tarfile.open(out_path, "w", format=tarfile.PAX_FORMAT) as tar:
            for directory in ("blobs", "blobs/sha256"):
                tar.addfile(_info(directory, 0, tarfile.DIRTYPE, 0o755))
            for digest in blobs:
                path = blob_file(digest)
                with open(path, "rb") as f:
                    tar.addfile(_info(_blob_name(digest), path.stat().st_size), f)
            _add_bytes(tar, "oci-layout", {"imageLayoutVersion": "1.0.0"})
            _add_bytes(tar, "index.json", index)
            _add_bytes(tar, "manifest.json", docker_entries)
    except BaseException:
        out_path.unlink(missing_ok=True)
        raise


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def _full_name(tag: str) -> str:
    """docker.io/library/busybox:latest for busybox:latest, as containerd names images."""
    name = parse_tagged(tag).name
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return tag
    prefix = "docker.io/" if "/" in name else "docker.io/library/"
    return prefix + tag


def _manifest_media_type(data: bytes) -> str:
    try:
        value = json.loads(data).get("mediaType")
    except (ValueError, AttributeError):
        value = None
    return value if isinstance(value, str) and value else oci.MANIFEST_MEDIA_TYPE


def _info(
    name: str, size: int, kind: bytes = tarfile.REGTYPE, mode: int = 0o644
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    info.mode = mode
    info.mtime = 0
    info.uname = info.gname = "root"
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, document: Any) -> None:
    data = json.dumps(document, separators=(",", ":")).encode()
    tar.addfile(_info(name, len(data)), io.BytesIO(data))
