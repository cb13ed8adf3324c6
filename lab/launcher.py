"""Bring a lab up and down: hosts, then the manager on node-1, then one agent per host.

With `--managers N` (HA managers) node-1..N join as manager nodes: the agents of
node-2..N each start their node's manager, whose etcd member joins node-1's etcd.

Every process runs inside its host's network namespace (`ip netns exec`), in its own
session so `lab down` can end it with everything it started, and writes its log
under the lab's directory. Nothing here is shared between hosts but the bridge.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from pyswarm.cli.join_token_input import JOIN_TOKEN_ENV
from pyswarm.lab.errors import LabError
from pyswarm.lab.hosts import LabHost, LabNetwork
from pyswarm.lab.registry import DEFAULT_PORT as REGISTRY_PORT
from pyswarm.lab.registry import RegistryServer
from pyswarm.lab.state import LAB_ROOT, RUN_ROOT, LabState, NodeRecord

if TYPE_CHECKING:
    from pyswarm.proto import control_pb2

MANAGER_PORT = 4242
JOIN_PORT = 4243
METRICS_PORT = 9323
AGENT_METRICS_PORT = 9324
STARTUP_TIMEOUT = 60.0


def _wait(condition: Callable[[], bool], what: str, timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise LabError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling a process we started; the condition decides


def _spawn(host: LabHost, argv: list[str], log: Path, *, env: dict[str, str] | None = None) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            host.exec_args(*argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    return process.pid


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True


def _stop_group(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM the process group `pid` leads, then SIGKILL what is left."""
    if pid <= 0:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not process_alive(pid):
            return


def _agent_answers(node: NodeRecord) -> bool:
    result = subprocess.run(
        pyswarm_argv("--socket", node.agent_socket, "ps", "-q"),
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def _insecure(state: LabState) -> list[str]:
    return ["--insecure-registry", state.registry_addr] if state.registry_addr else []


def pyswarm_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "pyswarm.cli.main", *args]


