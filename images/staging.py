"""A private scratch area for one import or load: verified blobs and unpacked layers.

Everything an archive brings is copied, hashed, verified and unpacked here first,
inside the store's tmp dir (same filesystem). Only when all of it checks out does
the store move it into place with renames; on any failure the whole area is
removed, so a rejected archive leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import itertools
import lzma
import shutil
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyswarm.images.digest import CHUNK, Readable, copy_hashed, open_uncompressed
from pyswarm.images.errors import InvalidArchive
from pyswarm.images.unpack import unpack_layer
from pyswarm.proto import types_pb2


@dataclass(frozen=True)
class StagedLayer:
    blob: str  # digest of the (possibly compressed) blob
    media_type: str
    diff_id: str


@dataclass
class StagedImage:
    """An image ready to commit: its parsed config, manifest blob and layers bottom-up."""

    image: types_pb2.Image
    manifest_digest: str
    layers: list[StagedLayer]


class Staging:
    """Scratch dir under `tmp_root`; `have_layer(diff_id)` says the store has it unpacked."""

    def __init__(self, tmp_root: Path, have_layer: Callable[[str], bool]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="stage-", dir=tmp_root))
        self._have_layer = have_layer
        self._counter = itertools.count()
        self.blobs: dict[str, tuple[Path, int]] = {}  # digest -> (file, size)
        self.layers: dict[str, tuple[Path, int]] = {}  # diff id -> (dir, unpacked bytes)
        self._diff_ids: dict[str, str] = {}  # blob digest -> verified diff id
        self.newest_mtime: dict[str, float] = {}  # diff id -> newest member mtime

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _scratch(self, kind: str) -> Path:
        return self.dir / f"{kind}{next(self._counter)}"

    def add_blob(self, source: Readable, what: str, expected: str = "") -> str:
        """Copy a blob in, hashing it; refuse it when `expected` is given and differs."""
        path = self._scratch("blob")
        digest, size = copy_hashed(source, path)
        if expected and digest != expected:
            path.unlink()
            raise InvalidArchive(f"{what}: content digest {digest} does not match {expected}")
        if digest in self.blobs:
            path.unlink()
        else:
            self.blobs[digest] = (path, size)
        return digest

    def add_bytes(self, data: bytes, what: str, expected: str = "") -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if expected and digest != expected:
            raise InvalidArchive(f"{what}: content digest {digest} does not match {expected}")
        if digest not in self.blobs:
            path = self._scratch("blob")
            path.write_bytes(data)
            self.blobs[digest] = (path, len(data))
        return digest

    def blob_path(self, digest: str) -> Path:
        return self.blobs[digest][0]

    def layer(self, blob: str, label: str, expected_diff_id: str = "") -> str:
        """Verify (and unpack, unless the store has it) the layer in staged blob `blob`.

        Returns its diff id; refuses it when `expected_diff_id` is given and differs.
        """
        diff_id = self._diff_ids.get(blob)
        if diff_id is None:
            if expected_diff_id and (
                expected_diff_id in self.layers or self._have_layer(expected_diff_id)
            ):
                diff_id = _uncompressed_digest(self.blob_path(blob), label)
            else:
                diff_id = self._unpack(blob, label)
            self._diff_ids[blob] = diff_id
        if expected_diff_id and diff_id != expected_diff_id:
            raise InvalidArchive(
                f"{label}: uncompressed digest {diff_id} does not match diff id {expected_diff_id}"
            )
        return diff_id

    def unpack_again(self, blob: str, label: str) -> tuple[Path, int]:
        """Unpack a verified blob whose layer vanished from the store since staging."""
        diff_id = self._unpack(blob, label)
        return self.layers[diff_id]

    def _unpack(self, blob: str, label: str) -> str:
        target = self._scratch("layer")
        target.mkdir(mode=0o755)
        try:
            result = unpack_layer(self.blob_path(blob), target, label)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        if result.diff_id in self.layers:
            shutil.rmtree(target)
        else:
            self.layers[result.diff_id] = (target, result.size)
            self.newest_mtime[result.diff_id] = result.newest_mtime
        return result.diff_id


def _uncompressed_digest(blob: Path, label: str) -> str:
    digest = hashlib.sha256()
    try:
        with open_uncompressed(blob, label) as stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
    except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise
        raise InvalidArchive(f"{label}: cannot decompress ({exc})") from None
    return "sha256:" + digest.hexdigest()
