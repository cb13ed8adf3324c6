"""`pyswarm push/pull/login/logout` end to end: a real agent and a real registry."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent_process import AgentProcess
from tests.registry_process import RegistryProcess

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    process = RegistryProcess(tmp_path_factory.mktemp("registry"))
    try:
        process.start()
        yield process
    finally:
        process.close()


def test_push_remove_pull_run(agent: AgentProcess, registry: RegistryProcess) -> None:
    name = f"{registry.host}/test/busybox:1"
    original = json.loads(agent.cli("image", "inspect", "busybox").stdout)[0]["Id"]
    agent.cli("image", "tag", "busybox", name)
    pushed = agent.cli("image", "push", name).stdout
    assert ": Pushed" in pushed and "1: digest: sha256:" in pushed

    agent.cli("rmi", name)
    agent.cli("rmi", "busybox:latest")  # the store no longer holds the image or its layer
    assert agent.cli("image", "inspect", name, check=False).returncode != 0

    pulled = agent.cli("pull", name).stdout.splitlines()
    assert any(line.endswith(": Pull complete") for line in pulled)
    assert pulled[-3].startswith("Digest: sha256:")
    assert pulled[-2:] == [f"Status: Downloaded newer image for {name}", name]
    info = json.loads(agent.cli("image", "inspect", name).stdout)[0]
    assert info["Id"] == original
    assert info["RepoDigests"] == [f"{registry.host}/test/busybox@{pulled[-3][8:]}"]
    assert agent.cli("run", "--rm", name, "echo", "ok").stdout == "ok\n"

    again = agent.cli("image", "pull", name).stdout.splitlines()
    assert [line for line in again if line.endswith(": Already exists")]
    assert not [line for line in again if "Pull complete" in line]
    assert f"Status: Image is up to date for {name}" in again
    agent.cli("image", "tag", name, "busybox:latest")


def test_pull_unknown_is_one_line_not_found(agent: AgentProcess, registry: RegistryProcess) -> None:
    result = agent.cli("pull", f"{registry.host}/test/absent:1", check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "not found" in result.stderr and "test/absent:1" in result.stderr


def test_search_lists_matching_repositories(agent: AgentProcess, registry: RegistryProcess) -> None:
    name = f"{registry.host}/search/findme:1"
    agent.cli("image", "tag", "busybox", name)
    agent.cli("push", name)
    lines = agent.cli("search", f"{registry.host}/findm").stdout.splitlines()
    assert lines == ["NAME", f"{registry.host}/search/findme"]
    agent.cli("rmi", name)


def test_login_checks_then_stores_and_logout_forgets(
    agent: AgentProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYSWARM_CONFIG", str(tmp_path / "cfg"))
    private = RegistryProcess(tmp_path / "registry", users={"me": "pw"})
    private.root.mkdir()
    try:
        private.start()
        host = private.host
        refused = agent.cli(
            "login", "-u", "me", "--password-stdin", host, input=b"bad\n", check=False
        )
        assert refused.returncode == 1 and b"unauthorized" in refused.stderr
        assert not (tmp_path / "cfg" / "auth.json").exists()
        out = agent.cli("login", "-u", "me", "--password-stdin", host, input=b"pw\n").stdout
        assert b"Login Succeeded" in out
        auth = tmp_path / "cfg" / "auth.json"
        assert stat.S_IMODE(auth.stat().st_mode) == 0o600
        assert json.loads(auth.read_text())[host] == {"username": "me", "password": "pw"}

        name = f"{host}/private/busybox:1"  # push and pull use the stored credentials
        agent.cli("image", "tag", "busybox", name)
        agent.cli("push", name)
        agent.cli("rmi", name)
        assert "Status: Downloaded newer image" in agent.cli("pull", name).stdout
        agent.cli("rmi", name)

        assert "Removing login credentials" in agent.cli("logout", host).stdout
        assert "Not logged in" in agent.cli("logout", host).stdout
        denied = agent.cli("pull", name, check=False)
        assert denied.returncode == 1 and "unauthorized" in denied.stderr
    finally:
        private.close()
