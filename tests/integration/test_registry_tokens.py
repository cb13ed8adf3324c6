"""Bearer tokens with lifetimes: reuse, refresh before expiry, refetch after a refusal.

The static registry on 127.0.0.1 issues tokens that live `token_lifetime` seconds
of a clock the test drives (shared with the client), so nothing here sleeps.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import IO, cast

import pytest

from pyswarm.common.credentials import Credentials
from pyswarm.images import ImageStore
from pyswarm.images.registry import RegistryAuthError, RegistryClient, pull, push
from pyswarm.images.testing import (
    ArchiveImage,
    digest,
    directory,
    file,
    layer_tar,
    oci_archive,
)
from tests.harness.static_registry import SECRET, USER, Request, StaticRegistry, serve_image

GOOD = Credentials(USER, SECRET)
BASE = layer_tar([directory("etc"), file("etc/hostname", b"tokens\n")], compress=True)
TOP = layer_tar([file("data.bin", bytes(range(256)) * 400)], compress=True)


class Clock:
    """Wall-clock seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _serve(server: StaticRegistry) -> str:
    image = ArchiveImage([BASE])
    serve_image(server, image, [BASE])
    server.add_blob("test/img", digest(BASE), BASE)
    return f"{server.host}/test/img:1"


def test_token_is_reused_until_shortly_before_it_expires(tmp_path: Path) -> None:
    clock = Clock()
    with StaticRegistry(auth="bearer", token_lifetime=60, clock=clock) as server:
        name = _serve(server)
        client = RegistryClient(server.host, credentials=GOOD, clock=clock)
        pull(ImageStore(tmp_path / "a"), name, client=client)
        assert len(server.token_requests) == 1
        assert len(server.refused) == 1  # the first request, which had no token yet
        clock.now += 45  # 15 s to live: still good
        pull(ImageStore(tmp_path / "b"), name, client=client)
        assert len(server.token_requests) == 1
        clock.now += 10  # 5 s to live: a new one is fetched before asking
        pull(ImageStore(tmp_path / "c"), name, client=client)
        assert len(server.token_requests) == 2
        assert len(server.refused) == 1  # no request went out with a stale token


def test_refused_cached_token_is_fetched_again_once(tmp_path: Path) -> None:
    clock = Clock()
    with StaticRegistry(auth="bearer", clock=clock) as server:
        name = _serve(server)
        client = RegistryClient(server.host, credentials=GOOD, clock=clock)
        pull(ImageStore(tmp_path / "a"), name, client=client)
        server.revoke_tokens()  # the client still thinks its token good for minutes
        result = pull(ImageStore(tmp_path / "b"), name, client=client)
        assert len(server.token_requests) == 2
        assert len(server.refused) == 2
    assert result.image.id == ArchiveImage([BASE]).id


def test_token_refused_again_after_refetch_is_an_auth_error(tmp_path: Path) -> None:
    clock = Clock()
    with StaticRegistry(auth="bearer", token_lifetime=0, clock=clock) as server:
        name = _serve(server)  # every token is expired when issued
        client = RegistryClient(server.host, credentials=GOOD, clock=clock)
        with pytest.raises(RegistryAuthError, match="unauthorized"):
            pull(ImageStore(tmp_path), name, client=client)
        assert len(server.token_requests) == 2  # one refetch, no loop
        assert len(server.refused) == 2


def _is_upload(request: Request) -> bool:
    return request.method == "PUT" and request.path.startswith("/upload/")


def test_push_sends_a_file_again_after_a_refused_token(tmp_path: Path) -> None:
    clock = Clock()
    with StaticRegistry(auth="bearer", clock=clock) as server:
        store = ImageStore(tmp_path)
        image = ArchiveImage([TOP], [f"{server.host}/test/up:1"])
        oci_archive(tmp_path / "img.tar", [image])
        store.load(tmp_path / "img.tar")
        revoked: list[str] = []

        def revoke_at_first_upload(request: Request) -> None:
            if _is_upload(request) and not revoked:
                revoked.append(request.path)
                server.revoke_tokens()

        server.on_request = revoke_at_first_upload
        client = RegistryClient(server.host, credentials=GOOD, clock=clock)
        pushed = push(store, image.tags[0], client=client)
        uploads = [r for r in server.requests if _is_upload(r)]
        stored_layer = server.content[f"/v2/test/up/blobs/{digest(TOP)}"][1]
        stored_manifest = server.content["/v2/test/up/manifests/1"][1]
    assert len(uploads) == 3  # the layer twice (refused, then again), the config once
    assert uploads[0].path == uploads[1].path == revoked[0]
    assert stored_layer == TOP
    assert digest(stored_manifest) == pushed.digest


class OneShot:
    """A stream that cannot seek back."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1, /) -> bytes:
        return self._data.read(size)


def test_stream_that_cannot_seek_is_not_sent_half_read(tmp_path: Path) -> None:
    clock = Clock()
    blob = b"x" * 100_000
    with StaticRegistry(auth="bearer", clock=clock) as server:
        server.on_request = lambda request: server.revoke_tokens() if _is_upload(request) else None
        client = RegistryClient(server.host, credentials=GOOD, clock=clock)
        stream = cast(IO[bytes], OneShot(blob))
        with pytest.raises(RegistryAuthError, match="cannot be sent again"):
            client.upload_blob("test/up", digest(blob), stream, len(blob))
        assert len([r for r in server.requests if _is_upload(r)]) == 1
        assert f"/v2/test/up/blobs/{digest(blob)}" not in server.content
