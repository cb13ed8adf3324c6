"""`pyswarm service logs`: every task's lines from every node, through the log broker.

Everything is real: etcd, a manager started by `pyswarm init`, two agent processes that
joined it with `pyswarm join` and run busybox tasks, and the `pyswarm` CLI. A second
manager on the same etcd serves `service logs` for agents in session with the first
(the subscription travels through etcd). The last test stops one agent: its tasks'
logs are missing and the CLI says so instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pyswarm.manager.logbroker.subscriptions import SUBSCRIPTIONS_PREFIX
from pyswarm.manager.store import EmbeddedEtcd
from tests.harness.cluster_agent import ClusterAgent, free_port_pair
from tests.harness.etcd import etcd_client, running_etcd
from tests.harness.manager import start_manager, stop_process
from tests.waiting import wait_for

pytestmark = pytest.mark.root

# Each task says hello on stdout, complains once on stderr, then ticks every 0.2 s.
TALK = [
    "busybox", "sh", "-c",
    'echo "hello from $(hostname)"; echo oops >&2; i=0;'
    ' while true; do echo "tick $i"; i=$((i+1)); sleep 0.2; done',
]  # fmt: skip
CONTEXT = re.compile(
    r"^(?P<name>[\w-]+\.\d+)(\.(?P<id>[0-9a-z]+))?@(?P<node>[\w-]+) +\| (?P<line>.*)$"
)
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z tick ")


@dataclass
class Swarm:
    root: Path
    etcd: EmbeddedEtcd
    port: int
    managers: list[subprocess.Popen[bytes]]
    nodes: list[ClusterAgent]
    second_port: int = 0

    def env(self, port: int = 0) -> dict[str, str]:
        port = port or self.port
        state = self.root / ("manager" if port == self.port else "second/manager")
        return {
            **os.environ,
            "PYSWARM_HOST": f"127.0.0.1:{port}",
            "PYSWARM_CERT_DIR": str(state / "client"),
            "PYSWARM_CONFIG": str(self.root / "cli-config"),
        }

    def cli(
        self, *args: str, port: int = 0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "pyswarm.cli.main", *args],
            capture_output=True,
            text=True,
            env=self.env(port),
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"pyswarm {' '.join(args)}: {result.stdout!r} {result.stderr!r}")
        return result

    def tasks(self, service: str) -> list[dict[str, str]]:
        out = self.cli("service", "ps", service, "--format", "json").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def running(self, service: str) -> list[dict[str, str]]:
        return [
            t
            for t in self.tasks(service)
            if t["DesiredState"] == "Running" and t["CurrentState"].startswith("Running")
        ]

    def node_is(self, node: ClusterAgent, state: str) -> bool:
        rows = self.cli("node", "ls").stdout.splitlines()
        return any(f"node-{node.tag}" in row and state in row for row in rows)

    def subscriptions(self) -> int:
        async def count() -> int:
            async with etcd_client(self.etcd) as client:
                return len((await client.range(SUBSCRIPTIONS_PREFIX, prefix=True)).kvs)

        return asyncio.run(count())


@dataclass
class Follower:
    """`pyswarm service logs -f` in the background, its output collected line by line."""

    process: subprocess.Popen[str]
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, swarm: Swarm, *args: str) -> Follower:
        process = subprocess.Popen(
            [sys.executable, "-m", "pyswarm.cli.main", "service", "logs", "-f", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=swarm.env(),
        )
        follower = cls(process)
        for stream, lines in ((process.stdout, follower.out), (process.stderr, follower.err)):
            threading.Thread(target=_collect, args=(stream, lines), daemon=True).start()
        return follower

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                return self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(timeout=30)


def _collect(stream: object, lines: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.append(line)


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    root = tmp_path_factory.mktemp("logs")
    with contextlib.ExitStack() as stack:
        etcd = stack.enter_context(running_etcd(root / "etcd"))
        port = free_port_pair()
        manager = start_manager(root, etcd, port)
        stack.callback(stop_process, manager)
        swarm = Swarm(root, etcd, port, [manager], [])
        wait_for(
            lambda: manager.poll() is None and swarm.cli("node", "ls", check=False).returncode == 0,
            timeout=60,
            what="the manager to answer",
        )
        token = swarm.cli("join-token", "worker", "-q").stdout.strip()
        for name in ("a", "b"):
            node = ClusterAgent(root / name)
            node.root.mkdir()
            stack.callback(node.close)
            node.join(token, f"127.0.0.1:{port + 1}")
            node.cli("image", "busybox", "busybox:latest")
            swarm.nodes.append(node)
        wait_for(
            lambda: all(swarm.node_is(node, "Ready") for node in swarm.nodes),
            timeout=60,
            what="both agents ready",
        )
        swarm.cli("service", "create", "-d", "--name", "talk", "--replicas", "2", *TALK)
        wait_for(lambda: len(swarm.running("talk")) == 2, timeout=90, what="2 tasks running")
        yield swarm


def parsed(output: str) -> list[re.Match[str]]:
    matches = [CONTEXT.match(line) for line in output.splitlines()]
    assert all(matches), output
    return [m for m in matches if m is not None]


def logs_with(
    swarm: Swarm, *args: str, until: str, port: int = 0
) -> subprocess.CompletedProcess[str]:
    """`service logs ARGS`, again until its output shows `until` (a task may be starting)."""

    def shows() -> subprocess.CompletedProcess[str] | None:
        result = swarm.cli("service", "logs", *args, port=port)
        return result if until in result.stdout + result.stderr else None

    return wait_for(shows, timeout=30, what=f"{until!r} in service logs {' '.join(args)}")


def test_logs_show_every_task_with_its_context(swarm: Swarm) -> None:
    tasks = swarm.running("talk")
    # Spread over both nodes: the lines come from two agents.
    assert {t["Node"] for t in tasks} == {f"node-{n.tag}" for n in swarm.nodes}

    def both_said_hello() -> subprocess.CompletedProcess[str] | None:
        result = swarm.cli("service", "logs", "talk")
        return result if result.stdout.count("hello from") == 2 else None

    result = wait_for(both_said_hello, timeout=30, what="both tasks' hello")
    lines = parsed(result.stdout)
    for task in tasks:
        mine = [m for m in lines if m["name"] == task["Name"]]
        assert mine, (task, result.stdout)
        assert {(m["id"], m["node"]) for m in mine} == {(task["ID"], task["Node"])}
        assert any(m["line"].startswith("hello from") for m in mine)
        assert any(m["line"].startswith("tick ") for m in mine)
    assert "oops" not in result.stdout  # stderr lines go to stderr, with their context
    errors = parsed(result.stderr)
    assert {(m["name"], m["line"]) for m in errors} == {(t["Name"], "oops") for t in tasks}


def test_tail_keeps_the_last_line_of_each_task(swarm: Swarm) -> None:
    result = swarm.cli("service", "logs", "--tail", "1", "talk")
    lines = parsed(result.stdout)
    assert sorted(m["name"] for m in lines) == ["talk.1", "talk.2"]
    assert all(m["line"].startswith("tick ") for m in lines)
    assert result.stderr == ""  # the one stderr line is not among the last


def test_timestamps_and_context_options(swarm: Swarm) -> None:
    stamped = parsed(swarm.cli("service", "logs", "-t", "--tail", "2", "talk").stdout)
    assert len(stamped) == 4
    assert all(TIMESTAMP.match(m["line"]) for m in stamped)

    full = parsed(swarm.cli("service", "logs", "--no-trunc", "--tail", "1", "talk").stdout)
    short = {t["Name"]: t["ID"] for t in swarm.running("talk")}
    assert all(len(m["id"]) == 25 and m["id"].startswith(short[m["name"]]) for m in full)

    bare = parsed(swarm.cli("service", "logs", "--no-task-ids", "--tail", "1", "talk").stdout)
    assert all(m["id"] is None for m in bare)

    raw = swarm.cli("service", "logs", "--raw", "--tail", "1", "talk").stdout.splitlines()
    assert len(raw) == 2 and all(line.startswith("tick ") for line in raw)


def test_since_leaves_out_older_lines(swarm: Swarm) -> None:
    everything = swarm.cli("service", "logs", "talk").stdout
    recent = swarm.cli("service", "logs", "--since", "1s", "talk").stdout
    assert "hello from" in everything
    assert "hello from" not in recent  # said once, at the start, more than 1 s ago
    bad = swarm.cli("service", "logs", "--since", "yesterday", "talk", check=False)
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines() == [
        'Error: invalid value "yesterday" for --since: use a timestamp, a date or a duration (10m)'
    ]


def test_one_task_by_id(swarm: Swarm) -> None:
    task = swarm.running("talk")[0]
    result = logs_with(swarm, task["ID"], until="hello from")
    assert {m["name"] for m in parsed(result.stdout)} == {task["Name"]}


def test_unknown_service_is_not_found_in_one_line(swarm: Swarm) -> None:
    result = swarm.cli("service", "logs", "nope", check=False)
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "Error response from daemon: no such task or service: nope"
    ]


TICK = re.compile(r"\| tick (\d+)$")


def test_follow_streams_new_lines_and_new_tasks(swarm: Swarm) -> None:
    def last_tick(output: str) -> int:
        return max(int(m["line"].split()[1]) for m in parsed(output) if "tick" in m["line"])

    before = last_tick(swarm.cli("service", "logs", "talk").stdout)
    follower = Follower.start(swarm, "talk")
    try:
        # A line printed after the command started.
        def ticks_seen() -> list[int]:
            return [int(m) for line in follower.out for m in TICK.findall(line)]

        wait_for(
            lambda: any(n > before + 2 for n in ticks_seen()),
            timeout=60,
            what="a new tick in the followed logs",
        )
        assert follower.process.poll() is None  # still following
        swarm.cli("service", "scale", "-d", "talk=3")
        wait_for(
            lambda: any(line.startswith("talk.3.") for line in follower.out),
            timeout=60,
            what="the new replica's lines",
        )
        assert any(line.startswith("talk.3.") and "| oops" in line for line in follower.err), (
            follower.err
        )
    finally:
        code = follower.stop()
    assert code == 130  # Ctrl-C, as docker
    # The manager forgot the subscription once its caller went away.
    wait_for(lambda: swarm.subscriptions() == 0, timeout=30, what="the subscription removed")
    swarm.cli("service", "scale", "-d", "talk=2")


def test_another_manager_gets_the_logs_through_etcd(swarm: Swarm) -> None:
    second = swarm.root / "second"
    second.mkdir()
    port = free_port_pair()
    token = swarm.cli("join-token", "-q", "manager").stdout.strip()
    manager = start_manager(second, swarm.etcd, port, manager_token=token)
    swarm.managers.append(manager)
    try:
        wait_for(
            lambda: swarm.cli("node", "ls", port=port, check=False).returncode == 0,
            timeout=60,
            what="the second manager to answer",
        )
        result = logs_with(swarm, "talk", until="hello from", port=port)
        names = {m["name"] for m in parsed(result.stdout)}
        assert {"talk.1", "talk.2"} <= names
        # Every agent is in session with the first manager, not the one asked.
        for node in swarm.nodes:
            sessions = (node.root / "agent.log").read_text()
            assert f"in session with 127.0.0.1:{swarm.port}" in sessions
            assert f"in session with 127.0.0.1:{port}" not in sessions
    finally:
        stop_process(manager)
        swarm.managers.remove(manager)


def test_a_down_node_is_a_warning_not_a_hang(swarm: Swarm) -> None:
    """Last: it stops an agent for good."""
    gone = swarm.nodes[1]
    gone_name = f"node-{gone.tag}"
    gone.kill(signal.SIGTERM)
    wait_for(
        lambda: swarm.node_is(gone, "Down"),
        timeout=60,
        what=f"{gone_name} down",
    )
    result = swarm.cli("service", "logs", "talk")
    assert f"warning: incomplete log stream: node {gone_name} is not available" in result.stderr
    nodes = {m["node"] for m in parsed(result.stdout)}
    assert nodes == {f"node-{swarm.nodes[0].tag}"}
