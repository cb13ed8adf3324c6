"""`init --force-new-cluster` and `init --restore` refuse what cannot work in one line
naming the flag, before anything starts or is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _init(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyswarm.cli.main", "init", "--no-context", *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_force_new_cluster_needs_a_surviving_managers_etcd_data(tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = _init("--force-new-cluster", "--state-dir", str(state))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"Error: --force-new-cluster needs this manager's etcd data: {state} holds none"
        " (run it on a surviving manager, with its --state-dir)"
    ]
    assert not state.exists()


def test_force_new_cluster_is_not_for_an_external_etcd(tmp_path: Path) -> None:
    tls = [tmp_path / name for name in ("ca.crt", "c.crt", "c.key")]
    for path in tls:
        path.write_text("x")
    result = _init(
        "--force-new-cluster", "--state-dir", str(tmp_path / "state"),
        "--etcd", "https://127.0.0.1:2379",
        "--cacert", str(tls[0]), "--cert", str(tls[1]), "--key", str(tls[2]),
    )  # fmt: skip
    assert result.returncode != 0
    assert "--force-new-cluster is for a manager's embedded etcd" in result.stderr


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"hello\n", "Error: not a pyswarm backup"),
        (b"PYSWARM-BACKUP\n\xff\xff", "Error: the backup is corrupt"),
    ],
)
def test_restore_refuses_what_is_no_backup(tmp_path: Path, content: bytes, words: str) -> None:
    file = tmp_path / "swarm.backup"
    file.write_bytes(content)
    state = tmp_path / "state"
    result = _init("--restore", str(file), "--state-dir", str(state))
    assert result.returncode != 0
    assert result.stderr.startswith(words), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not state.exists()
