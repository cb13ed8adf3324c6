"""`lab up --vms` refuses what it cannot do in one line, before it makes anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyswarm.lab.vms.host_checks import available_mib
from pyswarm.lab.vms.lab import VM_MIB
from pyswarm.lab.vms.network import VmNetwork
from pyswarm.lab.vms.state import VmLabState

pytestmark = pytest.mark.root

NAME = "e2evmx"


def _lab_up(
    tmp_path: Path, *args: str, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYSWARM_CONFIG": str(tmp_path)}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "pyswarm.cli.main", "lab", "up", "--name", NAME, *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def _nothing_made() -> None:
    assert VmLabState.load(NAME) is None
    assert VmNetwork(NAME, "10.232.0.0/24").leftovers() == []


def test_no_qemu_is_one_line_naming_the_package(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    result = _lab_up(tmp_path, "--vms", "3", path=str(empty))
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "qemu-system-x86" in result.stderr and "Traceback" not in result.stderr
    _nothing_made()
    assert not (tmp_path / "contexts.json").exists()


def test_more_vms_than_memory_allows_are_refused_before_anything_starts(tmp_path: Path) -> None:
    too_many = available_mib() // VM_MIB + 2
    result = _lab_up(tmp_path, "--vms", str(too_many))
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"not enough memory for {too_many} VMs" in result.stderr
    _nothing_made()
    assert not (tmp_path / "contexts.json").exists()
