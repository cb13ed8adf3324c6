"""`pyswarm push/pull/login/logout` end to end: a real agent and a real registry."""

from __future__ import annotations

import gzip
import io
import json
import stat
import tarfile
from pathlib import Path

import pytest

from pyswarm.images import oci
from pyswarm.images.digest import sha256_bytes
from pyswarm.images.registry import Manifest, RegistryClient
from tests.harness.agent_process import AgentProcess
from tests.harness.registry_process import RegistryProcess

pytestmark = pytest.mark.root


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


def test_pull_reuses_a_layer_the_store_holds_compressed_otherwise(
    agent: AgentProcess, registry: RegistryProcess, tmp_path: Path
) -> None:
    """busybox's layer pushed in another compression (and with another Cmd) is not fetched."""
    agent.cli("image", "save", "-o", str(tmp_path / "busybox.tar"), "busybox:latest")
    with tarfile.open(tmp_path / "busybox.tar") as tar:
        entry = json.loads(_member(tar, "manifest.json"))[0]
        config = json.loads(_member(tar, entry["Config"]))
        [stored_layer] = [_member(tar, name) for name in entry["Layers"]]
    gzipped = stored_layer[:2] == b"\x1f\x8b"
    layer = gzip.decompress(stored_layer) if gzipped else gzip.compress(stored_layer, mtime=0)
    config["config"]["Cmd"] = ["echo", "variant"]
    config_bytes = json.dumps(config).encode()
    media_type = oci.LAYER_MEDIA_TYPES["" if gzipped else "gzip"]
    descriptor = oci.Descriptor(media_type, sha256_bytes(layer), len(layer), {})
    manifest = oci.build_manifest(sha256_bytes(config_bytes), len(config_bytes), [descriptor])
    client = RegistryClient(registry.host)
    for blob in (layer, config_bytes):
        client.upload_blob("test/variant", sha256_bytes(blob), io.BytesIO(blob), len(blob))
    document = Manifest(oci.MANIFEST_MEDIA_TYPE, manifest, sha256_bytes(manifest))
    client.put_manifest("test/variant", "1", document)

    name = f"{registry.host}/test/variant:1"
    copy = f"{registry.host}/test/variant-copy:1"
    try:
        pulled = agent.cli("pull", name).stdout.splitlines()
        assert [line for line in pulled if line.endswith(": Already exists")]
        assert not [line for line in pulled if ": Downloading" in line or "Pull complete" in line]
        assert f"Status: Downloaded newer image for {name}" in pulled
        assert agent.cli("run", "--rm", name).stdout == "variant\n"
        agent.cli("image", "save", "-o", str(tmp_path / "variant.tar"), name)
        with tarfile.open(tmp_path / "variant.tar") as tar:
            assert "blobs/sha256/" + sha256_bytes(stored_layer)[7:] in tar.getnames()
        agent.cli("image", "tag", name, copy)
        assert ": Mounted from test/variant" in agent.cli("push", copy).stdout
    finally:
        agent.cli("rmi", name, copy, check=False)


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.extractfile(name)
    assert member is not None
    return member.read()


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
