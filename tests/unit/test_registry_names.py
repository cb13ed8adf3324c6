"""Registry names, credentials file and the plain-http rule, without a network."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pyswarm.common import credentials
from pyswarm.common.credentials import Credentials
from pyswarm.common.errors import FailedPrecondition
from pyswarm.images.registry import InsecureRegistry, resolve_name
from pyswarm.images.registry.transport import Transport, parse_challenge


@pytest.mark.parametrize(
    ("text", "host", "api", "repo", "target"),
    [
        ("busybox", "docker.io", "registry-1.docker.io", "library/busybox", "latest"),
        ("me/app:2", "docker.io", "registry-1.docker.io", "me/app", "2"),
        ("127.0.0.1:5000/test/busybox:1", "127.0.0.1:5000", "127.0.0.1:5000", "test/busybox", "1"),
        ("localhost/x@sha256:" + "a" * 64, "localhost", "localhost", "x", "sha256:" + "a" * 64),
    ],
)
def test_resolve_name(text: str, host: str, api: str, repo: str, target: str) -> None:
    remote = resolve_name(text)
    assert (remote.host, remote.api_host, remote.repository, remote.target) == (
        host,
        api,
        repo,
        target,
    )


def test_plain_http_only_for_loopback_or_listed_hosts() -> None:
    assert Transport("127.0.0.1:5000").scheme == "http"
    assert Transport("localhost:5000").scheme == "http"
    assert Transport("registry.example:5000").scheme == "https"
    assert Transport("registry.example:5000", insecure=["registry.example:5000"]).scheme == "http"
    transport = Transport("registry.example")
    with pytest.raises(InsecureRegistry, match=r"registry\.example"):
        transport.request("GET", "http://registry.example/v2/", scope="")


def test_parse_challenge() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"'
    )
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.example/token",
        "service": "reg",
        "scope": "repository:a/b:pull",
    }


def test_credentials_file_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYSWARM_CONFIG", str(tmp_path / "cfg"))
    credentials.store("127.0.0.1:5000", Credentials("u", "p"))
    path = credentials.auth_file()
    assert path == tmp_path / "cfg" / "auth.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert credentials.lookup("127.0.0.1:5000") == Credentials("u", "p")
    assert credentials.lookup("other") is None
    assert credentials.forget("127.0.0.1:5000")
    assert not credentials.forget("127.0.0.1:5000")
    assert credentials.lookup("127.0.0.1:5000") is None
    path.chmod(0o644)
    with pytest.raises(FailedPrecondition, match="chmod 600"):
        credentials.lookup("127.0.0.1:5000")
