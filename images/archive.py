"""Read an image archive into a Staging area: `docker save` or OCI image layout.

`docker save` archives carry manifest.json (Config, RepoTags, Layers by path);
OCI archives carry oci-layout and index.json pointing at blobs/sha256/<hex>.
Docker 25+ writes both; manifest.json wins then, as `docker load` does. Every
blob is hashed and checked against the digest that names it, every layer against
its config's diff id. Member names are only looked up, never used as file paths.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
import tarfile
from pathlib import Path
from typing import IO, Any

from pyswarm.images import oci
from pyswarm.images.digest import compression_of
from pyswarm.images.errors import InvalidArchive
from pyswarm.images.reference import parse_tagged
from pyswarm.images.staging import StagedImage, StagedLayer, Staging
from pyswarm.images.unpack import member_parts

_MAX_LINK_HOPS = 8
_MAX_JSON = 16 << 20  # manifests, indexes and configs are small; refuse huge ones
_BLOB_NAME = re.compile(r"blobs/sha256/([a-f0-9]{64})")
_LEGACY_CONFIG = re.compile(r"([a-f0-9]{64})\.json")
_MANIFESTS = {oci.MANIFEST_MEDIA_TYPE, oci.DOCKER_MANIFEST_MEDIA_TYPE}
_INDEXES = {oci.INDEX_MEDIA_TYPE, oci.DOCKER_LIST_MEDIA_TYPE}
_NAME_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")


def read_archive(path: Path, staging: Staging) -> list[StagedImage]:
    """Stage every image of the archive at `path` (plain or gzip); tags are set on each."""
    try:
        tar = tarfile.open(path, mode="r:*")  # noqa: SIM115 - closed by the `with` below
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InvalidArchive(f"{path.name}: not a readable tar archive ({exc})") from None
    with tar:
        reader = _ArchiveReader(tar, staging)
        if "manifest.json" in reader.members:
            return reader.docker_images()
        if "index.json" in reader.members and "oci-layout" in reader.members:
            return reader.oci_images()
    raise InvalidArchive(
        f"{path.name}: neither a docker save archive (manifest.json) nor an OCI layout"
    )


class _ArchiveReader:
    def __init__(self, tar: tarfile.TarFile, staging: Staging) -> None:
        self.tar = tar
        self.staging = staging
        self.members: dict[str, tarfile.TarInfo] = {}
        self._staged_by_name: dict[str, str] = {}
        try:
            infos = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InvalidArchive(f"archive: not a readable tar archive ({exc})") from None
        for info in infos:
            parts = member_parts(info.name, "archive")
            if info.ischr() or info.isblk() or info.isfifo():
                raise InvalidArchive(f"archive: member {info.name!r} is a device node or fifo")
            self.members["/".join(parts)] = info

    def _open(self, name: str, what: str) -> IO[bytes]:
        """The regular member `name` names, following in-archive links a bounded number of
        times (old `docker save` links repeated layer.tar files; a link loop must not hang)."""
        key = "/".join(member_parts(name, what))
        for _ in range(_MAX_LINK_HOPS):
            info = self.members.get(key)
            if info is None or not (info.issym() or info.islnk()):
                break
            base = posixpath.dirname(key) if info.issym() else ""
            key = posixpath.normpath(posixpath.join(base, info.linkname)).lstrip("/")
        else:
            raise InvalidArchive(f"{what}: too many links resolving {name!r}")
        stream = None
        if info is not None and info.isreg():
            with contextlib.suppress(KeyError, tarfile.TarError):
                stream = self.tar.extractfile(info)
        if stream is None:
            raise InvalidArchive(f"{what}: archive has no file {name!r}")
        return stream

    def _read_json(self, name: str, what: str, expected: str = "") -> tuple[Any, bytes]:
        with self._open(name, what) as stream:
            data = stream.read(_MAX_JSON + 1)
        if len(data) > _MAX_JSON:
            raise InvalidArchive(f"{what}: {name!r} is too large")
        self.staging.add_bytes(data, what, expected)
        return oci.parse_json(data, what), data

    def _stage_file(self, name: str, what: str, expected: str = "") -> str:
        key = "/".join(member_parts(name, what))
        if key in self._staged_by_name:
            digest = self._staged_by_name[key]
            if expected and digest != expected:
                raise InvalidArchive(f"{what}: content digest {digest} does not match {expected}")
            return digest
        with self._open(name, what) as stream:
            digest = self.staging.add_blob(stream, what, expected)
        self._staged_by_name[key] = digest
        return digest

    def _staged_image(
        self,
        config_bytes: bytes,
        layer_blobs: list[str],
        label: str,
        tags: list[str],
        manifest_digest: str = "",
    ) -> StagedImage:
        """Verify and stage one image; without `manifest_digest` an OCI manifest is built."""
        config_digest = self.staging.add_bytes(config_bytes, label)
        image = oci.parse_config(config_bytes, config_digest)
        if len(layer_blobs) != len(image.layers):
            raise InvalidArchive(
                f"{label}: {len(layer_blobs)} layers but the config lists {len(image.layers)}"
            )
        layers = []
        for i, (blob, diff_id) in enumerate(zip(layer_blobs, image.layers, strict=True)):
            self.staging.layer(blob, f"{label} layer {i + 1}", diff_id)
            media = oci.LAYER_MEDIA_TYPES[compression_of(self.staging.blob_path(blob))]
            layers.append(StagedLayer(blob, media, diff_id))
        descriptors = [
            oci.Descriptor(layer.media_type, layer.blob, self.staging.blobs[layer.blob][1], {})
            for layer in layers
        ]
        if not manifest_digest:
            manifest = oci.build_manifest(config_digest, len(config_bytes), descriptors)
            manifest_digest = self.staging.add_bytes(manifest, label)
        image.repo_tags.extend(dict.fromkeys(parse_tagged(t).tagged for t in tags))
        return StagedImage(image, manifest_digest, layers)

    def docker_images(self) -> list[StagedImage]:
        document, _ = self._read_json("manifest.json", "manifest.json")
        if not isinstance(document, list):
            raise InvalidArchive("manifest.json must be a JSON list")
        images = []
        for entry in document:
            if not isinstance(entry, dict):
                raise InvalidArchive("manifest.json entries must be JSON objects")
            config_name = entry.get("Config")
            layer_names = entry.get("Layers")
            tags = entry.get("RepoTags") or []
            if not isinstance(config_name, str) or not isinstance(layer_names, list):
                raise InvalidArchive("manifest.json entry needs Config and Layers")
            if not all(isinstance(x, str) for x in [*layer_names, *tags]):
                raise InvalidArchive("manifest.json Layers and RepoTags must be strings")
            label = f"image {config_name}"
            _, config = self._read_json(config_name, label, _digest_in_name(config_name))
            blobs = [
                self._stage_file(name, f"{label} layer {name}", _digest_in_name(name))
                for name in layer_names
            ]
            images.append(self._staged_image(config, blobs, label, tags))
        return images

    def oci_images(self) -> list[StagedImage]:
        index, _ = self._read_json("index.json", "index.json")
        images: dict[str, StagedImage] = {}
        self._walk_index(index, "index.json", "", images)
        if not images:
            arch, os_name = oci.host_platform()
            raise InvalidArchive(f"index.json: no image for {os_name}/{arch} in the archive")
        return list(images.values())

    def _walk_index(
        self, index: Any, what: str, inherited_name: str, images: dict[str, StagedImage]
    ) -> None:
        host = oci.host_platform()
        for descriptor in oci.parse_descriptors(index, "manifests", what):
            if descriptor.platform is not None and descriptor.platform != host:
                continue
            name = _annotated_name(descriptor) or inherited_name
            blob_name = "blobs/sha256/" + descriptor.digest.removeprefix("sha256:")
            label = f"manifest {descriptor.digest}"
            if descriptor.media_type in _INDEXES:
                nested, _ = self._read_json(blob_name, label, descriptor.digest)
                self._walk_index(nested, label, name, images)
            elif descriptor.media_type in _MANIFESTS:
                self._oci_image(descriptor, blob_name, label, name, images)

    def _oci_image(
        self,
        descriptor: oci.Descriptor,
        blob_name: str,
        label: str,
        name: str,
        images: dict[str, StagedImage],
    ) -> None:
        manifest, _ = self._read_json(blob_name, label, descriptor.digest)
        config_desc = oci.manifest_config(manifest, label)
        config_name = "blobs/sha256/" + config_desc.digest.removeprefix("sha256:")
        _, config = self._read_json(config_name, f"{label} config", config_desc.digest)
        blobs = [
            self._stage_file(
                "blobs/sha256/" + layer.digest.removeprefix("sha256:"),
                f"{label} layer {layer.digest}",
                layer.digest,
            )
            for layer in oci.parse_descriptors(manifest, "layers", label)
        ]
        tags = [name] if name else []
        staged = self._staged_image(
            config, blobs, f"image {config_desc.digest}", tags, descriptor.digest
        )
        previous = images.get(staged.image.id)
        if previous is None:
            images[staged.image.id] = staged
        else:
            previous.image.repo_tags.extend(
                t for t in staged.image.repo_tags if t not in previous.image.repo_tags
            )


def _digest_in_name(name: str) -> str:
    """The digest a member name promises (blobs/sha256/<hex> or <hex>.json), or ""."""
    key = name.removeprefix("./")
    match = _BLOB_NAME.fullmatch(key) or _LEGACY_CONFIG.fullmatch(key)
    return "sha256:" + match.group(1) if match else ""


def _annotated_name(descriptor: oci.Descriptor) -> str:
    """The full reference an index entry names; a bare tag has no repository, so ""."""
    for key in _NAME_ANNOTATIONS:
        value = descriptor.annotations.get(key, "")
        if value and ("/" in value or ":" in value):
            return value
    return ""