class Lab:
    def __init__(self, name: str = "pslab", subnet: str = "10.231.0.0/24") -> None:
        self.name = name
        self.network = LabNetwork(name, subnet)
        self.root = LAB_ROOT / name
        self.run_dir = RUN_ROOT / name

    def _manager_argv(self, host: LabHost, manager_dir: Path, state: LabState) -> list[str]:
        return pyswarm_argv(
            "init", "--state-dir", str(manager_dir), "--advertise-addr", host.address,
            "--listen-addr", f"{host.address}:{MANAGER_PORT}",
            "--join-addr", f"{host.address}:{JOIN_PORT}",
            "--metrics-addr", f"{host.address}:{METRICS_PORT}",
            "--heartbeat-period", state.heartbeat, "--no-context", *_insecure(state),
        )  # fmt: skip

    def _start_registry(self, state: LabState) -> None:
        """The lab's registry in a host of its own; every lab host reaches it over plain
        http (agents and the manager get it as an insecure registry)."""
        host = self.network.create_registry_host()
        server = RegistryServer(self.root / "registry", f"{host.address}:{REGISTRY_PORT}")

        def launch(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
            with open(log, "ab") as out:
                return subprocess.Popen(
                    host.exec_args(*argv), stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip

        state.registry_pid = server.start(launch).pid
        state.registry_addr = server.address
        state.save()

    def up(
        self,
        nodes: int,
        *,
        managers: int = 1,
        heartbeat: str = "1s",
        registry: bool = False,
        progress: Callable[[str], None],
    ) -> LabState:
        if nodes < 1:
            raise LabError("a lab needs at least one node")
        if not 1 <= managers <= nodes:
            raise LabError(f"--managers {managers}: from 1 to the number of nodes ({nodes})")
        if LabState.load(self.name) is not None:
            raise LabError(f"lab {self.name!r} is already up: run `pyswarm lab down` first")
        state = LabState(name=self.name, subnet=str(self.network.network))
        state.save()
        progress(f"creating {nodes} hosts on bridge {self.network.bridge}")
        self.network.create_bridge()
        if registry:
            progress(f"starting the lab registry on port {REGISTRY_PORT}")
            self._start_registry(state)
        hosts = [self.network.create_host(i) for i in range(1, nodes + 1)]
        first = hosts[0]
        manager_dir = self.root / "node-1" / "manager"
        state.manager_state_dir = str(manager_dir)
        state.manager_addr = f"{first.address}:{MANAGER_PORT}"
        progress(f"starting etcd and the manager on {first.name} ({first.address})")
        state.heartbeat = heartbeat
        state.manager_pid = _spawn(
            first, self._manager_argv(first, manager_dir, state), self.root / "manager.log"
        )
        state.save()
        endpoint = manager_dir / "manager.json"
        _wait(lambda: endpoint.exists() or not process_alive(state.manager_pid), "the manager")
        if not process_alive(state.manager_pid):
            raise LabError(f"the manager exited: see {self.root / 'manager.log'}")
        tokens = self.join_tokens(manager_dir)
        state.managers = [state.manager_addr]
        for index, host in enumerate(hosts):
            # node-1..N are manager nodes: each agent runs its node's manager (node-1's
            # is the one started above) and etcd member; with one manager, node-1's
            # agent is a worker beside it, as it always was.
            manager = managers > 1 and index < managers
            role = "manager" if manager else "worker"
            progress(f"joining {host.name} ({host.address}) as a {role}")
            token = tokens.manager if manager else tokens.worker
            state.nodes.append(self._start_agent(host, token, first.address, state))
            if manager and index > 0:
                state.managers.append(f"{host.address}:{MANAGER_PORT}")
            state.save()
        for host in hosts[1:managers]:
            endpoint = self.root / host.name / "manager" / "manager.json"
            _wait(endpoint.exists, f"the manager of {host.name}", timeout=2 * STARTUP_TIMEOUT)
        _wait(lambda: self.ready_nodes(state) >= nodes, f"{nodes} nodes to be ready")
        for node in state.nodes:
            # An agent registers with the manager before it serves its local API.
            _wait(partial(_agent_answers, node), f"the agent of {node.name} to answer")
        return state

    def _start_agent(
        self, host: LabHost, token: str, manager_host: str, state: LabState
    ) -> NodeRecord:
        state_dir = self.root / host.name / "agent"
        run = self.run_dir / host.name
        run.mkdir(parents=True, exist_ok=True)
        flags = [
            "--state-dir", str(state_dir), "--socket", str(run / "agent.sock"),
            "--cgroup-parent", f"pyswarm-lab-{self.name}/{host.name}",
            "--netns-dir", str(run / "netns"), *_insecure(state),
            "--manager-state-dir", str(self.root / host.name / "manager"),
        ]  # fmt: skip
        pid = _spawn(
            host,
            pyswarm_argv(
                "join", "--advertise-addr", host.address,
                "--metrics-addr", f"{host.address}:{AGENT_METRICS_PORT}",
                "--hostname", host.name, *flags,
                f"{manager_host}:{JOIN_PORT}",
            ),
            self.root / f"{host.name}.log",
            # In the environment (readable by root alone), never in the arguments.
            env={**os.environ, JOIN_TOKEN_ENV: token},
        )  # fmt: skip
        return NodeRecord(
            name=host.name, netns=host.netns, address=host.address, state_dir=str(state_dir),
            agent_socket=str(run / "agent.sock"), agent_pid=pid, agent_flags=flags,
        )  # fmt: skip

    @staticmethod
    def client_cert_dir(manager_dir: Path) -> Path:
        info = json.loads((manager_dir / "manager.json").read_text())
        return Path(info.get("client_cert_dir", str(manager_dir / "client")))

    def worker_token(self, manager_dir: Path) -> str:
        return str(self.join_tokens(manager_dir).worker)

    def join_tokens(self, manager_dir: Path) -> control_pb2.JoinTokens:
        from pyswarm.common.context import Context, set_host
        from pyswarm.common.manager_client import control_for
        from pyswarm.proto import control_pb2

        set_host(None)
        info = json.loads((manager_dir / "manager.json").read_text())
        address = f"{info['advertise_addr'].split(':')[0]}:{MANAGER_PORT}"
        stub = control_for(Context("lab", address, str(self.client_cert_dir(manager_dir))))
        return stub.GetJoinTokens(control_pb2.GetJoinTokensRequest())

    def ready_nodes(self, state: LabState) -> int:
        from pyswarm.common.context import Context
        from pyswarm.common.manager_client import control_for
        from pyswarm.proto import control_pb2, types_pb2

        try:
            stub = control_for(
                Context(
                    "lab",
                    state.manager_addr,
                    str(self.client_cert_dir(Path(state.manager_state_dir))),
                    managers=list(state.managers),
                )
            )
            nodes = stub.ListNodes(control_pb2.ListNodesRequest(), timeout=5).nodes
        except Exception:
            return 0
        return sum(1 for n in nodes if n.status.state == types_pb2.NodeStatus.READY)

    def down(self, progress: Callable[[str], None]) -> None:
        state = LabState.load(self.name)
        if state is not None:
            for node in state.nodes:
                progress(f"stopping the agent on {node.name}")
                _stop_group(node.agent_pid)
                host = LabHost(node.name, node.netns, node.address, 0)
                subprocess.run(
                    host.exec_args(*pyswarm_argv("agent", *node.agent_flags, "--teardown")),
                    capture_output=True,
                    check=False,
                    timeout=120,
                )
            progress("stopping the manager and etcd")
            _stop_group(state.manager_pid)
            for node in state.nodes:  # managers an agent ran, if they outlived it
                pid_file = self.root / node.name / "manager" / "agent-manager.pid"
                with contextlib.suppress(OSError, ValueError):
                    _stop_group(int(pid_file.read_text().split()[0]))
            if state.registry_pid:
                progress("stopping the registry")
                _stop_group(state.registry_pid)
        progress("removing hosts and bridge")
        self.network.destroy()
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        for parent in (LAB_ROOT, RUN_ROOT):  # the last lab down leaves no empty parents
            with contextlib.suppress(OSError):
                parent.rmdir()

    # -- failure drills: stop and start one process of a running lab

    def _state(self) -> LabState:
        state = LabState.load(self.name)
        if state is None:
            raise LabError(f"lab {self.name!r} is not up")
        return state

    def _node(self, state: LabState, node: str) -> NodeRecord:
        for record in state.nodes:
            if node in (record.name, record.address, record.netns):
                return record
        raise LabError(f"no node {node!r} in lab {self.name!r}")

    def stop_agent(self, node: str, sig: int = signal.SIGKILL) -> None:
        """Stop a node's agent (its containers keep running: they belong to the
        supervisor, which is in a session of its own)."""
        state = self._state()
        record = self._node(state, node)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.agent_pid, sig)
        _wait(lambda: not process_alive(record.agent_pid), f"the agent on {record.name} to stop")

    def start_agent(self, node: str) -> None:
        """Start a node's agent again; its saved cluster state makes it rejoin as itself."""
        state = self._state()
        record = self._node(state, node)
        host = LabHost(record.name, record.netns, record.address, 0)
        record.agent_pid = _spawn(
            host,
            pyswarm_argv(
                "agent", *record.agent_flags,
                "--metrics-addr", f"{record.address}:{AGENT_METRICS_PORT}",
            ),
            self.root / f"{record.name}.log",
        )  # fmt: skip
        state.save()

    def stop_manager(self, sig: int = signal.SIGTERM) -> None:
        state = self._state()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(state.manager_pid, sig)
        _wait(lambda: not process_alive(state.manager_pid), "the manager to stop")

    def start_manager(self) -> None:
        state = self._state()
        first = self.network.host(1)
        manager_dir = Path(state.manager_state_dir)
        state.manager_pid = _spawn(
            first,
            self._manager_argv(first, manager_dir, state),
            self.root / "manager.log",
        )
        state.save()

    def import_busybox(self, node: NodeRecord) -> None:
        """Give a host's agent the busybox image (no registry needed)."""
        result = subprocess.run(
            pyswarm_argv("--socket", node.agent_socket, "image", "busybox", "busybox:latest"),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise LabError(f"busybox image on {node.name}: {result.stderr.strip()}")

    def host(self, node: str) -> LabHost:
        state = LabState.load(self.name)
        if state is None:
            raise LabError(f"lab {self.name!r} is not up")
        for record in state.nodes:
            if node in (record.name, record.address, record.netns):
                return LabHost(record.name, record.netns, record.address, 0)
        raise LabError(f"no node {node!r} in lab {self.name!r}")
