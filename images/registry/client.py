"""The distribution API (Docker Registry HTTP API v2 / OCI distribution) for one registry.

Manifests are fetched with every manifest and index media type accepted and
checked against the digest that named them; blobs stream through a reader that
counts, resumes a broken download with a Range request (download.py) and is
verified by the caller's staging (a mismatch stores nothing).
Uploads are monolithic (POST then PUT ?digest=) or chunked (POST, PATCH with
Content-Range per chunk, PUT ?digest=); cross-repository mounts try POST
?mount=&from= first and fall back to an upload when the registry declines.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import time
import urllib.parse
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import IO

from pyswarm.common.credentials import Credentials
from pyswarm.images import oci
from pyswarm.images.registry.download import BlobReader
from pyswarm.images.registry.errors import (
    BlobUnknown,
    DigestMismatch,
    ManifestUnknown,
    RegistryError,
)
from pyswarm.images.registry.transport import Transport

MAX_MANIFEST = 4 << 20
MANIFEST_TYPES = (
    oci.MANIFEST_MEDIA_TYPE,
    oci.INDEX_MEDIA_TYPE,
    oci.DOCKER_MANIFEST_MEDIA_TYPE,
    oci.DOCKER_LIST_MEDIA_TYPE,
)


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as the registry sent it, with its verified digest."""

    media_type: str
    data: bytes
    digest: str


def _scope(repository: str, push: bool = False) -> str:
    return f"repository:{repository}:{'pull,push' if push else 'pull'}"


def _quote(repository: str) -> str:
    return urllib.parse.quote(repository, safe="/")


