"""Capability names, numbers and docker's default set (no root)."""

from __future__ import annotations

import pytest

from pyswarm.agent.runtime.container.capabilities import (
    CAPABILITIES,
    DEFAULT_CAPABILITIES,
    capability_mask,
    names_of,
    parse_capabilities,
)
from pyswarm.agent.runtime.container.errors import InvalidCapability

# docker's default set as the mask `CapBnd` shows in a default docker container.
DOCKER_DEFAULT_MASK = 0x00000000A80425FB


def test_default_set_matches_docker() -> None:
    assert capability_mask(DEFAULT_CAPABILITIES) == DOCKER_DEFAULT_MASK
    assert len(DEFAULT_CAPABILITIES) == 14


def test_names_are_normalised() -> None:
    assert parse_capabilities(["net_admin", "CAP_NET_ADMIN", "Sys_Time"]) == [
        "CAP_NET_ADMIN",
        "CAP_SYS_TIME",
    ]


def test_all_expands_to_every_capability() -> None:
    assert parse_capabilities(["ALL"]) == list(CAPABILITIES)


def test_unknown_name_is_rejected_by_name() -> None:
    with pytest.raises(InvalidCapability, match="CAP_FLY") as caught:
        parse_capabilities(["CAP_CHOWN", "CAP_FLY"])
    assert caught.value.field == "capabilities"


def test_mask_round_trip() -> None:
    assert names_of(capability_mask(["CAP_KILL", "CAP_BPF"])) == ["CAP_KILL", "CAP_BPF"]
    assert names_of(1 << 50) == ["CAP_50"]
