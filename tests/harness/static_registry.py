"""A tiny registry on 127.0.0.1 serving content from a dict, with optional auth.

It answers the distribution API's GET/HEAD for manifests and blobs from a dict, so
tests can serve what a real registry would refuse to store (a blob whose bytes do
not match its digest, an index without this host's platform) and exercise
authentication challenges: "basic" (user/secret) or "bearer" (a token realm on
the same server that wants user/secret). Bearer tokens live `token_lifetime`
seconds of `clock` (the test drives it: no sleeping); an expired or revoked token
is refused with 401. Blob answers honour `Range: bytes=N-` (206 with
Content-Range) and can break off part-way: every time (`truncate`) or only the
first time (`break_once`), or come without a Content-Length (`unannounced`).
Monolithic uploads (POST, then PUT ?digest=, checked) and manifest PUTs are stored
into the dict. Every request is logged in
`requests`, every 401 answer in `refused`; `on_request` runs before each answer.
A path can be redirected (`redirects`, e.g. to another server) and the bearer realm
can be another server (`realm_server`), as registries behind a CDN or an auth host do.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pyswarm.images import oci
from pyswarm.images.testing import ArchiveImage, digest

USER, SECRET = "user", "secret"
_RANGE = re.compile(r"bytes=(\d+)-")
_BASIC = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]


class StaticRegistry:
    """Serve `content[path] = (media type, bytes)`; `auth` is "", "basic" or "bearer"."""

    def __init__(
        self,
        auth: str = "",
        *,
        token_lifetime: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.content: dict[str, tuple[str, bytes]] = {}
        self.auth = auth
        self.token_lifetime = token_lifetime
        self.clock = clock
        self.tokens: dict[str, float] = {}  # token -> expiry on `clock`
        self._serial = itertools.count(1)
        self.token_requests: list[str] = []
        self.requests: list[Request] = []
        self.refused: list[Request] = []
        self.on_request: Callable[[Request], None] | None = None
        # path -> byte offset of the content where every answer's connection drops
        self.truncate: dict[str, int] = {}
        # path -> byte offset where the next answer's connection drops (once)
        self.break_once: dict[str, int] = {}
        self.ranges = True  # False: answer Range requests with the whole content (200)
        # paths answered without Content-Length (the body ends when the connection does)
        self.unannounced: set[str] = set()
        # path -> URL answered with a 307 redirect (to another server, say)
        self.redirects: dict[str, str] = {}
        # another StaticRegistry whose /token is this one's bearer realm (and issues
        # the tokens this one accepts)
        self.realm_server: StaticRegistry | None = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StaticRegistry:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

    def add_manifest(self, repo: str, ref: str, media_type: str, data: bytes) -> None:
        self.content[f"/v2/{repo}/manifests/{ref}"] = (media_type, data)

    def add_blob(self, repo: str, digest: str, data: bytes) -> None:
        self.content[f"/v2/{repo}/blobs/{digest}"] = ("application/octet-stream", data)

    def revoke_tokens(self) -> None:
        """Refuse every token issued so far (as a token service restart would)."""
        self.tokens.clear()

    def _issue_token(self) -> bytes:
        token = f"tok-{next(self._serial)}"
        now = self.clock()
        self.tokens[token] = now + self.token_lifetime
        issued_at = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
        document = {"token": token, "expires_in": self.token_lifetime, "issued_at": issued_at}
        return json.dumps(document).encode()

    def _authorized(self, header: str) -> bool:
        if self.auth == "basic":
            return header == _BASIC
        if self.auth == "bearer":
            token = header.removeprefix("Bearer ")
            tokens = (self.realm_server or self).tokens
            return header.startswith("Bearer ") and self.clock() < tokens.get(token, 0.0)
        return True

    def _challenge(self) -> str:
        if self.auth == "basic":
            return 'Basic realm="test"'
        realm_host = (self.realm_server or self).host
        return f'Bearer realm="http://{realm_host}/token",service="test"'

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self
        uploads = itertools.count(1)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(
                self, status: int, body: bytes, headers: dict[str, str], start: int = 0
            ) -> None:
                """Answer with `body`, the content from byte `start` on."""
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if self.path in registry.unannounced:
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                cut = registry.break_once.pop(self.path, registry.truncate.get(self.path))
                if cut is None:
                    self.wfile.write(body)
                else:
                    self.wfile.write(body[: max(0, cut - start)])
                    self.close_connection = True

            def _send_content(self, media_type: str, data: bytes) -> None:
                wanted = _RANGE.fullmatch(self.headers.get("Range", ""))
                start = int(wanted.group(1)) if wanted else 0
                if not wanted or not registry.ranges or start >= len(data):
                    self._send(200, data, {"Content-Type": media_type})
                    return
                content_range = f"bytes {start}-{len(data) - 1}/{len(data)}"
                headers = {"Content-Type": media_type, "Content-Range": content_range}
                self._send(206, data[start:], headers, start)

            def _admit(self) -> tuple[Request, bytes] | None:
                """Log the request and read its body; None once it was answered (401)."""
                request = Request(self.command, self.path, dict(self.headers))
                registry.requests.append(request)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if registry.on_request is not None:
                    registry.on_request(request)
                if self.path.startswith("/token") or registry._authorized(
                    self.headers.get("Authorization", "")
                ):
                    return request, body
                registry.refused.append(request)
                self._send(401, b"{}", {"WWW-Authenticate": registry._challenge()})
                return None

            def do_GET(self) -> None:
                if self._admit() is None:
                    return
                if self.path.startswith("/token"):
                    registry.token_requests.append(self.path)
                    if self.headers.get("Authorization") != _BASIC:
                        self._send(401, b"{}", {})
                        return
                    self._send(200, registry._issue_token(), {})
                    return
                if self.path in registry.redirects:
                    self._send(307, b"", {"Location": registry.redirects[self.path]})
                    return
                entry = registry.content.get(self.path)
                if entry is None:
                    body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN"}]}).encode()
                    self._send(404, body, {"Content-Type": "application/json"})
                    return
                self._send_content(*entry)

            do_HEAD = do_GET

            def do_POST(self) -> None:
                if self._admit() is None:
                    return
                repo = self.path.removeprefix("/v2/").partition("/blobs/uploads/")[0]
                location = f"/upload/{next(uploads)}?{urllib.parse.urlencode({'repo': repo})}"
                self._send(202, b"", {"Location": location})

            def do_PUT(self) -> None:
                admitted = self._admit()
                if admitted is None:
                    return
                body = admitted[1]
                parts = urllib.parse.urlsplit(self.path)
                if "/manifests/" in parts.path:
                    media_type = self.headers.get("Content-Type", "")
                    registry.content[parts.path] = (media_type, body)
                    self._send(201, b"", {})
                    return
                query = urllib.parse.parse_qs(parts.query)
                digest = query["digest"][0]
                if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
                    self._send(400, b'{"errors":[{"code":"DIGEST_INVALID"}]}', {})
                    return
                registry.add_blob(query["repo"][0], digest, body)
                self._send(201, b"", {})

        return Handler


def serve_image(server: StaticRegistry, image: ArchiveImage, layers: list[bytes]) -> str:
    """Serve `image` as test/img:1 (config and manifest; the caller adds layer blobs)."""
    config = image.config()
    manifest = oci.build_manifest(
        digest(config),
        len(config),
        [oci.Descriptor(oci.LAYER_MEDIA_TYPES["gzip"], digest(x), len(x), {}) for x in layers],
    )
    server.add_blob("test/img", digest(config), config)
    server.add_manifest("test/img", "1", oci.MANIFEST_MEDIA_TYPE, manifest)
    return digest(manifest)
