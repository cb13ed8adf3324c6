"""Control: the image side of services. Digest pinning and registry credentials.

Pinning: CreateService, and UpdateService when the image changed, turn
`ContainerSpec.image` into `NAME:TAG@sha256:...` with the digest its registry serves
now (docker's `--resolve-image always`), so every replica runs the same bytes. Only
names with an explicit registry host are resolved (`needs_digest`); Docker Hub names
stay as given and cause no request. When the registry cannot say (down, no such tag,
credentials refused) the service is still made with the name as given, and the answer
carries docker's warning.

This is the one place the manager imports the agent's registry client
(pyswarm.images.registry): it is a self-contained HTTP client of the
distribution API that knows nothing of the agent's runtime or store, and the manager
asks a registry the same question the agent's pull asks (the tag's manifest digest),
with the same rules (plain http only to loopback and listed insecure registries).
One client, not two.

Credentials: the request's `registry_auth` (what the CLI holds for the image's
registry) is used to resolve and then dropped. The spec's `registry_auth`
(`--with-registry-auth`) is kept with the service for agents; every answer clears its
password (`redact_service`, `redact_task`), and an update whose spec carries no
password keeps the credentials the service had, as docker does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from pyswarm.common.credentials import Credentials, registry_of
from pyswarm.common.errors import InvalidArgument
from pyswarm.images.errors import ImageError
from pyswarm.images.registry.resolve import needs_digest, resolve_digest
from pyswarm.proto import types_pb2

log = logging.getLogger(__name__)


def unpinned_warning(image: str) -> str:
    """docker's words for an image whose digest could not be recorded."""
    return (
        f"image {image} could not be accessed on a registry to record its digest. Each node"
        f" will access {image} independently, possibly leading to different nodes running"
        " different versions of the image."
    )


async def pin_image(
    spec: types_pb2.ServiceSpec,
    auth: types_pb2.RegistryAuth,
    insecure: Collection[str],
) -> list[str]:
    """Resolve `spec`'s image to NAME:TAG@DIGEST in place; the warnings for the answer."""
    container = spec.task.container
    image = container.image
    try:
        if not needs_digest(image):
            return []
    except ImageError as err:
        raise InvalidArgument(err.message, field="task.container.image") from None
    credentials = _credentials(auth, image) or _credentials(container.registry_auth, image)
    try:
        pinned = await asyncio.to_thread(
            resolve_digest, image, credentials=credentials, insecure=insecure
        )
    except ImageError as err:  # the registry's errors are ImageErrors; none holds a secret
        log.warning("image %s not pinned to a digest: %s", image, err.message)
        return [unpinned_warning(image)]
    log.info("image %s pinned as %s", image, pinned)
    container.image = pinned
    return []


def _credentials(auth: types_pb2.RegistryAuth, image: str) -> Credentials | None:
    """`auth` as Credentials when it is for `image`'s registry and has a username."""
    if not auth.username or (auth.registry and auth.registry != registry_of(image)):
        return None
    return Credentials(auth.username, auth.password)


def keep_registry_auth(spec: types_pb2.ServiceSpec, current: types_pb2.ServiceSpec) -> None:
    """An update that sends no password (it read a redacted spec) keeps the service's."""
    new = spec.task.container
    if not new.registry_auth.password and current.task.container.HasField("registry_auth"):
        new.registry_auth.CopyFrom(current.task.container.registry_auth)


def _redact_spec(spec: types_pb2.ServiceSpec) -> None:
    # Guarded: touching an unset sub-message would make it present (an empty spec).
    if spec.HasField("task") and spec.task.container.HasField("registry_auth"):
        spec.task.container.registry_auth.ClearField("password")


def redact_service(service: types_pb2.Service) -> types_pb2.Service:
    """A copy of `service` with no password in its specs (for every Control answer)."""
    copy = types_pb2.Service()
    copy.CopyFrom(service)
    _redact_spec(copy.spec)
    _redact_spec(copy.previous_spec)
    return copy


def redact_task(task: types_pb2.Task) -> types_pb2.Task:
    """A copy of `task` with no password in its spec."""
    copy = types_pb2.Task()
    copy.CopyFrom(task)
    redact_task_in_place(copy)
    return copy


def redact_task_in_place(task: types_pb2.Task) -> None:
    """Clear the password in `task`'s spec (a copy the caller owns)."""
    if task.spec.container.HasField("registry_auth"):
        task.spec.container.registry_auth.ClearField("password")
