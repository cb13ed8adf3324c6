"""The image commands end to end, through a running agent."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.harness.agent_process import AgentProcess

pytestmark = pytest.mark.root


def _tags(agent: AgentProcess) -> list[str]:
    rows = [
        json.loads(line)
        for line in agent.cli("images", "--format", "json").stdout.split("\n")
        if line
    ]
    return [f"{row['Repository']}:{row['Tag']}" for row in rows]


def test_images_lists_busybox_and_tag_and_rmi(agent: AgentProcess) -> None:
    assert "busybox:latest" in _tags(agent)
    agent.cli("image", "tag", "busybox", "mirror/busybox:v1")
    assert "mirror/busybox:v1" in _tags(agent)
    info = json.loads(agent.cli("image", "inspect", "mirror/busybox:v1").stdout)[0]
    assert info["Id"].startswith("sha256:")
    assert "mirror/busybox:v1" in info["RepoTags"] and "busybox:latest" in info["RepoTags"]
    removed = agent.cli("rmi", "mirror/busybox:v1").stdout
    assert "Untagged: mirror/busybox:v1" in removed
    assert "Deleted" not in removed  # busybox:latest still names it
    assert "busybox:latest" in _tags(agent)


def test_save_and_load_round_trip(agent: AgentProcess, tmp_path: Path) -> None:
    archive = tmp_path / "busybox.tar"
    agent.cli("image", "tag", "busybox", "roundtrip:1")
    agent.cli("image", "save", "-o", str(archive), "roundtrip:1")
    original = json.loads(agent.cli("image", "inspect", "roundtrip:1").stdout)[0]["Id"]
    agent.cli("rmi", "roundtrip:1")
    loaded = agent.cli("image", "load", "-i", str(archive)).stdout
    assert "Loaded image: roundtrip:1" in loaded
    assert json.loads(agent.cli("image", "inspect", "roundtrip:1").stdout)[0]["Id"] == original
    assert agent.cli("run", "--rm", "roundtrip:1", "echo", "ok").stdout == "ok\n"
    agent.cli("rmi", "roundtrip:1")


def test_import_refuses_an_escaping_archive(agent: AgentProcess, tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../../escaped")
        payload = b"gotcha"
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    result = agent.cli("image", "import", str(evil), "evil:1", check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "evil:1" not in _tags(agent)


def test_unknown_image_and_in_use_image(agent: AgentProcess) -> None:
    missing = agent.cli("rmi", "no-such:thing", check=False)
    assert missing.returncode == 1 and "No such image" in missing.stderr
    agent.cli("run", "-d", "--name", "user", "busybox", "sleep", "1000")
    try:
        refused = agent.cli("rmi", "busybox", check=False)
        assert refused.returncode == 1
        assert "busybox:latest" in _tags(agent)
    finally:
        agent.cli("rm", "-f", "user")


def test_system_df_reports_images_and_containers(agent: AgentProcess) -> None:
    rows = [
        json.loads(line)
        for line in agent.cli("system", "df", "--format", "json").stdout.split("\n")
        if line
    ]
    by_type = {row["Type"]: row for row in rows}
    assert int(by_type["Images"]["TotalCount"]) >= 1
    assert by_type["Images"]["Size"].endswith("B") and by_type["Images"]["Size"] != "0B"
    table = agent.cli("system", "df").stdout
    assert table.splitlines()[0].split()[:3] == ["TYPE", "TOTAL", "ACTIVE"]
