"""deploy/systemd's units: both parse (`systemd-analyze verify`, where it exists, with
ExecStart pointed at a binary that exists here), and say what each daemon needs: the
agent leaves its containers running when it stops, the manager takes its etcd with
it, and the manager's state dir is its own (0700)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
AGENT = UNITS / "pyswarm-agent.service"
MANAGER = UNITS / "pyswarm-manager.service"
INSTALLED = "/opt/pyswarm/.venv/bin/pyswarm"


def parse(unit: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string(unit.read_text())
    return parser


@pytest.mark.parametrize("unit", [AGENT, MANAGER], ids=lambda path: path.name)
def test_the_unit_is_well_formed(unit: Path) -> None:
    parsed = parse(unit)
    assert parsed.sections() == ["Unit", "Service", "Install"]
    service = parsed["Service"]
    assert service["ExecStart"].startswith(f"{INSTALLED} ")
    assert service["Restart"] == "always"
    assert parsed["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("unit", [AGENT, MANAGER], ids=lambda path: path.name)
def test_systemd_accepts_the_unit(unit: Path, tmp_path: Path) -> None:
    # verify insists that the binary exists: the test venv's pyswarm stands in for it.
    here = Path(sys.executable).with_name("pyswarm")
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace(INSTALLED, str(here)))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Unknown keys and bad values are only warnings, so the output must be empty too.
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr


def test_the_agent_leaves_its_containers_and_the_manager_takes_its_etcd() -> None:
    assert parse(AGENT)["Service"]["KillMode"] == "process"
    assert parse(MANAGER)["Service"]["KillMode"] == "control-group"


def test_the_manager_runs_init_on_its_private_state_dir() -> None:
    service = parse(MANAGER)["Service"]
    argv = service["ExecStart"].split()
    assert argv[1] == "init"
    assert argv[argv.index("--state-dir") + 1] == "/var/lib/" + service["StateDirectory"]
    assert service["NoNewPrivileges"] == "yes"
    assert service["StateDirectoryMode"] == "0700" and service["UMask"] == "0077"
