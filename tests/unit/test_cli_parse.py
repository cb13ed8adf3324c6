"""docker's flag syntaxes, parsed the way docker parses them."""

from __future__ import annotations

import pytest

from pyswarm.cli.output import human_duration, human_size
from pyswarm.cli.parse import CliInputError, parse_bytes, parse_cpus, parse_env, parse_volume
from pyswarm.proto import types_pb2


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1024", 1024), ("512m", 512 << 20), ("1g", 1 << 30), ("100k", 100 << 10), ("64MB", 64 << 20)],
)
def test_sizes(text: str, expected: int) -> None:
    assert parse_bytes(text, "--memory") == expected


@pytest.mark.parametrize("text", ["12x", "", "m", "-1m", "1.2.3g"])
def test_bad_sizes_name_the_flag(text: str) -> None:
    with pytest.raises(CliInputError, match="--memory"):
        parse_bytes(text, "--memory")


def test_cpus() -> None:
    assert parse_cpus("1.5") == 1_500_000_000
    with pytest.raises(CliInputError, match="--cpus"):
        parse_cpus("lots")


def test_volumes() -> None:
    mount = parse_volume("/srv/data:/data:ro")
    assert (mount.source, mount.target, mount.read_only) == ("/srv/data", "/data", True)
    assert mount.type == types_pb2.Mount.BIND
    assert not parse_volume("/a:/b").read_only
    named = parse_volume("data:/data")
    assert (named.type, named.source, named.target) == (types_pb2.Mount.VOLUME, "data", "/data")
    for bad in ["a/b:/data", "/a:b", "/a:/b:xx", "/a:/b:ro:z", "data"]:
        with pytest.raises(CliInputError, match="invalid volume specification"):
            parse_volume(bad)


def test_env_passes_through_from_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_HOST", "yes")
    monkeypatch.delenv("NOT_SET", raising=False)
    assert parse_env(["A=1", "FROM_HOST", "NOT_SET", "B="]) == ["A=1", "FROM_HOST=yes", "B="]
    with pytest.raises(CliInputError):
        parse_env(["=x"])


def test_humane_output() -> None:
    assert human_size(4_200_000) == "4.2MB"
    assert human_size(999) == "999B"
    assert human_duration(0.2) == "Less than a second"
    assert human_duration(75) == "About a minute"
    assert human_duration(3 * 3600) == "3 hours"
