"""Reference parsing follows docker's rules and names the bad reference."""

from __future__ import annotations

import pytest

from pyswarm.common.errors import InvalidArgument
from pyswarm.images.errors import InvalidReference
from pyswarm.images.reference import (
    familiar_name,
    is_id_prefix,
    parse_reference,
    parse_tagged,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "name", "tag", "digest"),
    [
        ("busybox", "busybox", "latest", ""),
        ("busybox:1.36", "busybox", "1.36", ""),
        ("library/busybox:x", "library/busybox", "x", ""),
        ("docker.io/library/busybox:1", "busybox", "1", ""),
        ("docker.io/me/app", "me/app", "latest", ""),
        ("localhost:5000/app:v_1.2-rc", "localhost:5000/app", "v_1.2-rc", ""),
        ("registry.example.com/a/b-c__d.e", "registry.example.com/a/b-c__d.e", "latest", ""),
        (f"busybox@{DIGEST}", "busybox", "", DIGEST),
        (f"busybox:1@{DIGEST}", "busybox", "1", DIGEST),
        ("Registry.Example.com:443/app", "Registry.Example.com:443/app", "latest", ""),
    ],
)
def test_valid_references(text: str, name: str, tag: str, digest: str) -> None:
    ref = parse_reference(text)
    assert (ref.name, ref.tag, ref.digest) == (name, tag, digest)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "BusyBox",
        "busybox:",
        "busybox:-bad",
        "busybox:" + "x" * 129,
        "a//b",
        "/busybox",
        "busybox@sha256:short",
        "bad_-name",
        "-lead",
        "a" * 256,
        "foo bar",
    ],
)
def test_invalid_references_name_the_reference(text: str) -> None:
    with pytest.raises(InvalidReference) as caught:
        parse_reference(text)
    assert isinstance(caught.value, InvalidArgument)
    assert caught.value.field == "reference"
    assert repr(text) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_uppercase_is_explained() -> None:
    with pytest.raises(InvalidReference, match="must be lowercase"):
        parse_reference("Busybox:latest")


def test_tag_targets_refuse_digests() -> None:
    with pytest.raises(InvalidReference, match="digest"):
        parse_tagged(f"busybox@{DIGEST}")
    assert parse_tagged("app").tagged == "app:latest"
    assert str(parse_reference("app:1")) == "app:1"


def test_familiar_names_and_id_prefixes() -> None:
    assert familiar_name("docker.io/library/busybox") == "busybox"
    assert familiar_name("docker.io/library/a/b") == "library/a/b"
    assert familiar_name("quay.io/x/y") == "quay.io/x/y"
    assert is_id_prefix("abcd") and is_id_prefix("sha256:abcd")
    assert not is_id_prefix("abc") and not is_id_prefix("abcg") and not is_id_prefix("a" * 65)
