"""`pyswarm lab up|down|status|exec`: a multi-host cluster on one machine."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="A multi-host lab on this machine.", no_args_is_help=True)

NameOption = Annotated[str, typer.Option("--name", help="Lab name (<= 10 chars)")]


def _say(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr, flush=True)


@app.command("up")
def up(
    nodes: Annotated[int, typer.Option("--nodes", "-n", help="How many hosts")] = 3,
    managers: Annotated[
        int, typer.Option("--managers", "-m", help="How many hosts run a manager (node-1..)")
    ] = 1,
    name: NameOption = "pslab",
    subnet: Annotated[
        str | None, typer.Option(help="The lab's host subnet [10.231.0.0/24; VMs 10.232.0.0/24]")
    ] = None,
    heartbeat_period: Annotated[
        str | None, typer.Option(help="Agent heartbeat [1s; VMs 5s]")
    ] = None,
    image: Annotated[bool, typer.Option(help="Give every host the busybox image")] = True,
    registry: Annotated[
        bool, typer.Option(help="Run an image registry every lab host reaches (plain http)")
    ] = False,
    monitoring: Annotated[
        bool, typer.Option(help="Run Prometheus (deploy/prometheus.yml) on the first host")
    ] = False,
    vms: Annotated[
        int, typer.Option("--vms", help="Hosts are N QEMU VMs installed by deploy/ instead")
    ] = 0,
) -> None:
    """Create N hosts (network namespaces on one bridge), etcd and a manager on the first
    (on the first M with --managers M), and an agent on each; make the lab the current
    context. With --vms N, the hosts are Debian VMs running pyswarm under systemd."""
    from pyswarm.common.context import Context, save_context
    from pyswarm.lab.launcher import Lab

    if vms:
        from pyswarm.cli import lab_vms

        lab_vms.up(vms, name, subnet, heartbeat_period or lab_vms.HEARTBEAT, _say)
        return
    lab = Lab(name, subnet or "10.231.0.0/24")
    try:
        state = lab.up(
            nodes,
            managers=managers,
            heartbeat=heartbeat_period or "1s",
            registry=registry,
            monitoring=monitoring,
            progress=_say,
        )
        if image:
            for node in state.nodes:
                lab.import_busybox(node)
    except BaseException:
        _say("bringing the lab up failed; removing what was made")
        lab.down(progress=_say)
        raise
    cert_dir = Lab.client_cert_dir(Path(state.manager_state_dir))
    save_context(Context(f"lab-{name}", state.manager_addr, str(cert_dir), managers=state.managers))
    where = ", ".join(state.managers or [state.manager_addr])
    _say(f"up: {nodes} hosts, managers at {where}; context lab-{name} is current")
    for node in state.nodes:
        print(f"{node.name}\t{node.address}\tagent socket {node.agent_socket}")
    if state.registry_addr:
        print(f"registry\t{state.registry_addr}\tpush to {state.registry_addr}/NAME:TAG")
    if state.prometheus_addr:
        print(f"prometheus\t{state.prometheus_addr}\thttp://{state.prometheus_addr}")


@app.command("down")
def down(name: NameOption = "pslab") -> None:
    """Remove everything the lab made: processes, containers, hosts, bridge, state."""
    from pyswarm.common.context import remove_context
    from pyswarm.lab.launcher import Lab
    from pyswarm.lab.vms.state import VmLabState

    if VmLabState.load(name) is not None:
        from pyswarm.cli import lab_vms

        lab_vms.down(name, _say)
    else:
        Lab(name).down(progress=_say)
    remove_context(f"lab-{name}")
    _say("down")


@app.command("status")
def status(name: NameOption = "pslab") -> None:
    """The lab's hosts and whether their processes run."""
    from pyswarm.cli.output import print_table
    from pyswarm.lab.launcher import process_alive
    from pyswarm.lab.state import LabState
    from pyswarm.lab.vms.state import VmLabState

    if VmLabState.load(name) is not None:
        from pyswarm.cli import lab_vms

        lab_vms.status(name)
        return
    state = LabState.load(name)
    if state is None:
        print(f"lab {name} is not up")
        raise typer.Exit(1)

    def running(pid: int) -> str:
        return "running" if process_alive(pid) else "stopped"

    rows = [[n.name, n.address, running(n.agent_pid), n.netns] for n in state.nodes]
    print(f"manager {state.manager_addr}: {running(state.manager_pid)}")
    if state.registry_addr:
        print(f"registry {state.registry_addr}: {running(state.registry_pid)}")
    if state.prometheus_addr:
        print(f"prometheus http://{state.prometheus_addr}: {running(state.prometheus_pid)}")
    print_table(["NODE", "ADDRESS", "AGENT", "NETNS"], rows)


@app.command("exec", context_settings={"allow_interspersed_args": False})
def exec_(
    node: Annotated[str, typer.Argument(help="node-1, or its address")],
    command: Annotated[list[str], typer.Argument(help="-- CMD ARGS...")],
    name: NameOption = "pslab",
) -> None:
    """Run a command on one of the lab's hosts (inside its network namespace; on a VM,
    through its guest agent)."""
    from pyswarm.cli.parse import CliInputError
    from pyswarm.lab.launcher import Lab

    # Options end at the node, so a `--` before the command arrives as its first word.
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise CliInputError("lab exec needs a command after the node", field="COMMAND")
    from pyswarm.lab.vms.state import VmLabState

    if VmLabState.load(name) is not None:
        from pyswarm.cli import lab_vms

        raise typer.Exit(lab_vms.exec_(name, node, command))
    host = Lab(name).host(node)
    argv = host.exec_args(*command)
    os.execvp(argv[0], argv)
