"""Where `join` reads its token, and `init --etcd`'s TLS flags: sources, precedence, and
one clear error naming the flag at fault."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from pyswarm.cli.cluster import etcd_flags
from pyswarm.cli.join_token_input import JOIN_TOKEN_ENV, read_join_token
from pyswarm.cli.parse import CliInputError

TOKEN = "SWMTKN-1-abc-def"


def test_a_token_file_is_read_and_stripped(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}\n")
    assert read_join_token(None, path, environ={}) == TOKEN


def test_dash_reads_one_line_from_stdin() -> None:
    stdin = io.StringIO(f"{TOKEN}\nignored\n")
    assert read_join_token("-", None, environ={}, stdin=stdin) == TOKEN


def test_the_environment_is_used_when_no_flag_is_given() -> None:
    assert read_join_token(None, None, environ={JOIN_TOKEN_ENV: TOKEN}) == TOKEN


def test_a_flag_wins_over_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("SWMTKN-1-from-file")
    environ = {JOIN_TOKEN_ENV: TOKEN}
    assert read_join_token(None, path, environ=environ) == "SWMTKN-1-from-file"
    assert read_join_token("SWMTKN-1-flag", None, environ=environ) == "SWMTKN-1-flag"


def test_no_token_anywhere_says_how_to_give_one() -> None:
    with pytest.raises(CliInputError, match=r"--token-file FILE, \$PYSWARM_JOIN_TOKEN"):
        read_join_token(None, None, environ={})


def test_both_token_flags_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CliInputError, match="either --token or --token-file"):
        read_join_token(TOKEN, tmp_path / "token", environ={})


def test_a_missing_token_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CliInputError, match=r"--token-file: cannot read .*missing") as raised:
        read_join_token(None, tmp_path / "missing", environ={})
    assert raised.value.field == "--token-file"


@pytest.mark.parametrize("content", ["", "\n  \n", f"{TOKEN}\n{TOKEN}\n"])
def test_a_token_file_that_is_not_one_token_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "token"
    path.write_text(content)
    with pytest.raises(CliInputError, match="--token-file"):
        read_join_token(None, path, environ={})


def test_empty_stdin_and_empty_environment_are_named() -> None:
    with pytest.raises(CliInputError, match="standard input"):
        read_join_token("-", None, environ={}, stdin=io.StringIO(""))
    with pytest.raises(CliInputError, match=r"\$PYSWARM_JOIN_TOKEN holds no join token"):
        read_join_token(None, None, environ={JOIN_TOKEN_ENV: " "})


def _tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    files = tuple(tmp_path / name for name in ("ca.crt", "client.crt", "client.key"))
    for path in files:
        path.write_text("-----BEGIN PLACEHOLDER-----\n")
    return files  # type: ignore[return-value]


def test_init_takes_https_etcd_endpoints_with_their_tls_files(tmp_path: Path) -> None:
    ca, cert, key = _tls_files(tmp_path)
    endpoints = etcd_flags("https://10.0.0.1:2379, 10.0.0.2:2379", ca, cert, key)
    assert endpoints == ["https://10.0.0.1:2379", "10.0.0.2:2379"]
    assert etcd_flags("", None, None, None) == []  # embedded


def test_init_refuses_a_plain_http_etcd(tmp_path: Path) -> None:
    ca, cert, key = _tls_files(tmp_path)
    with pytest.raises(CliInputError, match=r"--etcd: .*plain http.*only over TLS") as raised:
        etcd_flags("http://10.0.0.1:2379", ca, cert, key)
    assert raised.value.field == "--etcd"


def test_init_names_the_missing_or_stray_tls_flag(tmp_path: Path) -> None:
    ca, cert, _ = _tls_files(tmp_path)
    with pytest.raises(CliInputError, match="--etcd needs --key") as missing:
        etcd_flags("https://10.0.0.1:2379", ca, cert, None)
    assert missing.value.field == "--key"
    with pytest.raises(CliInputError, match="--cacert: no such file") as absent:
        etcd_flags("https://10.0.0.1:2379", tmp_path / "nope", cert, cert)
    assert absent.value.field == "--cacert"
    with pytest.raises(CliInputError, match="--cert is for an existing etcd") as stray:
        etcd_flags("", None, cert, None)
    assert stray.value.field == "--cert"


def test_the_cli_refuses_a_plain_etcd_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "pyswarm.cli.main", "init", "--no-context",
            "--state-dir", str(tmp_path / "state"), "--etcd", "http://127.0.0.1:2379",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --etcd:"), result.stderr
    assert not (tmp_path / "state").exists()  # nothing was made
