"""Builders of layer tars and image archives, for tests here and in other packages.

They make exactly what `docker save` and OCI tools would (or deliberately what
they never should: evil member names, devices, wrong digests), with tarfile and
hashlib only, so no test needs a registry or the network.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyswarm.images import oci

MTIME = 1_700_000_000


@dataclass
class Member:
    """One tar member and, for regular files, its content."""

    info: tarfile.TarInfo
    data: bytes = b""


def _info(name: str, kind: bytes, mode: int, **fields: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, MTIME
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def file(name: str, data: bytes = b"", mode: int = 0o644, **fields: Any) -> Member:
    return Member(_info(name, tarfile.REGTYPE, mode, size=len(data), **fields), data)


def directory(name: str, mode: int = 0o755, **fields: Any) -> Member:
    return Member(_info(name, tarfile.DIRTYPE, mode, **fields))


def symlink(name: str, target: str) -> Member:
    return Member(_info(name, tarfile.SYMTYPE, 0o777, linkname=target))


def hardlink(name: str, target: str) -> Member:
    return Member(_info(name, tarfile.LNKTYPE, 0o644, linkname=target))


def chardev(name: str, major: int = 1, minor: int = 3) -> Member:
    return Member(_info(name, tarfile.CHRTYPE, 0o666, devmajor=major, devminor=minor))


def blockdev(name: str, major: int = 8, minor: int = 0) -> Member:
    return Member(_info(name, tarfile.BLKTYPE, 0o660, devmajor=major, devminor=minor))


def fifo(name: str) -> Member:
    return Member(_info(name, tarfile.FIFOTYPE, 0o644))


def layer_tar(members: list[Member], *, compress: bool = False) -> bytes:
    """A layer tar of `members` in order (gzip-compressed with `compress`)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            tar.addfile(member.info, io.BytesIO(member.data) if member.info.isreg() else None)
    data = buffer.getvalue()
    return gzip.compress(data, mtime=0) if compress else data


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def diff_id(layer: bytes) -> str:
    """The sha256 of the uncompressed layer."""
    return digest(gzip.decompress(layer) if layer[:2] == b"\x1f\x8b" else layer)


@dataclass
class ArchiveImage:
    """An image for an archive: layer blobs bottom-up, its tags and its Cmd."""

    layers: list[bytes]
    tags: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=lambda: ["sh"])

    def config(self) -> bytes:
        arch, os_name = oci.host_platform()
        document = {
            "architecture": arch,
            "os": os_name,
            "created": "2024-01-02T03:04:05Z",
            "config": {"Cmd": self.cmd, "Env": [oci.DEFAULT_PATH]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id(x) for x in self.layers]},
        }
        return json.dumps(document).encode()

    @property
    def id(self) -> str:
        return digest(self.config())


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = _info(name, tarfile.REGTYPE, 0o644, size=len(data))
    tar.addfile(info, io.BytesIO(data))


def _blob(digest_text: str) -> str:
    return "blobs/sha256/" + digest_text.removeprefix("sha256:")


def docker_archive(path: Path, images: list[ArchiveImage], *, legacy: bool = False) -> None:
    """A `docker save` archive; `legacy` uses the pre-25 <id>.json and <n>/layer.tar names."""
    entries = []
    with tarfile.open(path, "w") as tar:
        written: set[str] = set()
        for image in images:
            config = image.config()
            config_name = image.id[7:] + ".json" if legacy else _blob(image.id)
            layer_names = []
            for layer in image.layers:
                name = f"{digest(layer)[7:]}/layer.tar" if legacy else _blob(digest(layer))
                if name not in written:
                    _add(tar, name, layer)
                    written.add(name)
                layer_names.append(name)
            if config_name not in written:
                _add(tar, config_name, config)
                written.add(config_name)
            entries.append({"Config": config_name, "RepoTags": image.tags, "Layers": layer_names})
        _add(tar, "manifest.json", json.dumps(entries).encode())


def oci_archive(path: Path, images: list[ArchiveImage], *, gzip_outer: bool = False) -> None:
    """An OCI image layout archive; one index entry per tag (none for an untagged image)."""
    manifests = []
    with tarfile.open(path, "w:gz" if gzip_outer else "w") as tar:
        written: set[str] = set()

        def blob(data: bytes) -> str:
            name = _blob(digest(data))
            if name not in written:
                _add(tar, name, data)
                written.add(name)
            return digest(data)

        for image in images:
            config = image.config()
            layers = [
                {
                    "mediaType": oci.LAYER_MEDIA_TYPES["gzip" if x[:2] == b"\x1f\x8b" else ""],
                    "digest": blob(x),
                    "size": len(x),
                }
                for x in image.layers
            ]
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": oci.MANIFEST_MEDIA_TYPE,
                    "config": {
                        "mediaType": oci.CONFIG_MEDIA_TYPE,
                        "digest": blob(config),
                        "size": len(config),
                    },
                    "layers": layers,
                }
            ).encode()
            descriptor = {
                "mediaType": oci.MANIFEST_MEDIA_TYPE,
                "digest": blob(manifest),
                "size": len(manifest),
            }
            for tag in image.tags or [""]:
                entry = dict(descriptor)
                if tag:
                    entry["annotations"] = {"io.containerd.image.name": tag}
                manifests.append(entry)
        _add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add(tar, "index.json", json.dumps({"schemaVersion": 2, "manifests": manifests}).encode())
