"""The registry client: pull images into the store and push them out (OCI distribution API).

Public surface: `pull`, `push`, `RegistryClient`, `resolve_name`, `Progress` and the
errors rooted at `RegistryError`. Only loopback and listed insecure registries are
spoken to in plain http. Broken blob downloads resume with Range requests
(download.py); bearer tokens are refreshed before they expire (transport.py); a
pull reuses layers the store already holds in any compression (pull.py).
"""

from pyswarm.images.registry.client import Manifest, RegistryClient
from pyswarm.images.registry.errors import (
    BlobUnknown,
    DigestMismatch,
    InsecureRegistry,
    ManifestUnknown,
    PlatformNotFound,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailable,
)
from pyswarm.images.registry.names import RemoteName, resolve_name
from pyswarm.images.registry.progress import Progress
from pyswarm.images.registry.pull import PullResult, pull
from pyswarm.images.registry.push import PushResult, push

__all__ = [
    "BlobUnknown",
    "DigestMismatch",
    "InsecureRegistry",
    "Manifest",
    "ManifestUnknown",
    "PlatformNotFound",
    "Progress",
    "PullResult",
    "PushResult",
    "RegistryAuthError",
    "RegistryClient",
    "RegistryError",
    "RegistryUnavailable",
    "RemoteName",
    "pull",
    "push",
    "resolve_name",
]
