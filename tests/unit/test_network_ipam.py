"""Address allocation and the network state file, without the kernel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyswarm.agent.runtime.network.errors import AddressPoolExhausted, InvalidNetworkArgument
from pyswarm.agent.runtime.network.ipam import AddressPool
from pyswarm.agent.runtime.network.state import (
    SANDBOXES,
    NetworkState,
    Published,
    SandboxRecord,
    load_state,
    save_entry,
)
from pyswarm.common.errors import InvalidArgument, Unavailable
from pyswarm.proto import types_pb2


def test_gateway_is_first_host_and_never_handed_out() -> None:
    pool = AddressPool("10.9.8.0/24")
    assert pool.gateway == "10.9.8.1"
    assert pool.prefixlen == 24
    assert pool.allocate([]) == "10.9.8.2"
    assert "10.9.8.1" not in pool
    assert "10.9.8.0" not in pool
    assert "10.9.8.255" not in pool
    assert "10.9.8.7" in pool


def test_allocation_takes_the_lowest_free_address_and_reuses_freed_ones() -> None:
    pool = AddressPool("10.9.8.0/24")
    taken: list[str] = []
    for _ in range(3):
        taken.append(pool.allocate(taken))
    assert taken == ["10.9.8.2", "10.9.8.3", "10.9.8.4"]
    taken.remove("10.9.8.3")
    assert pool.allocate(taken) == "10.9.8.3"


def test_small_pool_runs_out_without_touching_broadcast() -> None:
    pool = AddressPool("10.9.8.0/29")  # .1 gateway, .2-.6 hosts, .7 broadcast
    taken: list[str] = []
    for _ in range(5):
        taken.append(pool.allocate(taken))
    assert taken[-1] == "10.9.8.6"
    with pytest.raises(AddressPoolExhausted) as caught:
        pool.allocate(taken)
    assert isinstance(caught.value, Unavailable)
    assert "10.9.8.0/29" in str(caught.value)


@pytest.mark.parametrize("subnet", ["10.9.8.1/24", "10.9.8.0/30", "nonsense", "fd00::/64"])
def test_bad_subnets_are_refused(subnet: str) -> None:
    with pytest.raises(InvalidNetworkArgument) as caught:
        AddressPool(subnet)
    assert isinstance(caught.value, InvalidArgument)
    assert caught.value.field == "subnet"
    assert subnet in str(caught.value)


def _state_with_a_port() -> NetworkState:
    port = types_pb2.PortConfig(
        protocol=types_pb2.PortConfig.UDP, target_port=53, published_port=5353, host_ip="127.0.0.1"
    )
    return NetworkState(
        sandboxes={
            "a": SandboxRecord("bridge", "10.0.0.2", "02:42:0a:00:00:02"),
            "b": SandboxRecord("none"),
        },
        published={"a": Published("10.0.0.2", [port], group="web")},
    )


def test_state_entries_round_trip_and_go_with_their_container(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    assert load_state(directory) == NetworkState()
    state = _state_with_a_port()
    for cid in ("a", "b"):
        save_entry(directory, state, cid)
    again = load_state(directory)
    assert again == state
    assert again.addresses() == {"10.0.0.2"}
    entries = directory / SANDBOXES
    assert sorted(p.name for p in entries.iterdir()) == ["a.json", "b.json"]  # no temporary
    del state.sandboxes["b"]
    save_entry(directory, state, "b")  # nothing left of it: its entry goes
    state.published["a"].ports.clear()
    save_entry(directory, state, "a")  # the sandbox stays, its ports go
    assert sorted(p.name for p in entries.iterdir()) == ["a.json"]
    assert load_state(directory) == NetworkState(sandboxes={"a": state.sandboxes["a"]})


def test_an_older_agents_single_state_file_is_split_into_entries(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    directory.mkdir()
    (directory / "network.json").write_text(
        json.dumps(
            {
                "version": 1,
                "sandboxes": {
                    "a": {"mode": "bridge", "ip_address": "10.0.0.2",
                          "mac_address": "02:42:0a:00:00:02"},
                    "b": {"mode": "none", "ip_address": "", "mac_address": ""},
                },
                "published": {
                    "a": {
                        "ip_address": "10.0.0.2",
                        "ports": [{"protocol": "udp", "target_port": 53, "published_port": 5353,
                                   "host_ip": "127.0.0.1"}],
                        "group": "web",
                    }
                },
            }
        )
    )  # fmt: skip
    assert load_state(directory) == _state_with_a_port()
    assert not (directory / "network.json").exists()
    assert load_state(directory) == _state_with_a_port()  # from the entries alone now
