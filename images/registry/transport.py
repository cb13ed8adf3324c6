"""HTTP to one registry: scheme choice, authentication challenges, redirects, byte counts.

Loopback registries (localhost, 127.0.0.1, ::1) and hosts listed as insecure are
spoken to in plain http; every other host only over https, and a redirect or a
token realm that would downgrade to http is refused. A 401 answer's
WWW-Authenticate challenge is met once: Basic sends the stored credentials, Bearer
fetches a token from the realm (with the credentials, if any) for the challenged
scope and caches it. `received` and `sent` count body bytes, so callers (and
tests) can see what moved.

Bearer tokens live as long as the token service says (`expires_in` from
`issued_at`, 60 s when it says nothing): a cached token is reused for its scope
until shortly before that, then fetched anew before the request goes out. A 401
to a request sent with a cached token (revoked, or the clocks disagree) fetches a
new token and sends the request once more. A stream body is only sent again when
it can seek back to where it started; otherwise the request fails rather than
sending what is left of a half-read stream. Time comes from the injected `clock`
(wall-clock seconds, as `issued_at` is).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from pyswarm.common.credentials import Credentials
from pyswarm.images.registry.errors import (
    InsecureRegistry,
    RegistryAuthError,
    RegistryUnavailable,
)

CHUNK = 1 << 20
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}
_MAX_REDIRECTS = 5
_PARAM = re.compile(r'(\w+)="([^"]*)"')
_DEFAULT_LIFETIME = 60.0  # the token spec's lifetime when `expires_in` is absent
_REFRESH_MARGIN = 10.0  # refresh this long before expiry (at most half the lifetime)

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


@dataclass(frozen=True)
class Token:
    """A bearer token, the challenge it answers and when to fetch a new one."""

    value: str
    challenge: Challenge
    refresh_at: float  # clock seconds


def token_refresh_at(document: dict[str, Any], now: float) -> float:
    """When a token the service sent at `now` should be replaced (before it expires)."""
    lifetime = document.get("expires_in")
    if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime < 0:
        lifetime = _DEFAULT_LIFETIME
    issued = now
    issued_at = document.get("issued_at")
    if isinstance(issued_at, str):
        with contextlib.suppress(ValueError):  # unreadable: count from when it arrived
            issued = min(now, datetime.fromisoformat(issued_at).timestamp())
    return issued + lifetime - min(_REFRESH_MARGIN, lifetime / 2)


class Transport:
    """Requests to the registry at `host` (host[:port]) with authentication handled."""

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
        self.credentials = credentials
        self._insecure = set(insecure)
        self.scheme = "http" if self._plain_allowed(host) else "https"
        self.timeout = timeout
        self.clock = clock
        self._tokens: dict[str, Token] = {}  # scope -> bearer token
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
        again after a challenge only if it can seek back to where it started.
        """
        url = url if "://" in url else self.url(url)
        start = _start_of(body)
        for _ in range(_MAX_REDIRECTS):
            response = self._send(method, url, scope, headers or {}, body, length)
            if response.status == 401 and self._answer(response, scope):
                self._rewind(body, start, method)
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

    def _rewind(self, body: Body, start: int | None, method: str) -> None:
        if body is None or isinstance(body, bytes):
            return
        if start is None:
            raise RegistryAuthError(
                f"registry {self.host} refused the token during {method}: the body was a stream"
                " that cannot be sent again, try again",
                field="auth",
            )
        body.seek(start)

    def _authorization(self, scope: str) -> str:
        token = self._tokens.get(scope)
        if token is not None and self.clock() >= token.refresh_at:
            token = self._tokens[scope] = self._fetch_token(token.challenge, scope)
        if token is not None:
            return f"Bearer {token.value}"
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
        if challenge.scheme == "bearer":  # none yet, or the cached one was refused
            self._tokens[scope] = self._fetch_token(challenge, scope)
            return True
        return False

    def _fetch_token(self, challenge: Challenge, scope: str) -> Token:
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
        return Token(token, challenge, token_refresh_at(document, self.clock()))

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


def _start_of(body: Body) -> int | None:
    """Where a seekable stream body starts (to send it again), else None."""
    if body is None or isinstance(body, bytes):
        return None
    try:
        return body.tell() if body.seekable() else None
    except (AttributeError, OSError):
        return None
