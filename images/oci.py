"""OCI image JSON: configs and manifests, built for our images and parsed from archives.

An image's id is the sha256 of its config blob, so building the config is
deterministic (sorted keys, no whitespace) and parsing keeps the archive's bytes.
Parsed JSON is untrusted: every field is type-checked, errors name the blob.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyswarm.images.digest import check_digest
from pyswarm.images.errors import InvalidArchive
from pyswarm.proto import types_pb2

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPES = {
    "": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "bzip2": "application/vnd.oci.image.layer.v1.tar+bzip2",
    "xz": "application/vnd.oci.image.layer.v1.tar+xz",
}
DOCKER_MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.list.v2+json"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_GO_ARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "i686": "386",
}


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a manifest or index points at."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str]
    platform: tuple[str, str] | None = None  # (architecture, os) when the index says


def host_platform() -> tuple[str, str]:
    """This machine's (architecture, os) in Go's names, as OCI configs use them."""
    machine = os.uname().machine
    return _GO_ARCH.get(machine, machine), "linux"


def default_config() -> types_pb2.ImageConfig:
    """The config of an imported rootfs: Cmd ["sh"] and the usual PATH."""
    return types_pb2.ImageConfig(cmd=["sh"], env=[DEFAULT_PATH])


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_config(
    config: types_pb2.ImageConfig, diff_ids: list[str], created: datetime, created_by: str
) -> bytes:
    """The OCI image config JSON for an image we create (deterministic bytes)."""
    arch, os_name = host_platform()
    runtime: dict[str, Any] = {}
    if config.env:
        runtime["Env"] = list(config.env)
    if config.cmd:
        runtime["Cmd"] = list(config.cmd)
    if config.entrypoint:
        runtime["Entrypoint"] = list(config.entrypoint)
    if config.working_dir:
        runtime["WorkingDir"] = config.working_dir
    if config.user:
        runtime["User"] = config.user
    if config.exposed_ports:
        runtime["ExposedPorts"] = {port: {} for port in config.exposed_ports}
    if config.volumes:
        runtime["Volumes"] = {volume: {} for volume in config.volumes}
    if config.labels:
        runtime["Labels"] = dict(config.labels)
    if config.stop_signal:
        runtime["StopSignal"] = config.stop_signal
    document = {
        "architecture": arch,
        "os": os_name,
        "created": rfc3339(created),
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": rfc3339(created), "created_by": created_by}],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def build_manifest(config_digest: str, config_size: int, layers: list[Descriptor]) -> bytes:
    """An OCI image manifest for a config and its layer blobs (bottom-up)."""
    document = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config_size},
        "layers": [
            {"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}
            for layer in layers
        ],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArchive(f"{what} is not valid JSON") from None


def parse_config(data: bytes, image_id: str) -> types_pb2.Image:
    """An Image (id, layers, created_at, platform, config) from an OCI/docker config blob."""
    what = f"image config {image_id}"
    document = _object(parse_json(data, what), what)
    rootfs = _object(document.get("rootfs"), f"{what} rootfs")
    if rootfs.get("type") != "layers":
        raise InvalidArchive(f"{what}: rootfs.type must be 'layers'")
    diff_ids = [check_digest(d, f"{what} diff id") for d in _strings(rootfs.get("diff_ids"), what)]
    runtime = _object(document.get("config") or {}, f"{what} config")
    image = types_pb2.Image(
        id=image_id,
        layers=diff_ids,
        platform=types_pb2.Platform(
            architecture=_string(document.get("architecture"), what),
            os=_string(document.get("os"), what),
        ),
        config=types_pb2.ImageConfig(
            entrypoint=_strings(runtime.get("Entrypoint"), what),
            cmd=_strings(runtime.get("Cmd"), what),
            env=_strings(runtime.get("Env"), what),
            working_dir=_string(runtime.get("WorkingDir"), what),
            user=_string(runtime.get("User"), what),
            exposed_ports=sorted(_object(runtime.get("ExposedPorts") or {}, what)),
            volumes=sorted(_object(runtime.get("Volumes") or {}, what)),
            labels={k: str(v) for k, v in _object(runtime.get("Labels") or {}, what).items()},
            stop_signal=_string(runtime.get("StopSignal"), what),
        ),
    )
    created = document.get("created")
    if isinstance(created, str) and created:
        with contextlib.suppress(ValueError):  # a bad timestamp only loses CREATED
            image.created_at.FromJsonString(created)
    return image


def parse_descriptors(document: Any, key: str, what: str) -> list[Descriptor]:
    """The descriptors under `key` ("layers" of a manifest, "manifests" of an index)."""
    items = _object(document, what).get(key)
    if not isinstance(items, list):
        raise InvalidArchive(f"{what}: {key!r} must be a list")
    result = []
    for item in items:
        entry = _object(item, what)
        size = entry.get("size")
        if not isinstance(size, int) or size < 0:
            raise InvalidArchive(f"{what}: descriptor size must be a non-negative integer")
        annotations = _object(entry.get("annotations") or {}, what)
        platform = entry.get("platform")
        result.append(
            Descriptor(
                media_type=_string(entry.get("mediaType"), what),
                digest=check_digest(_string(entry.get("digest"), what), what),
                size=size,
                annotations={str(k): str(v) for k, v in annotations.items()},
                platform=(
                    (_string(platform.get("architecture"), what), _string(platform.get("os"), what))
                    if isinstance(platform, dict)
                    else None
                ),
            )
        )
    return result


def manifest_config(document: Any, what: str) -> Descriptor:
    config = _object(document, what).get("config")
    return parse_descriptors({"c": [config]}, "c", what)[0]


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArchive(f"{what} must be a JSON object")
    return value


def _string(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArchive(f"{what}: expected a string, got {type(value).__name__}")
    return value


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArchive(f"{what}: expected a list of strings")
    return list(value)
