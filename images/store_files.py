"""The image store's files: its directories, its index (in memory and on disk), one lock.

Layout under `root`:
    blobs/sha256/<hex>   configs, manifests and layer blobs as they arrived
    l/<12+ hex>          one unpacked dir per layer diff id, shared by every image
                         using it; short names keep overlay's lowerdir option small
    tmp/                 staging areas and the agent's upload spool (same filesystem)
    metadata.json        the index (see metadata.py), replaced atomically
The lock guards the index; every part of the store (commit, lookup, removal,
save) holds it while it reads or changes `meta`. After a crash, files the index
does not name are removed when the store is opened.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

from pyswarm.images.metadata import Metadata

# What a crash can leave in tmp/: staging areas, save spools, half-removed layers.
_LEFTOVER_PREFIXES = ("stage-", "save-", "trash-")


class StoreFiles:
    """The directories under `root` (created if missing) and the index they hold."""

    def __init__(self, root: Path) -> None:
        root = root.absolute()  # layer dirs go into mount options: never relative
        self.root = root
        self.blob_dir = root / "blobs" / "sha256"
        self.layer_root = root / "l"
        self.tmp_dir = root / "tmp"
        # 0700 all the way down to the layers: no other host user reaches a setuid
        # file of a layer. chmod too, for a store made before this rule.
        for directory in (root, root / "blobs", self.blob_dir, self.layer_root, self.tmp_dir):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            directory.chmod(0o700)
        self.index_path = root / "metadata.json"
        self.lock = threading.RLock()
        self.meta = Metadata.read(self.index_path)

    def blob_path(self, digest: str) -> Path:
        return self.blob_dir / digest.removeprefix("sha256:")

    def save_index(self) -> None:
        """Persist `meta`; on failure go back to what is on disk, so memory never lies."""
        try:
            self.meta.write(self.index_path)
        except BaseException:
            self.reload()
            raise

    def reload(self) -> None:
        self.meta = Metadata.read(self.index_path)

    def spool_dir(self, kind: str) -> Path:
        """A new private dir under tmp/ that a crash leftover sweep will remove."""
        path = self.tmp_dir / f"{kind}-{os.getpid()}-{time.monotonic_ns()}"
        path.mkdir(mode=0o700)
        return path

    def remove_dir(self, path: Path) -> None:
        """Rename aside first so a half-removed layer is never visible under its name."""
        if not path.is_dir() or path.is_symlink():
            path.unlink(missing_ok=True)
            return
        trash = self.tmp_dir / f"trash-{path.name}-{time.monotonic_ns()}"
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def remove_leftovers(self) -> None:
        """Remove staging areas and files a crash left outside the index."""
        for entry in self.tmp_dir.iterdir():
            if entry.name.startswith(_LEFTOVER_PREFIXES):
                shutil.rmtree(entry, ignore_errors=True)
        layer_dirs = {record.dir for record in self.meta.layers.values()}
        for entry in self.layer_root.iterdir():
            if entry.name not in layer_dirs:
                self.remove_dir(entry)
        blobs = {digest.removeprefix("sha256:") for digest in self.meta.blobs}
        for entry in self.blob_dir.iterdir():
            if entry.name not in blobs:
                entry.unlink()
