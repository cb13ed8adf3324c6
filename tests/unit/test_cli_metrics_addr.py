"""`--metrics-addr` on every daemon that serves /metrics (manager `init`, `agent`,
`join`): a malformed address is refused in one line naming the flag, before anything
starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pyswarm.cli.parse import CliInputError, parse_listen_address
from pyswarm.common.join_token import format_join_token, new_secret

TOKEN = format_join_token(bytes(32), new_secret())


@pytest.mark.parametrize(
    "command",
    [
        ["init"],
        ["swarm", "init"],
        ["agent"],
        ["join", "127.0.0.1:1", "--token", TOKEN],
        ["swarm", "join", "127.0.0.1:1", "--token", TOKEN],
    ],
)
def test_a_malformed_metrics_address_is_refused_by_flag(command: list[str], tmp_path: Path) -> None:
    state = tmp_path / "state"
    flags = ["--metrics-addr", "nowhere", "--state-dir", str(state)]
    result = subprocess.run(
        [sys.executable, "-m", "pyswarm.cli.main", *command, *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == [
        'Error: invalid argument "nowhere" for "--metrics-addr" flag: expected HOST:PORT'
    ]
    assert not state.exists()


def test_listen_addresses() -> None:
    assert parse_listen_address("", "--metrics-addr") == ""
    assert parse_listen_address("0.0.0.0:9323", "--metrics-addr") == "0.0.0.0:9323"
    assert parse_listen_address("[::1]:0", "--metrics-addr") == "[::1]:0"
    for bad in ("9323", ":9323", "host:", "host:port", "host:70000"):
        with pytest.raises(CliInputError, match="--metrics-addr"):
            parse_listen_address(bad, "--metrics-addr")
