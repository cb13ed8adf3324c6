"""The faults of the fault suite, each done to one process or link of a running lab.

A fault has two halves: `inject` (kill -9 a process, or take a host's lab link down)
and `heal` (what an operator or the host's init would do next: start the process again
with the same arguments, or bring the link back). Processes the lab's agents own heal
themselves: an agent restarts its node's manager when it crashes. Every kill ends the
process's whole session (its children with it), as a crash of that program would.

Which process is which is read from the lab's own records: the lab's state (node-1's
manager, every agent), a node manager's pid file (agent-manager.pid), its etcd's pid
file (etcd.pid), and a supervisor's command line (its --root is under the node's agent
state dir).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyswarm.lab.launcher import Lab, process_alive
from pyswarm.lab.state import LabState, NodeRecord
from pyswarm.proto import types_pb2

SUPERVISOR_MODULE = "pyswarm.agent.runtime.container.supervisor"
#: How long a partitioned host stays cut off: past the liveness lease (3 heartbeats of
#: 1 s), so the managers call it down and act.
PARTITION_S = 5.0
#: How long a manager has to start its killed etcd member again before the suite
#: calls it a failure and restarts the manager (as an operator would).
ETCD_BACK_S = 15.0


def _kill_group(pid: int) -> bool:
    """SIGKILL the session `pid` leads (or the process alone); False when it was gone."""
    if pid <= 0 or not process_alive(pid):
        return False
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True


def _pid_in(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def manager_dir(state: LabState, node: str) -> Path:
    return Path(state.manager_state_dir).parent.parent / node / "manager"


def manager_pid(state: LabState, node: str) -> int:
    """The session leader of `node`'s manager: the lab's own on node-1, an agent's else."""
    if node == "node-1":
        return state.manager_pid
    return _pid_in(manager_dir(state, node) / "agent-manager.pid")


def etcd_pid(state: LabState, node: str) -> int:
    return _pid_in(manager_dir(state, node) / "etcd.pid")


def supervisor_pid(record: NodeRecord) -> int:
    """The container supervisor of a node (found by its --root, under the agent's dir)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [w.decode(errors="replace") for w in argv]
        if SUPERVISOR_MODULE in words and any(w.startswith(record.state_dir) for w in words):
            return int(proc.name)
    return 0


def leader_of(nodes: list[types_pb2.Node]) -> str | None:
    for node in nodes:
        if node.HasField("manager_status") and node.manager_status.leader:
            return node.description.hostname
    return None


@dataclass
class Fault:
    """One fault: what it hits (`target`, a node name) and what it did."""

    kind: str
    target: str = ""
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    killed_pid: int = 0

    def inject(self, lab: Lab, nodes: list[types_pb2.Node]) -> None:
        state = LabState.load(lab.name)
        assert state is not None, "the lab is not up"
        managers = sorted(
            n.description.hostname for n in nodes if n.role == types_pb2.NodeSpec.MANAGER
        )
        leader = leader_of(nodes) or "node-1"
        followers = [m for m in managers if m != leader] or [leader]
        workers = [r.name for r in state.nodes if r.name not in managers]
        last = workers[-1] if workers else state.nodes[-1].name
        if self.kind == "kill-leader":
            self.target = leader
            self._kill(manager_pid(state, leader), "manager")
        elif self.kind == "kill-follower":
            self.target = followers[-1]
            self._kill(manager_pid(state, self.target), "manager")
        elif self.kind == "kill-etcd":
            self.target = followers[0]
            self._kill(etcd_pid(state, self.target), "etcd member")
        elif self.kind == "kill-agent":
            self.target = last
            lab.stop_agent(last, signal.SIGKILL)
            self.notes.append(f"agent of {last} killed")
        elif self.kind == "kill-supervisor":
            self.target = last
            record = next(r for r in state.nodes if r.name == last)
            self._kill(supervisor_pid(record), "supervisor")
        elif self.kind == "partition-agent":
            self.target = last
            self._link(lab, last, "down")
        elif self.kind == "partition-manager":
            self.target = leader
            self._link(lab, leader, "down")
        else:
            raise ValueError(f"unknown fault {self.kind!r}")

    def heal(self, lab: Lab) -> None:
        """Undo what a host would: restart a killed process, bring a link back up."""
        state = LabState.load(lab.name)
        assert state is not None, "the lab is not up"
        if self.kind in ("kill-leader", "kill-follower") and self.target == "node-1":
            lab.start_manager()  # node-1's manager is the lab's; others, their agents'
        elif self.kind == "kill-etcd":
            self._etcd_back(lab, state)
        elif self.kind == "kill-agent":
            lab.start_agent(self.target)
        elif self.kind.startswith("partition-"):
            time.sleep(PARTITION_S)  # the cut lasts past the liveness lease, by design
            self._link(lab, self.target, "up")

    def _etcd_back(self, lab: Lab, state: LabState) -> None:
        """Give the manager ETCD_BACK_S to start its member again; else restart it."""
        deadline = time.monotonic() + ETCD_BACK_S
        while time.monotonic() < deadline:
            pid = etcd_pid(state, self.target)
            if pid != self.killed_pid and process_alive(pid):
                self.notes.append(f"etcd of {self.target} started again (pid {pid})")
                return
            time.sleep(0.2)  # watching for the manager to act
        self.problems.append(f"the manager of {self.target} did not start its killed etcd "
                             f"member again within {ETCD_BACK_S:.0f} s")  # fmt: skip
        self._kill(manager_pid(state, self.target), "manager (restarting it)")
        if self.target == "node-1":
            lab.start_manager()

    def _kill(self, pid: int, what: str) -> None:
        self.killed_pid = pid
        killed = _kill_group(pid)
        self.notes.append(f"{what} of {self.target} (pid {pid}) {'killed' if killed else 'gone'}")

    def _link(self, lab: Lab, node: str, updown: str) -> None:
        index = int(node.rsplit("-", 1)[1])
        link = f"{lab.name}v{index}"  # the host's veth end on the lab bridge
        subprocess.run(["ip", "link", "set", link, updown], check=True, capture_output=True)
        self.notes.append(f"link {link} of {node} {updown}")


FAULTS = (
    "kill-leader",
    "kill-follower",
    "kill-etcd",
    "kill-agent",
    "kill-supervisor",
    "partition-agent",
    "partition-manager",
)
