"""What a child forked for a container, exec or health probe holds before it enters
the container: seal_child runs first in every such child (spawn.py)."""

from __future__ import annotations

import json
import os
import socket

from pyswarm.agent.runtime import syscalls as sc
from pyswarm.agent.runtime.container.init import seal_child

PR_GET_DUMPABLE = 3


def _sealed_child_report(keep_extra: bool) -> dict[str, object]:
    """Fork a child holding stray descriptors, seal it, and have it report its state."""
    report_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stray = os.open("/proc/self/status", os.O_RDONLY)  # inheritable, like a leak
    kept_r, kept_w = os.pipe()
    channel = child_end.fileno()
    try:
        pid = os.fork()
        if pid == 0:
            try:
                keep = [channel, kept_w] if keep_extra else [channel]
                seal_child(keep)
                state = {
                    "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
                    "dumpable": sc.prctl(PR_GET_DUMPABLE),
                    "stdio": [os.readlink(f"/proc/self/fd/{fd}") for fd in (0, 1, 2)],
                }
                child_end.send(json.dumps(state).encode())
            finally:
                os._exit(0)
        child_end.close()
        message = report_end.recv(65536)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        result: dict[str, object] = json.loads(message)
        result["expected"] = {"channel": channel, "kept": kept_w, "stray": stray}
        return result
    finally:
        report_end.close()
        os.close(stray)
        os.close(kept_r)
        os.close(kept_w)


def test_child_is_not_dumpable() -> None:
    assert _sealed_child_report(keep_extra=False)["dumpable"] == 0


def test_child_holds_only_what_it_keeps() -> None:
    report = _sealed_child_report(keep_extra=True)
    expected = report["expected"]
    assert isinstance(expected, dict)
    fds = report["fds"]
    assert isinstance(fds, list)
    # 0-2, the channel, the kept pipe end, and listdir's own directory descriptor.
    extra = set(fds) - {0, 1, 2, expected["channel"], expected["kept"]}
    assert len(extra) == 1 and expected["stray"] not in fds
    assert report["stdio"] == ["/dev/null"] * 3
