"""HTTP to one registry: scheme choice, authentication challenges, redirects, byte counts.

Loopback registries (localhost, 127.0.0.1, ::1) and hosts listed as insecure are
spoken to in plain http; every other host only over https, and a redirect or a
token realm that would downgrade to http is refused. A 401 answer's
WWW-Authenticate challenge is met once: Basic sends the stored credentials, Bearer
fetches a token from the realm (with the credentials, if any) for the challenged
scope and caches it. `received` and `sent` count body bytes, so callers (and
tests) can see what moved.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import urllib.parse
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import IO

from pyswarm.agent.runtime.images.registry.errors import (
    InsecureRegistry,
    RegistryAuthError,
    RegistryUnavailable,
)
from pyswarm.common.credentials import Credentials

CHUNK = 1 << 20
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}
_MAX_REDIRECTS = 5
_PARAM = re.compile(r'(\w+)="([^"]*)"')

Body = bytes | IO[bytes] | None


def _hostname(netloc: str) -> str:
    if netloc.startswith("["):
        return netloc[: netloc.index("]") + 1]
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def is_loopback(netloc: str) -> bool:
    return _hostname(netloc) in _LOOPBACK


@dataclass
class Challenge:
    """A parsed WWW-Authenticate header: scheme ("basic"/"bearer") and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def parse_challenge(header: str) -> Challenge:
    scheme, _, rest = header.strip().partition(" ")
    return Challenge(scheme.lower(), dict(_PARAM.findall(rest)))


class Transport:
    """Requests to the registry at `host` (host[:port]) with authentication handled."""

    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None = None,
        insecure: Collection[str] = (),
        timeout: float = 60.0,
    ) -> None:
        self.host = host
        self.credentials = credentials
        self._insecure = set(insecure)
        self.scheme = "http" if self._plain_allowed(host) else "https"
        self.timeout = timeout
        self._tokens: dict[str, str] = {}  # scope -> bearer token
        self._basic = False
        self.received = 0
        self.sent = 0

    def _plain_allowed(self, netloc: str) -> bool:
        insecure = self._insecure
        return is_loopback(netloc) or netloc in insecure or _hostname(netloc) in insecure

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}{path}"

    # ---- requests ------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        scope: str,
        headers: dict[str, str] | None = None,
        body: Body = None,
        length: int | None = None,
    ) -> http.client.HTTPResponse:
        """Send one request; answer a 401 challenge once and follow redirects.

        The caller reads (or closes) the returned response. A stream `body` is sent
        once, so it is only retried when no challenge is expected (a token in hand).
        """
        url = url if "://" in url else self.url(url)
        for _ in range(_MAX_REDIRECTS):
            response = self._send(method, url, scope, headers or {}, body, length)
            if response.status == 401 and self._answer(response, scope):
                response = self._send(method, url, scope, headers or {}, body, length)
            if response.status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD"):
                location = response.getheader("Location", "")
                response.read()
                url = urllib.parse.urljoin(url, location)
                continue
            if response.status == 401:
                response.read()
                raise RegistryAuthError(
                    f"unauthorized: authentication required for {self.host}", field="auth"
                )
            if response.status >= 500:
                text = response.read(512).decode(errors="replace").strip()
                raise RegistryUnavailable(
                    f"registry {self.host} answered {response.status} to {method}: {text}"
                )
            return response
        raise RegistryUnavailable(f"registry {self.host}: too many redirects for {url}")

    def _send(
        self,
        method: str,
        url: str,
        scope: str,
        headers: dict[str, str],
        body: Body,
        length: int | None,
    ) -> http.client.HTTPResponse:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" and not self._plain_allowed(parts.netloc):
            raise InsecureRegistry(parts.netloc)
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(parts.netloc, timeout=self.timeout)
        else:
            connection = http.client.HTTPConnection(parts.netloc, timeout=self.timeout)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        all_headers = {"User-Agent": "pyswarm", **headers}
        if parts.netloc == self.host:  # never hand credentials to a redirect target
            auth = self._authorization(scope)
            if auth:
                all_headers["Authorization"] = auth
        if isinstance(body, bytes):
            all_headers["Content-Length"] = str(len(body))
            self.sent += len(body)
        elif body is not None and length is not None:
            all_headers["Content-Length"] = str(length)
            self.sent += length
        elif body is None and method in ("POST", "PUT", "PATCH"):
            all_headers["Content-Length"] = "0"
        try:
            connection.request(method, target, body=body, headers=all_headers)
            return connection.getresponse()
        except OSError as exc:
            raise RegistryUnavailable(f"cannot reach registry {parts.netloc}: {exc}") from None

    def _authorization(self, scope: str) -> str:
        token = self._tokens.get(scope)
        if token:
            return f"Bearer {token}"
        if self._basic and self.credentials:
            pair = f"{self.credentials.username}:{self.credentials.password}".encode()
            return "Basic " + base64.b64encode(pair).decode()
        return ""

    def _answer(self, response: http.client.HTTPResponse, scope: str) -> bool:
        """Meet a 401's challenge; True when a retry may now succeed."""
        challenge = parse_challenge(response.getheader("WWW-Authenticate", ""))
        response.read()
        if challenge.scheme == "basic":
            if self._basic or not self.credentials:
                return False
            self._basic = True
            return True
        if challenge.scheme == "bearer" and scope not in self._tokens:
            self._tokens[scope] = self._fetch_token(challenge, scope)
            return True
        return False

    def _fetch_token(self, challenge: Challenge, scope: str) -> str:
        realm = challenge.params.get("realm", "")
        if not realm:
            raise RegistryAuthError(f"registry {self.host}: bearer challenge without a realm")
        query = {"service": challenge.params.get("service", "")}
        wanted = [s for s in (challenge.params.get("scope", ""), scope) if s]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        for item in dict.fromkeys(wanted):
            url += "&" + urllib.parse.urlencode({"scope": item})
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" and not self._plain_allowed(parts.netloc):
            raise InsecureRegistry(parts.netloc)
        headers = {"User-Agent": "pyswarm"}
        if self.credentials:
            pair = f"{self.credentials.username}:{self.credentials.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        conn_type = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = conn_type(parts.netloc, timeout=self.timeout)
        try:
            connection.request("GET", parts.path + "?" + parts.query, headers=headers)
            response = connection.getresponse()
            data = response.read(1 << 20)
        except OSError as exc:
            raise RegistryUnavailable(f"cannot reach token service {parts.netloc}: {exc}") from None
        if response.status != 200:
            raise RegistryAuthError(
                f"token service {parts.netloc} refused {self.host}: {response.status}",
                field="auth",
            )
        try:
            document = json.loads(data)
            token = document.get("token") or document.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryAuthError(f"token service {parts.netloc} sent no token", field="auth")
        return token

    # ---- bodies --------------------------------------------------------------------

    def chunks(self, response: http.client.HTTPResponse) -> Iterator[bytes]:
        """The response body in chunks, counted into `received`."""
        while data := response.read(CHUNK):
            self.received += len(data)
            yield data

    def read_all(self, response: http.client.HTTPResponse, limit: int) -> bytes:
        """A small body (manifests, errors) read whole; refuse more than `limit` bytes."""
        data = response.read(limit + 1)
        self.received += len(data)
        if len(data) > limit:
            raise RegistryUnavailable(f"registry {self.host}: answer larger than {limit} bytes")
        return data
