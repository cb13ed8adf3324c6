"""What a process sees inside a container: the init checklist, checked for real."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pyswarm.agent.runtime.container.capabilities import DEFAULT_CAPABILITIES, capability_mask
from pyswarm.agent.runtime.container.logs import read_log
from pyswarm.proto import runtime_pb2, types_pb2
from tests.harness.supervisor import SupervisorHarness

pytestmark = pytest.mark.root


def run_script(sv: SupervisorHarness, script: str, **fields: object) -> tuple[int, str, str]:
    """Run `sh -c script` in a fresh container: (exit code, stdout, stderr)."""
    spec = sv.spec("sh", "-c", script, **fields)

    async def scenario() -> int:
        await sv.client.create(spec)
        return (await sv.client.wait(spec.id)).exit_code

    code = asyncio.run(scenario())
    lines = read_log(Path(spec.log_path))
    out = "".join(line.data.decode() for line in lines if line.stream == "stdout")
    err = "".join(line.data.decode() for line in lines if line.stream == "stderr")
    return code, out, err


def status_field(status: str, name: str) -> str:
    return next(
        line.split(":", 1)[1].strip() for line in status.splitlines() if line.startswith(f"{name}:")
    )


def test_process_is_pid_1(supervisor: SupervisorHarness) -> None:
    assert run_script(supervisor, "echo $$")[:2] == (0, "1\n")


def test_hostname_is_set(supervisor: SupervisorHarness) -> None:
    assert run_script(supervisor, "hostname", hostname="web-1")[1] == "web-1\n"


def test_proc_shows_only_the_container(supervisor: SupervisorHarness) -> None:
    code, out, _ = run_script(supervisor, "ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '")
    assert code == 0
    pids = [int(p) for p in out.split()]
    # sh itself (1) and the pipeline's children: all tiny numbers, nothing of the host's.
    assert pids[0] == 1
    assert max(pids) < 10


def test_rootfs_is_an_overlay(supervisor: SupervisorHarness) -> None:
    code, out, _ = run_script(
        supervisor, "echo data > /written; cat /written; grep ' / ' /proc/mounts | cut -d' ' -f3"
    )
    assert code == 0
    assert out.splitlines() == ["data", "overlay"]
    upper_files = list((supervisor.base / "containers").glob("*/upper/written"))
    assert len(upper_files) == 1 and upper_files[0].read_text() == "data\n"
    assert not (supervisor.lower / "written").exists()


def test_bind_mounts_read_write_and_read_only(
    supervisor: SupervisorHarness, tmp_path: Path
) -> None:
    rw = tmp_path / "rw"
    ro = tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "file").write_text("from host\n")
    mounts = [
        runtime_pb2.BindMount(source=str(rw), target="/data/rw"),
        runtime_pb2.BindMount(source=str(ro), target="/data/ro", read_only=True),
    ]
    script = "echo new > /data/rw/out; cat /data/ro/file; echo x > /data/ro/nope || echo refused"
    code, out, _ = run_script(supervisor, script, mounts=mounts)
    assert code == 0
    assert out.splitlines() == ["from host", "refused"]
    assert (rw / "out").read_text() == "new\n"
    assert not (ro / "nope").exists()


def test_bind_target_cannot_escape_via_symlink(
    supervisor: SupervisorHarness, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "marker").write_text("m")
    outside = tmp_path / "outside"
    outside.mkdir()
    # An image layer whose /evil is an absolute symlink to a host directory.
    layer = tmp_path / "layer"
    layer.mkdir()
    (layer / "evil").symlink_to(outside)
    spec = supervisor.spec(
        "cat",
        "/evil/inner/marker",
        mounts=[runtime_pb2.BindMount(source=str(source), target="/evil/inner")],
    )
    spec.rootfs.lower_dirs.insert(0, str(layer))

    async def scenario() -> int:
        await supervisor.client.create(spec)
        return (await supervisor.client.wait(spec.id)).exit_code

    assert asyncio.run(scenario()) == 0
    assert "".join(line.data.decode() for line in read_log(Path(spec.log_path))) == "m"
    assert list(outside.iterdir()) == []


def test_limits_are_set_on_the_containers_cgroup(supervisor: SupervisorHarness) -> None:
    limits = types_pb2.Resources(memory_bytes=64 * 1024 * 1024, pids=42, nano_cpus=500_000_000)
    spec = supervisor.spec("sh", "-c", "cat /proc/self/cgroup; sleep 600", limits=limits)
    state = asyncio.run(supervisor.client.create(spec))
    assert state.pid in supervisor.cgroups.pids(spec.id)
    stats = supervisor.cgroups.stats(spec.id)
    assert stats.memory_limit_bytes == 64 * 1024 * 1024
    assert stats.pids >= 1
    values = {}
    for directory in spec.cgroup_dirs:
        for name in ("pids.max", "cpu.cfs_quota_us", "cpu.max"):
            if Path(directory, name).exists():
                values[name] = Path(directory, name).read_text().strip()
    assert values.get("pids.max") == "42"
    assert values.get("cpu.cfs_quota_us", values.get("cpu.max", "").split(" ")[0]) == "50000"


def test_container_sees_its_cgroup_as_root(supervisor: SupervisorHarness) -> None:
    code, out, _ = run_script(supervisor, "cat /proc/self/cgroup")
    assert code == 0
    memory_line = next(
        line for line in out.splitlines() if "memory" in line or line.startswith("0::")
    )
    assert memory_line.endswith(":/")


def test_capabilities_are_dockers_default(supervisor: SupervisorHarness) -> None:
    code, out, _ = run_script(supervisor, "cat /proc/self/status")
    assert code == 0
    expected = capability_mask(DEFAULT_CAPABILITIES)
    assert int(status_field(out, "CapBnd"), 16) == expected
    assert int(status_field(out, "CapEff"), 16) == expected
    assert int(status_field(out, "CapPrm"), 16) == expected
    assert status_field(out, "NoNewPrivs") == "0"  # docker: only with no-new-privileges


def test_user_nobody(supervisor: SupervisorHarness) -> None:
    code, out, _ = run_script(
        supervisor, "id -u; id -g; grep CapEff /proc/self/status", user="nobody"
    )
    assert code == 0
    uid, gid, cap_eff = out.splitlines()
    assert (uid, gid) == ("65534", "65534")
    assert int(cap_eff.split()[1], 16) == 0


def test_numeric_user_and_group(supervisor: SupervisorHarness) -> None:
    assert run_script(supervisor, "id -u; id -g", user="1234:5")[1] == "1234\n5\n"


def test_working_directory_is_created(supervisor: SupervisorHarness) -> None:
    assert run_script(supervisor, "pwd", cwd="/srv/app")[1] == "/srv/app\n"


def test_dev_is_minimal(supervisor: SupervisorHarness) -> None:
    code, out, _ = run_script(
        supervisor,
        "ls /dev | sort | tr '\\n' ' '; echo; grep ' /sys ' /proc/mounts | cut -d' ' -f4",
    )
    assert code == 0
    listing, sys_options = out.splitlines()
    assert set(listing.split()) == {
        "fd",
        "full",
        "null",
        "ptmx",
        "pts",
        "random",
        "shm",
        "stderr",
        "stdin",
        "stdout",
        "tty",
        "urandom",
        "zero",
    }
    assert sys_options.split(",")[0] == "ro"


def test_environment_and_path_lookup(supervisor: SupervisorHarness) -> None:
    env = ["PATH=/opt/bin:/bin", "GREETING=hello"]
    assert run_script(supervisor, "echo $GREETING $HOME", env=env)[1] == "hello /root\n"
