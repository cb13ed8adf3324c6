"""Containers in a user namespace (`uid_map`/`gid_map`), for real: the container's
root is host uid 100000 and can do only what that uid may."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from pyswarm.agent.runtime.container import StartError
from pyswarm.agent.runtime.container.logs import read_log
from pyswarm.agent.runtime.container.userns import (
    DEFAULT_HOST_ID,
    default_id_map,
    prepare_writable_layer,
)
from pyswarm.proto import runtime_pb2
from tests.harness.supervisor import SupervisorHarness, collect

pytestmark = pytest.mark.root


def userns_spec(sv: SupervisorHarness, *args: str, **fields: Any) -> runtime_pb2.RuntimeSpec:
    """A spec with docker's default remapping, its writable layer given to host 100000."""
    spec: runtime_pb2.RuntimeSpec = sv.spec(
        *args, uid_map=default_id_map(), gid_map=default_id_map(), **fields
    )
    prepare_writable_layer(spec.rootfs.upper_dir, spec.rootfs.work_dir, spec.uid_map, spec.gid_map)
    return spec


def output(spec: runtime_pb2.RuntimeSpec, stream: str = "stdout") -> str:
    lines = read_log(Path(spec.log_path))
    return "".join(line.data.decode() for line in lines if line.stream == stream)


def run_script(sv: SupervisorHarness, script: str, **fields: Any) -> tuple[int, str, str]:
    spec = userns_spec(sv, "sh", "-c", script, **fields)

    async def scenario() -> int:
        await sv.client.create(spec)
        return (await sv.client.wait(spec.id)).exit_code

    code = asyncio.run(scenario())
    return code, output(spec), output(spec, "stderr")


def status_ids(pid: int, name: str) -> list[str]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].split()
    raise AssertionError(f"no {name} line")


def test_root_inside_is_host_uid_100000(supervisor: SupervisorHarness) -> None:
    spec = userns_spec(supervisor, "sleep", "600")

    async def scenario() -> tuple[list[str], list[str], list[str], int]:
        state = await supervisor.client.create(spec)
        seen = (
            status_ids(state.pid, "Uid"),
            status_ids(state.pid, "Gid"),
            status_ids(state.pid, "NSpid"),
        )
        await supervisor.client.signal(spec.id, signal.SIGKILL)
        return (*seen, (await supervisor.client.wait(spec.id)).exit_code)

    uids, gids, nspid, code = asyncio.run(scenario())
    assert uids == [str(DEFAULT_HOST_ID)] * 4
    assert gids == [str(DEFAULT_HOST_ID)] * 4
    # The tracked pid is the container's pid 1, not the intermediate that forked it.
    assert nspid[-1] == "1"
    assert code == 128 + signal.SIGKILL


def test_id_map_and_writes_land_in_upper_as_100000(supervisor: SupervisorHarness) -> None:
    script = "id -u; id -g; echo $$; cat /proc/self/uid_map; echo data > /written; cat /written"
    spec = userns_spec(supervisor, "sh", "-c", script)

    async def scenario() -> int:
        await supervisor.client.create(spec)
        return (await supervisor.client.wait(spec.id)).exit_code

    assert asyncio.run(scenario()) == 0
    lines = output(spec).splitlines()
    assert lines[:3] == ["0", "0", "1"]
    assert lines[3].split() == ["0", str(DEFAULT_HOST_ID), "65536"]
    assert lines[4] == "data"
    written = Path(spec.rootfs.upper_dir) / "written"
    info = written.stat()
    assert (info.st_uid, info.st_gid) == (DEFAULT_HOST_ID, DEFAULT_HOST_ID)


def test_copy_up_of_a_lower_directory_works(supervisor: SupervisorHarness) -> None:
    code, out, err = run_script(supervisor, "echo x > /tmp/f && cat /tmp/f && ls -ln /tmp/f")
    assert code == 0, err
    assert out.splitlines()[0] == "x"
    assert out.split()[3:5] == ["0", "0"]  # ls -ln: owner and group as the container sees


