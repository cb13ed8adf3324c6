"""The lab keeps the cluster's secrets out of sight: no join token in any lab process's
arguments, and its etcd answers nothing to a plain request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.harness.lab import LabCluster

PLAIN_RANGE = """
import sys, urllib.request, urllib.error
request = urllib.request.Request(sys.argv[1] + "/v3/kv/range", data=b'{"key": "Lw=="}')
try:
    with urllib.request.urlopen(request, timeout=5) as response:
        print("ANSWERED", response.status, response.read())
except urllib.error.HTTPError as err:
    print("REFUSED", err.code, err.read())
except OSError as err:
    print("REFUSED", err)
"""


def _session(pid: int) -> int:
    """The session id of `pid` (field 6 of /proc/PID/stat, after the parenthesised name)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[3])


def _cmdlines_of_sessions(sessions: set[int]) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if _session(int(proc.name)) in sessions:
                found[int(proc.name)] = (proc / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return found


def test_no_lab_process_has_a_join_token_in_its_arguments(lab: LabCluster) -> None:
    state = lab.state()
    tokens = [lab.cli("join-token", "-q", role).strip().encode() for role in ("worker", "manager")]
    assert all(token.startswith(b"SWMTKN-") for token in tokens)
    # Every agent joined (`pyswarm join ...`, or `pyswarm agent ...` once an earlier test
    # restarted it), and so did its children: all of them are looked at.
    agents = {node.agent_pid for node in state.nodes}
    sessions = {_session(pid) for pid in agents} | {_session(state.manager_pid)}
    cmdlines = _cmdlines_of_sessions(sessions)
    running = [
        pid
        for pid in agents
        if b"\0join\0" in cmdlines.get(pid, b"") or b"\0agent\0" in cmdlines.get(pid, b"")
    ]
    assert sorted(running) == sorted(agents), "every lab agent runs `pyswarm join` or `agent`"
    leaking = {
        pid: cmd.replace(b"\0", b" ")
        for pid, cmd in cmdlines.items()
        if b"SWMTKN-" in cmd or any(token in cmd for token in tokens)
    }
    assert leaking == {}


def test_the_lab_etcd_refuses_a_plain_request(lab: LabCluster) -> None:
    state = lab.state()
    cmdlines = _cmdlines_of_sessions({_session(state.manager_pid)})
    etcd = [cmd.split(b"\0") for cmd in cmdlines.values() if cmd.split(b"\0")[0].endswith(b"etcd")]
    assert len(etcd) == 1, "the lab's manager runs one embedded etcd"
    flags = [arg.decode() for arg in etcd[0]]
    assert "--client-cert-auth" in flags and "--peer-client-cert-auth" in flags
    listen = next(f for f in flags if f.startswith("--listen-client-urls="))
    url = listen.split("=", 1)[1]
    assert url.startswith("https://")
    manager_netns = state.nodes[0].netns  # the manager runs on node-1's host
    plain = url.replace("https://", "http://")
    result = subprocess.run(
        ["ip", "netns", "exec", manager_netns, sys.executable, "-c", PLAIN_RANGE, plain],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.stdout.startswith("REFUSED"), result.stdout + result.stderr
    assert "kvs" not in result.stdout
