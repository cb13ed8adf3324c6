"""The resolver's settings and plumbing: --dns-upstream refused in one line when
malformed, the containers' resolv.conf, and the NetworkView holder's change feed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pyswarm.agent.dns import container_resolv_conf
from pyswarm.cli.parse import CliInputError, parse_dns_upstreams
from pyswarm.common.join_token import format_join_token, new_secret

TOKEN = format_join_token(bytes(32), new_secret())


@pytest.mark.parametrize("command", [["agent"], ["join", "127.0.0.1:1", "--token", TOKEN]])
def test_a_malformed_upstream_is_refused_by_flag(command: list[str], tmp_path: Path) -> None:
    state = tmp_path / "state"
    flags = ["--dns-upstream", "127.0.0.1:53", "--dns-upstream", "dns.example", "--state-dir"]
    result = subprocess.run(
        [sys.executable, "-m", "pyswarm.cli.main", *command, *flags, str(state)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        'Error: invalid argument "dns.example" for "--dns-upstream" flag: expected an IP'
        " address with an optional :PORT"
    ]
    assert not state.exists()


def test_upstream_flags() -> None:
    assert parse_dns_upstreams(["127.0.0.1", "[::1]:5353"], "--dns-upstream") == (
        "127.0.0.1",
        "[::1]:5353",
    )
    for bad in ("127.0.0.1:0", "127.0.0.1:x", "1.2.3", ""):
        with pytest.raises(CliInputError, match="--dns-upstream"):
            parse_dns_upstreams([bad], "--dns-upstream")


HOST = "nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch corp.test\noptions edns0 trust-ad\n"


def test_resolv_conf_with_the_embedded_resolver() -> None:
    assert container_resolv_conf(HOST, embedded_resolver=True) == (
        "nameserver 127.0.0.11\nsearch corp.test\noptions edns0 trust-ad ndots:0\n"
    )
    assert container_resolv_conf("options ndots:2\n", embedded_resolver=True) == (
        "nameserver 127.0.0.11\noptions ndots:2\n"
    )


def test_resolv_conf_without_it_drops_loopback_nameservers() -> None:
    assert container_resolv_conf(HOST, embedded_resolver=False) == (
        "nameserver 192.0.2.1\nsearch corp.test\noptions edns0 trust-ad\n"
    )
