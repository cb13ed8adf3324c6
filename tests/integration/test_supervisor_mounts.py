"""The supervisor's own mount namespace: no network namespace pins in it, yet containers
join pins made after it started, and a container that mounts host paths sees a mount
the host made after it started (container/mount_namespace.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyswarm.agent.runtime import syscalls as sc
from pyswarm.agent.runtime.container import StartError
from pyswarm.agent.runtime.container.mount_namespace import HostMounts
from pyswarm.agent.runtime.mountinfo import mount_table
from pyswarm.agent.runtime.network.netns import create_netns, remove_netns
from pyswarm.proto import runtime_pb2
from tests.harness.supervisor import SupervisorHarness
from tests.waiting import wait_for

pytestmark = pytest.mark.root


def supervisor_pid(harness: SupervisorHarness) -> int:
    out = subprocess.run(
        ["pgrep", "-f", "--", f"--socket {harness.socket_path}"], capture_output=True, text=True
    ).stdout.split()
    assert out, "the supervisor is not running"
    return int(out[0])


@contextlib.contextmanager
def pinned(path: Path) -> Iterator[Path]:
    create_netns(path)
    try:
        yield path
    finally:
        remove_netns(path)


def test_pins_stay_out_and_are_still_joined(supervisor: SupervisorHarness) -> None:
    pins = supervisor.base / "netns"
    with pinned(pins / "later") as later:
        pid = supervisor_pid(supervisor)
        # The pin made after the supervisor started is in the host's table, not in its.
        assert any(kind == "nsfs" and point == str(later) for point, kind in mount_table())
        theirs = mount_table(f"/proc/{pid}/mountinfo")
        assert [point for point, kind in theirs if kind == "nsfs"] == []
        assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        # Yet a container joins it: its netns is the pinned one.
        spec = supervisor.spec("sleep", "30", netns_path=str(later))
        state = asyncio.run(supervisor.client.create(spec))
        try:
            assert os.stat(f"/proc/{state.pid}/ns/net").st_ino == os.stat(later).st_ino
        finally:
            asyncio.run(supervisor.client.signal(spec.id, 9))
            asyncio.run(supervisor.client.wait(spec.id))


def test_a_missing_netns_is_named(supervisor: SupervisorHarness) -> None:
    missing = supervisor.base / "netns" / "never-made"
    spec = supervisor.spec("/bin/true", netns_path=str(missing))
    with pytest.raises(StartError) as caught:
        asyncio.run(supervisor.client.create(spec))
    assert caught.value.exit_code == 125
    assert f"join network namespace {missing}" in str(caught.value)


def test_a_host_mount_made_later_reaches_a_volume(supervisor: SupervisorHarness) -> None:
    source = supervisor.base / "data"
    source.mkdir()
    sc.mount("tmpfs", str(source), "tmpfs", 0, "size=1m")
    try:
        (source / "marker").write_text("from the host's tmpfs\n")
        volume = runtime_pb2.VolumeMount(source=str(source), target="/data")
        spec = supervisor.spec("cat", "/data/marker", volume_mounts=[volume])
        asyncio.run(supervisor.client.create(spec))
        state = asyncio.run(supervisor.client.wait(spec.id))
        assert state.exit_code == 0, state.error
        log = Path(spec.log_path)
        wait_for(lambda: "from the host's tmpfs" in log.read_text(), timeout=10)
    finally:
        sc.umount2(str(source), sc.MNT_DETACH)


def test_host_mounts_open_resolves_in_the_host_namespace(tmp_path: Path) -> None:
    with pinned(tmp_path / "pin") as pin:
        host = HostMounts(
            os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC),
            os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC),
        )
        try:
            fd = host.open(str(pin))
            try:
                assert os.fstat(fd).st_ino == os.stat(pin).st_ino
            finally:
                os.close(fd)
        finally:
            os.close(host.root)
            os.close(host.namespace)
