"""The manager's IPAM, pure: pools, subnets, addresses, MACs and the init flags."""

from __future__ import annotations

import pytest

from pyswarm.cli.cluster import _address_pools
from pyswarm.cli.parse import CliInputError
from pyswarm.manager.network.errors import AddressPoolExhausted, InvalidIPAM, SubnetOverlap
from pyswarm.manager.network.ipam import (
    check_ipam,
    check_overlap,
    check_pools,
    free_addresses,
    mac_for,
    pick_subnet,
    with_prefix,
)
from pyswarm.proto import types_pb2


def test_defaults_give_a_slash_20_from_10_0_0_0_8() -> None:
    assert check_pools([], 0) == (["10.0.0.0/8"], 20)
    assert pick_subnet(["10.0.0.0/8"], 20, []) == "10.0.0.0/20"
    assert pick_subnet(["10.0.0.0/8"], 20, ["10.0.0.0/20", "10.0.16.0/24"]) == "10.0.32.0/20"


def test_pick_skips_every_overlap_and_moves_to_the_next_pool() -> None:
    assert pick_subnet(["10.1.0.0/23", "10.2.0.0/24"], 24, ["10.1.0.0/24"]) == "10.1.1.0/24"
    assert pick_subnet(["10.1.0.0/23", "10.2.0.0/24"], 24, ["10.1.0.0/23"]) == "10.2.0.0/24"
    with pytest.raises(AddressPoolExhausted, match="no free /24"):
        pick_subnet(["10.1.0.0/24"], 24, ["10.0.0.0/8"])


@pytest.mark.parametrize(
    ("pools", "mask", "field"),
    [
        (["10.300.0.0/8"], 24, "default-addr-pool"),
        (["10.0.0.1/8"], 24, "default-addr-pool"),
        (["10.0.0.0/24"], 20, "default-addr-pool"),
        (["10.0.0.0/8"], 31, "default-addr-pool-mask-length"),
    ],
)
def test_bad_pools_name_the_flag(pools: list[str], mask: int, field: str) -> None:
    with pytest.raises(InvalidIPAM) as caught:
        check_pools(pools, mask)
    assert caught.value.field == field
    with pytest.raises(CliInputError) as cli:
        _address_pools(pools, mask)
    assert cli.value.field == f"--{field}"


def test_ipam_config_is_completed_and_checked() -> None:
    done = check_ipam(types_pb2.IPAMConfig(subnet="10.5.0.0/24"))
    assert (done.gateway, done.ip_range) == ("10.5.0.1", "10.5.0.0/24")
    for bad, field in (
        (types_pb2.IPAMConfig(subnet="10.5.0.0/33"), "subnet"),
        (types_pb2.IPAMConfig(subnet="10.5.0.1/24"), "subnet"),
        (types_pb2.IPAMConfig(subnet="10.5.0.0/24", gateway="10.6.0.1"), "gateway"),
        (types_pb2.IPAMConfig(subnet="10.5.0.0/24", gateway="10.5.0.255"), "gateway"),
        (types_pb2.IPAMConfig(subnet="10.5.0.0/24", ip_range="10.5.1.0/25"), "ip-range"),
    ):
        with pytest.raises(InvalidIPAM) as caught:
            check_ipam(bad)
        assert caught.value.field == field


def test_overlap_names_the_other_network() -> None:
    with pytest.raises(SubnetOverlap, match="network front"):
        check_overlap("10.0.0.0/16", {"front": "10.0.4.0/24"})
    check_overlap("10.1.0.0/16", {"front": "10.0.4.0/24"})


def test_addresses_skip_gateway_used_and_stay_in_range() -> None:
    ipam = check_ipam(types_pb2.IPAMConfig(subnet="10.5.0.0/29"))
    assert free_addresses(ipam, [], 3) == ["10.5.0.2", "10.5.0.3", "10.5.0.4"]
    assert free_addresses(ipam, ["10.5.0.2/29", "10.5.0.4"], 3) == [
        "10.5.0.3",
        "10.5.0.5",
        "10.5.0.6",
    ]
    with pytest.raises(AddressPoolExhausted):
        free_addresses(ipam, ["10.5.0.2"], 5)
    ranged = check_ipam(
        types_pb2.IPAMConfig(subnet="10.5.0.0/24", gateway="10.5.0.254", ip_range="10.5.0.252/30")
    )
    assert free_addresses(ranged, [], 2) == ["10.5.0.252", "10.5.0.253"]
    with pytest.raises(AddressPoolExhausted):
        free_addresses(ranged, [], 3)  # .254 is the gateway, .255 the broadcast
    assert with_prefix("10.5.0.3", ipam) == "10.5.0.3/29"


def test_mac_is_02_42_and_the_address_bytes() -> None:
    assert mac_for("10.0.1.2/24") == "02:42:0a:00:01:02"
