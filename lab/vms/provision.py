"""Make the booted VMs a cluster by the deploy path, driven over each guest agent:
`pyswarm-node init` on the first (a manager under systemd, and its own agent joined),
the CLI's client identity copied out of it, then `pyswarm-node join` on the others with
the worker token on stdin, and the busybox image on every VM."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from pyswarm.lab.errors import LabError
from pyswarm.lab.launcher import JOIN_PORT, MANAGER_PORT, METRICS_PORT
from pyswarm.lab.vms.guest_agent import GuestAgent
from pyswarm.lab.vms.state import VmLabState, VmRecord

if TYPE_CHECKING:
    from pyswarm.proto.control_pb2_grpc import ControlStub

BOOT_TIMEOUT = 300.0  # TCG on a busy 2-core host: systemd reaches multi-user in 36-45 s
STEP_TIMEOUT = 600.0
MANAGER_STATE_DIR = "/var/lib/pyswarm-manager"  # as deploy/systemd/pyswarm-manager.service
CLIENT_FILES = ("ca.crt", "node.crt", "node.key")


def ip_of(vm: VmRecord) -> str:
    return vm.address.split("/")[0]


def guest(state: VmLabState, vm: VmRecord) -> GuestAgent:
    return GuestAgent(vm.guest_agent_socket(state.name), vm.name)


def control(state: VmLabState) -> ControlStub:
    from pyswarm.common.context import Context
    from pyswarm.common.manager_client import control_for

    return control_for(Context(f"lab-{state.name}", state.manager_addr, state.cert_dir))


def ready_nodes(state: VmLabState) -> int:
    from pyswarm.proto import control_pb2, types_pb2

    try:
        nodes = control(state).ListNodes(control_pb2.ListNodesRequest(), timeout=10).nodes
    except Exception:  # the manager not answering yet counts as no node ready
        return 0
    return sum(1 for n in nodes if n.status.state == types_pb2.NodeStatus.READY)


def _copy_client_identity(state: VmLabState, manager: GuestAgent, dest: Path) -> None:
    info = json.loads(manager.read_file(f"{MANAGER_STATE_DIR}/manager.json"))
    source = info.get("client_cert_dir", f"{MANAGER_STATE_DIR}/client")
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name in CLIENT_FILES:
        data = manager.read_file(f"{source}/{name}")
        fd = os.open(dest / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    state.cert_dir = str(dest)


def _worker_token(state: VmLabState) -> str:
    from pyswarm.proto import control_pb2

    return str(control(state).GetJoinTokens(control_pb2.GetJoinTokensRequest(), timeout=30).worker)


def _join(state: VmLabState, vm: VmRecord, token: str, manager_ip: str) -> None:
    agent = guest(state, vm)
    agent.wait(BOOT_TIMEOUT)
    agent.check(["pyswarm-node", "join", ip_of(vm), f"{manager_ip}:{JOIN_PORT}",
                 "--hostname", vm.name], stdin=token.encode() + b"\n",
                timeout=STEP_TIMEOUT)  # fmt: skip


def _busybox(state: VmLabState, vm: VmRecord) -> None:
    guest(state, vm).check(["pyswarm", "image", "busybox", "busybox:latest"], timeout=STEP_TIMEOUT)


def provision(state: VmLabState, cert_dir: Path, progress: Callable[[str], None]) -> None:
    first, rest = state.vms[0], state.vms[1:]
    manager_ip = ip_of(first)
    manager = guest(state, first)
    progress(f"waiting for {first.name} to boot")
    manager.wait(BOOT_TIMEOUT)
    progress(f"pyswarm-node init on {first.name} ({manager_ip})")
    manager.check(["pyswarm-node", "init", manager_ip, "--heartbeat-period", state.heartbeat,
                   "--metrics-addr", f"{manager_ip}:{METRICS_PORT}"],
                  timeout=STEP_TIMEOUT)  # fmt: skip
    state.manager_addr = f"{manager_ip}:{MANAGER_PORT}"
    _copy_client_identity(state, manager, cert_dir)
    state.save()
    token = _worker_token(state)
    with ThreadPoolExecutor(max_workers=max(1, len(rest))) as pool:
        if rest:
            progress(f"pyswarm-node join on {', '.join(vm.name for vm in rest)}")
        for future in [pool.submit(_join, state, vm, token, manager_ip) for vm in rest]:
            future.result()
        deadline = time.monotonic() + STEP_TIMEOUT
        while ready_nodes(state) < len(state.vms):
            if time.monotonic() > deadline:
                raise LabError(f"{len(state.vms)} nodes were not ready in time")
            time.sleep(0.5)  # polling the manager we just made; the condition decides
        progress("giving every VM the busybox image")
        for future in [pool.submit(_busybox, state, vm) for vm in state.vms]:
            future.result()