def test_host_root_files_stay_out_of_reach(supervisor: SupervisorHarness, tmp_path: Path) -> None:
    host_file = tmp_path / "host-owned"
    host_file.write_text("host data\n")
    host_file.chmod(0o644)
    mounts = [runtime_pb2.BindMount(source=str(host_file), target="/host-owned")]
    script = (
        "cat /host-owned; echo changed > /host-owned && echo WROTE; "
        "ls -ln /host-owned; hostname; mount -t tmpfs none /mnt && echo MOUNTED; exit 0"
    )
    code, out, _err = run_script(supervisor, script, mounts=mounts, hostname="uns")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "host data"
    assert "WROTE" not in out
    assert host_file.read_text() == "host data\n"
    assert lines[1].split()[2:4] == ["65534", "65534"]  # host root is "nobody" in here
    assert "uns" in lines
    assert "MOUNTED" not in out  # no CAP_SYS_ADMIN: docker's default set


def test_exit_codes_and_logs(supervisor: SupervisorHarness) -> None:
    code, out, err = run_script(supervisor, "echo out; echo err >&2; exit 7")
    assert (code, out, err) == (7, "out\n", "err\n")
    spec = userns_spec(supervisor, "no-such-command")
    with pytest.raises(StartError) as caught:
        asyncio.run(supervisor.client.create(spec))
    assert caught.value.exit_code == 127
    final = asyncio.run(supervisor.client.wait(spec.id))
    assert final.exit_code == 127 and "executable file not found" in final.error


def test_non_root_user_has_no_capabilities(supervisor: SupervisorHarness) -> None:
    code, out, _ = run_script(supervisor, "id -u; grep CapEff /proc/self/status", user="nobody")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "65534"
    assert lines[1].split()[1] == "0000000000000000"


def test_sigterm_reaches_pid_1(supervisor: SupervisorHarness) -> None:
    script = "trap 'echo bye; exit 3' TERM; echo ready; sleep 600 & wait"
    spec = userns_spec(supervisor, "sh", "-c", script, open_stdin=True)

    async def scenario() -> tuple[bytes, int]:
        await supervisor.client.create(spec)
        session = await supervisor.client.attach(spec.id)
        out, code = b"", -1
        async for frame in session.frames():
            out += frame.stdout
            if frame.stdout and b"ready" in out and b"bye" not in out:
                # The trap is set: a signal now reaches the handler, not the void.
                await supervisor.client.signal(spec.id, signal.SIGTERM)
            if frame.exited:
                code = frame.exit_code
        await session.close()
        return out, code

    out, code = asyncio.run(scenario())
    assert out == b"ready\nbye\n"
    assert code == 3


def test_exec_joins_the_user_namespace(supervisor: SupervisorHarness) -> None:
    spec = userns_spec(supervisor, "sleep", "600", hostname="inside")

    async def scenario() -> list[tuple[bytes, bytes, int, list[int]]]:
        await supervisor.client.create(spec)
        results = []
        for user in ("", "nobody"):
            script = "id -u; hostname; cat /proc/self/uid_map; cat /proc/1/cmdline; echo"
            process = runtime_pb2.ExecProcess(args=["sh", "-c", script], cwd="/", user=user)
            results.append(await collect(await supervisor.client.exec(spec.id, process)))
        await supervisor.client.signal(spec.id, signal.SIGKILL)
        await supervisor.client.wait(spec.id)
        return results

    (root_out, _e1, root_code, pids), (nobody_out, _e2, nobody_code, _p) = asyncio.run(scenario())
    assert root_code == 0 and nobody_code == 0
    lines = root_out.decode().splitlines()
    assert lines[:2] == ["0", "inside"]
    assert lines[2].split() == ["0", str(DEFAULT_HOST_ID), "65536"]
    assert lines[3].replace("\0", " ").strip() == "sleep 600"
    assert nobody_out.decode().splitlines()[0] == "65534"
    assert len(pids) == 1


def test_non_userns_container_is_unchanged(supervisor: SupervisorHarness) -> None:
    spec = supervisor.spec("sh", "-c", "id -u; cat /proc/self/uid_map")

    async def scenario() -> int:
        await supervisor.client.create(spec)
        return (await supervisor.client.wait(spec.id)).exit_code

    assert asyncio.run(scenario()) == 0
    lines = output(spec).splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", "0", "4294967295"]
    assert os.stat(Path(spec.rootfs.upper_dir)).st_uid == 0