class RegistryClient:
    """Calls against the registry at `host` (host[:port])."""

    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None = None,
        insecure: Collection[str] = (),
        timeout: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.transport = Transport(
            host, credentials=credentials, insecure=insecure, timeout=timeout, clock=clock
        )

    # ---- reading -------------------------------------------------------------------

    def ping(self) -> None:
        """GET /v2/ with the credentials: raises RegistryAuthError when they are refused."""
        response = self.transport.request("GET", "/v2/", scope="")
        response.read()
        self._expect(response, 200, "GET /v2/")

    def catalog(self, limit: int = 0) -> list[str]:
        """Every repository the registry lists (following its Link pages), or `limit` of them."""
        names: list[str] = []
        url = "/v2/_catalog?n=100"
        while url:
            response = self.transport.request("GET", url, scope="registry:catalog:*")
            self._expect(response, 200, "GET /v2/_catalog")
            data = self.transport.read_all(response, MAX_MANIFEST)
            try:
                page = json.loads(data).get("repositories") or []
            except (ValueError, AttributeError):
                raise RegistryError(f"registry {self.host}: catalog is not JSON") from None
            names.extend(str(name) for name in page)
            if limit and len(names) >= limit:
                return names[:limit]
            url = _next_link(response.getheader("Link", ""))
        return names

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest or index `reference` (a tag or digest) names in `repository`."""
        response = self.transport.request(
            "GET",
            f"/v2/{_quote(repository)}/manifests/{reference}",
            scope=_scope(repository),
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        name = f"{self.host}/{repository}:{reference}".replace(":sha256:", "@sha256:")
        if response.status == 404:
            response.read()
            raise ManifestUnknown(name)
        self._expect(response, 200, f"GET manifest {name}")
        data = self.transport.read_all(response, MAX_MANIFEST)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatch(f"manifest {name}", reference, digest)
        media_type = response.getheader("Content-Type", "").split(";")[0].strip()
        if media_type not in MANIFEST_TYPES:
            media_type = _embedded_media_type(data) or media_type
        return Manifest(media_type, data, digest)

    def open_blob(self, repository: str, digest: str, size: int = -1) -> BlobReader:
        """A reader of blob `digest` (`size` bytes, if known) that resumes a broken download.

        The caller verifies the bytes against `digest`.
        """
        path = f"/v2/{_quote(repository)}/blobs/{digest}"

        def open_at(offset: int) -> http.client.HTTPResponse:
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            response = self.transport.request(
                "GET", path, scope=_scope(repository), headers=headers
            )
            if response.status == 404:
                response.read()
                raise BlobUnknown(f"{self.host}/{repository}", digest)
            return response

        return BlobReader(open_at, self.transport, f"blob {digest}", size)

    def has_blob(self, repository: str, digest: str, *, push: bool = False) -> bool:
        """HEAD the blob: True when the registry has it in `repository`."""
        response = self.transport.request(
            "HEAD", f"/v2/{_quote(repository)}/blobs/{digest}", scope=_scope(repository, push)
        )
        response.read()
        if response.status == 404:
            return False
        self._expect(response, 200, f"HEAD blob {digest}")
        return True

    # ---- writing -------------------------------------------------------------------

    def mount_blob(self, repository: str, digest: str, source: str) -> bool:
        """Ask the registry to link `digest` from repository `source`; False if it declines."""
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        response = self.transport.request(
            "POST",
            f"/v2/{_quote(repository)}/blobs/uploads/?{query}",
            scope=_scope(repository, push=True),
        )
        response.read()
        if response.status == 201:
            return True
        self._expect(response, 202, f"mount {digest}")
        location = response.getheader("Location", "")
        if location:  # an upload session was opened instead: cancel it
            self.transport.request(
                "DELETE", self._absolute(location), scope=_scope(repository, True)
            ).read()
        return False

    def upload_blob(
        self, repository: str, digest: str, source: IO[bytes], size: int, chunk_size: int = 0
    ) -> None:
        """Upload `size` bytes of `source` as blob `digest`: one PUT, or PATCHes of `chunk_size`."""
        scope = _scope(repository, push=True)
        response = self.transport.request(
            "POST", f"/v2/{_quote(repository)}/blobs/uploads/", scope=scope
        )
        response.read()
        self._expect(response, 202, f"start upload of {digest}")
        location = self._location(response)
        if chunk_size <= 0 or size <= chunk_size:
            url = _with_query(location, digest=digest)
            response = self.transport.request(
                "PUT",
                url,
                scope=scope,
                headers={"Content-Type": "application/octet-stream"},
                body=source,
                length=size,
            )
        else:
            offset = 0
            while offset < size:
                data = source.read(min(chunk_size, size - offset))
                if not data:
                    raise RegistryError(f"upload of {digest}: source ended at {offset} of {size}")
                response = self.transport.request(
                    "PATCH",
                    location,
                    scope=scope,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{offset + len(data) - 1}",
                    },
                    body=data,
                )
                response.read()
                self._expect(response, 202, f"upload chunk of {digest}")
                location = self._location(response)
                offset += len(data)
            response = self.transport.request(
                "PUT", _with_query(location, digest=digest), scope=scope
            )
        response.read()
        self._expect(response, 201, f"finish upload of {digest}")

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        """Store `manifest` under `reference` (a tag); returns its digest."""
        response = self.transport.request(
            "PUT",
            f"/v2/{_quote(repository)}/manifests/{reference}",
            scope=_scope(repository, push=True),
            headers={"Content-Type": manifest.media_type},
            body=manifest.data,
        )
        self._expect(response, 201, f"PUT manifest {repository}:{reference}")
        response.read()
        return manifest.digest

    # ---- helpers -------------------------------------------------------------------

    def _absolute(self, location: str) -> str:
        return urllib.parse.urljoin(self.transport.url("/"), location)

    def _location(self, response: http.client.HTTPResponse) -> str:
        location = response.getheader("Location", "")
        if not location:
            raise RegistryError(f"registry {self.host}: upload answer without a Location")
        return self._absolute(location)

    def _expect(self, response: http.client.HTTPResponse, status: int, what: str) -> None:
        if response.status == status:
            return
        text = _error_text(response.read(4096)) if response.status != 204 else ""
        raise RegistryError(f"{what} on {self.host}: {response.status} {text}".rstrip())


def _next_link(header: str) -> str:
    """The target of a `Link: <url>; rel="next"` header, or ""."""
    for part in header.split(","):
        if 'rel="next"' in part and "<" in part and ">" in part:
            return part[part.index("<") + 1 : part.index(">")]
    return ""


def _with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urllib.parse.urlencode(params)


def _embedded_media_type(data: bytes) -> str:
    try:
        document = json.loads(data)
    except ValueError:
        return ""
    value = document.get("mediaType") if isinstance(document, dict) else None
    if isinstance(value, str):
        return value
    if isinstance(document, dict) and "manifests" in document:
        return oci.INDEX_MEDIA_TYPE
    return oci.MANIFEST_MEDIA_TYPE


def _error_text(body: bytes) -> str:
    """The registry's `errors` list in one line, or the raw start of the body."""
    try:
        errors = json.loads(body).get("errors", [])
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors)
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace").strip()
