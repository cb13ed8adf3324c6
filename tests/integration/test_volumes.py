"""Volumes end to end on one host: CLI -> agent -> supervisor -> kernel, with real
containers, real tmpfs mounts and an agent restarted in the middle."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.harness.agent_process import AgentProcess
from tests.waiting import wait_for

pytestmark = pytest.mark.root


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        return any(line.split(" ")[4] == path for line in info)


def _inspect(agent: AgentProcess, name: str) -> dict[str, object]:
    found: list[dict[str, object]] = json.loads(agent.cli("volume", "inspect", name).stdout)
    return found[0]


def _wait_exited(agent: AgentProcess, cid: str) -> None:
    def exited() -> bool:
        state = json.loads(agent.cli("inspect", cid).stdout)[0]["State"]
        return bool(state["Status"] == "exited")

    wait_for(exited, what=f"{cid[:12]} to exit")


def _names(agent: AgentProcess, *flags: str) -> list[str]:
    names: str = agent.cli("volume", "ls", "-q", *flags).stdout
    return names.split()


def test_a_named_volume_keeps_its_data_across_containers(agent: AgentProcess) -> None:
    agent.cli("run", "--rm", "-v", "keep:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    assert "keep" in _names(agent)
    found = agent.cli("run", "--rm", "--mount", "src=keep,dst=/d", "busybox", "cat", "/d/f")
    assert found.stdout == "kept\n"
    volume = _inspect(agent, "keep")
    mountpoint = Path(str(volume["Mountpoint"]))
    assert mountpoint == agent.state_dir / "volumes" / "keep" / "_data"
    assert (mountpoint / "f").read_text() == "kept\n"
    assert (volume["Driver"], volume["Scope"], volume["Name"]) == ("local", "local", "keep")
    assert "UsageData" not in volume and volume["Options"] is None
    record = agent.state_dir / "volumes" / "keep" / "volume.pb"
    assert record.stat().st_mode & 0o777 == 0o600
    # read-only: the container cannot write, the data stays
    ro = agent.cli(
        "run", "--rm", "-v", "keep:/data:ro", "busybox", "sh", "-c", "echo x > /data/f", check=False
    )  # fmt: skip
    assert ro.returncode != 0 and "Read-only file system" in ro.stderr
    assert (mountpoint / "f").read_text() == "kept\n"
    agent.cli("volume", "rm", "keep")
    assert not mountpoint.exists() and "keep" not in _names(agent)


def test_a_volume_in_use_is_not_removed_and_the_container_is_named(agent: AgentProcess) -> None:
    cid = agent.cli(
        "run", "-d", "--name", "holder", "-v", "held:/x", "busybox", "sleep", "600"
    ).stdout.strip()
    refused = agent.cli("volume", "rm", "held", check=False)
    assert refused.returncode == 1
    assert "remove held: volume is in use" in refused.stderr and cid in refused.stderr
    assert "held" in _names(agent, "--filter", "dangling=false")
    agent.cli("rm", "-f", "holder")
    assert "held" in _names(agent, "--filter", "dangling=true")
    agent.cli("volume", "rm", "held")
    missing = agent.cli("volume", "rm", "held", check=False)
    assert missing.returncode == 1 and "no such volume" in missing.stderr
    agent.cli("volume", "rm", "-f", "held")  # docker's -f: a missing volume is no error


def test_tmpfs_volume_is_mounted_while_used_and_gone_after(agent: AgentProcess) -> None:
    agent.cli(
        "volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs",
        "--opt", "o=size=2m", "--label", "kind=scratch", "scratchvol",
    )  # fmt: skip
    data = str(agent.state_dir / "volumes" / "scratchvol" / "_data")
    assert not _mounted(data)
    first = agent.cli(
        "run", "-d", "-v", "scratchvol:/t", "busybox", "sh", "-c", "echo one > /t/a; sleep 600"
    ).stdout.strip()
    wait_for(lambda: Path(data, "a").exists(), what="the first container's write")
    assert _mounted(data)
    # a second user shares the same filesystem; the first one's exit does not unmount it
    second = agent.cli("run", "-d", "-v", "scratchvol:/t", "busybox", "sleep", "600").stdout.strip()
    agent.cli("rm", "-f", first)
    assert _mounted(data)
    shown = agent.cli("exec", second, "sh", "-c", "cat /t/a; df -k /t | tail -1").stdout
    assert shown.startswith("one\n") and " 2048 " in shown
    assert json.loads(agent.cli("volume", "inspect", "scratchvol").stdout)[0]["Labels"] == {
        "kind": "scratch"
    }
    agent.cli("rm", "-f", second)
    wait_for(lambda: not _mounted(data), what="the tmpfs volume to be unmounted")
    agent.cli("volume", "rm", "scratchvol")


def test_mount_flag_tmpfs_and_a_missing_bind_source(agent: AgentProcess, tmp_path: Path) -> None:
    shown = agent.cli(
        "run", "--rm", "--mount", "type=tmpfs,dst=/scratch,tmpfs-size=1m,tmpfs-mode=1770",
        "busybox", "sh", "-c", "grep ' /scratch ' /proc/mounts; stat -c %a /scratch",
    ).stdout  # fmt: skip
    assert "tmpfs" in shown and "size=1024k" in shown and "nosuid" in shown
    assert shown.splitlines()[-1] == "1770"
    missing = agent.cli(
        "run", "--rm", "--mount", f"type=bind,src={tmp_path}/nowhere,dst=/x", "busybox", "true",
        check=False,
    )  # fmt: skip
    assert missing.returncode == 125
    assert (
        'invalid mount config for type "bind": bind source path does not exist:'
        f" {tmp_path}/nowhere" in missing.stderr
    )
    relative = agent.cli("run", "--rm", "--mount", "type=bind,src=x,dst=/x", "busybox", "true",
                         check=False)  # fmt: skip
    assert relative.returncode == 125 and "'x' mount path must be absolute" in relative.stderr
    assert "Traceback" not in missing.stderr + relative.stderr
    # -v still makes a missing host directory, as docker's -v does
    agent.cli("run", "--rm", "-v", f"{tmp_path}/made:/m", "busybox", "touch", "/m/here")
    assert (tmp_path / "made" / "here").exists()


def test_anonymous_volumes_go_with_rm_v_and_with_rm(agent: AgentProcess) -> None:
    before = set(_names(agent))
    cid = agent.cli("run", "-d", "-v", "/anon", "busybox", "true").stdout.strip()
    _wait_exited(agent, cid)
    (anonymous,) = set(_names(agent)) - before
    assert len(anonymous) == 64
    labels = _inspect(agent, anonymous)["Labels"]
    assert labels == {"com.docker.volume.anonymous": ""}
    agent.cli("rm", "-v", cid)
    assert anonymous not in _names(agent)
    agent.cli("run", "--rm", "-v", "/anon", "-v", "namedkept:/n", "busybox", "true")
    wait_for(lambda: set(_names(agent)) - before == {"namedkept"}, what="--rm's anonymous volume")
    # prune: anonymous ones only, unless --all
    cid = agent.cli("run", "-d", "-v", "/anon", "busybox", "true").stdout.strip()
    _wait_exited(agent, cid)
    agent.cli("rm", cid)  # without -v: the anonymous volume stays, dangling
    assert len(set(_names(agent)) - before) == 2
    pruned = agent.cli("volume", "prune", "-f").stdout
    assert pruned.startswith("Deleted Volumes:\n") and set(_names(agent)) - before == {"namedkept"}
    agent.cli("volume", "prune", "-f", "--all")
    assert "namedkept" not in _names(agent)


def test_image_content_is_copied_into_a_new_volume(agent: AgentProcess, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nRUN mkdir -p /seed/sub && echo seeded > /seed/sub/f"
        " && chown -R 65534:65534 /seed && chmod 0750 /seed\nVOLUME /seed\n"
    )
    agent.cli("build", "-t", "seeded:1", str(tmp_path))
    shown = agent.cli(
        "run", "--rm", "-v", "seedvol:/seed", "seeded:1", "sh", "-c",
        "cat /seed/sub/f; stat -c '%u %a' /seed",
    ).stdout  # fmt: skip
    assert shown == "seeded\n65534 750\n"
    empty = agent.cli(
        "run", "--rm", "--mount", "src=nocopyvol,dst=/seed,volume-nocopy", "seeded:1", "ls", "/seed"
    ).stdout  # fmt: skip
    assert empty == ""
    # the image's VOLUME alone: an anonymous volume, seeded, gone with --rm
    assert agent.cli("run", "--rm", "seeded:1", "cat", "/seed/sub/f").stdout == "seeded\n"
    agent.cli("volume", "rm", "seedvol", "nocopyvol")


def test_records_and_counts_survive_an_agent_restart(agent: AgentProcess) -> None:
    agent.cli(
        "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "--label", "a=b", "kept"
    )  # fmt: skip
    data = str(agent.state_dir / "volumes" / "kept" / "_data")
    cid = agent.cli("run", "-d", "-v", "kept:/k", "busybox", "sleep", "600").stdout.strip()
    wait_for(lambda: _mounted(data), what="the volume to be mounted")
    agent.kill(signal.SIGKILL)
    agent.start()
    assert "kept" in _names(agent, "--filter", "label=a=b")
    assert _mounted(data)  # still held by the running container
    agent.cli("stop", "-t", "0", cid)
    wait_for(lambda: not _mounted(data), what="the last user's stop to unmount it")
    agent.cli("rm", cid)
    agent.cli("volume", "rm", "kept")


def test_system_df_counts_volumes(agent: AgentProcess) -> None:
    agent.cli(
        "run", "--rm", "-v", "dfvol:/d", "busybox", "sh", "-c", "head -c 5000 /dev/zero > /d/z"
    )
    rows = [
        json.loads(line)
        for line in agent.cli("system", "df", "--format", "json").stdout.split("\n")
        if line
    ]
    (volumes,) = [r for r in rows if r["Type"] == "Local Volumes"]
    assert int(volumes["TotalCount"]) >= 1
    assert volumes["Size"] != "0B"
    agent.cli("volume", "rm", "dfvol")


def test_bad_volume_input_is_one_line(agent: AgentProcess) -> None:
    bad_opt = agent.cli("volume", "create", "-o", "colour=blue", "v1", check=False)
    assert bad_opt.returncode == 1 and 'invalid option: "colour"' in bad_opt.stderr
    bad_name = agent.cli("volume", "create", "a/b", check=False)
    assert bad_name.returncode == 1 and "invalid characters" in bad_name.stderr
    bad_filter = agent.cli("volume", "ls", "--filter", "colour=blue", check=False)
    assert bad_filter.returncode == 1 and "invalid filter 'colour'" in bad_filter.stderr
    for result in (bad_opt, bad_name, bad_filter):
        assert len(result.stderr.strip().splitlines()) == 1
    assert "v1" not in _names(agent)
