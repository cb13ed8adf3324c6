"""The image store: content-addressed blobs, layers unpacked once and shared.

Public surface: `ImageStore` (import, load, save, list, resolve, tag, remove,
prune, layer_dirs, disk_usage) and its errors, rooted at `ImageError`.
`busybox.write_busybox_rootfs` builds a test/demo rootfs without network.
"""

from pyswarm.images.errors import (
    ImageConflict,
    ImageError,
    ImageNotFound,
    InvalidArchive,
    InvalidReference,
)
from pyswarm.images.store import ImageStore

__all__ = [
    "ImageConflict",
    "ImageError",
    "ImageNotFound",
    "ImageStore",
    "InvalidArchive",
    "InvalidReference",
]
