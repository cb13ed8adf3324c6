"""A tiny read-only registry on 127.0.0.1 serving fixed content, with optional auth.

It answers the distribution API's GET/HEAD for manifests and blobs from a dict, so
tests can serve what a real registry would refuse to store (a blob whose bytes do
not match its digest, an index without this host's platform) and exercise
authentication challenges: "basic" (user/secret) or "bearer" (a token realm on
the same server that wants user/secret).
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USER, SECRET, TOKEN = "user", "secret", "tok-123"


class StaticRegistry:
    """Serve `content[path] = (media type, bytes)`; `auth` is "", "basic" or "bearer"."""

    def __init__(self, auth: str = "") -> None:
        self.content: dict[str, tuple[str, bytes]] = {}
        self.auth = auth
        self.token_requests: list[str] = []
        self.truncate: dict[str, int] = {}  # path -> bytes sent before the connection drops
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

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _authorized(self) -> bool:
                header = self.headers.get("Authorization", "")
                basic = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
                if registry.auth == "basic":
                    return header == basic
                if registry.auth == "bearer":
                    return header == f"Bearer {TOKEN}"
                return True

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    cut = registry.truncate.get(self.path)
                    self.wfile.write(body if cut is None else body[:cut])
                    if cut is not None:
                        self.close_connection = True

            def do_GET(self) -> None:
                if self.path.startswith("/token"):
                    registry.token_requests.append(self.path)
                    basic = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
                    if self.headers.get("Authorization") != basic:
                        self._send(401, b"{}", {})
                        return
                    self._send(200, json.dumps({"token": TOKEN}).encode(), {})
                    return
                if not self._authorized():
                    challenge = (
                        'Basic realm="test"'
                        if registry.auth == "basic"
                        else f'Bearer realm="http://{registry.host}/token",service="test"'
                    )
                    self._send(401, b"{}", {"WWW-Authenticate": challenge})
                    return
                entry = registry.content.get(self.path)
                if entry is None:
                    body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN"}]}).encode()
                    self._send(404, body, {"Content-Type": "application/json"})
                    return
                self._send(200, entry[1], {"Content-Type": entry[0]})

            do_HEAD = do_GET

        return Handler
