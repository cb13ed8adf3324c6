"""The `lab` commands for a VM lab (`lab up --vms N`): cli/lab.py hands over to these
when the lab it is asked about is one of VMs."""

from __future__ import annotations

import sys
from collections.abc import Callable

from pyswarm.cli.parse import CliInputError

# Software-emulated VMs on a busy host stall for seconds at a time: at the netns lab's
# 1 s, nodes miss their deadline (3 periods) and flap DOWN. 5 s is init's own default.
HEARTBEAT = "5s"


def up(vms: int, name: str, subnet: str | None, heartbeat: str, say: Callable[[str], None]) -> None:
    from pyswarm.common.context import Context, save_context
    from pyswarm.lab.vms.lab import DEFAULT_SUBNET, VmLab

    lab = VmLab(name, subnet or DEFAULT_SUBNET)
    was_up = VmLab.is_up(name)
    try:
        state = lab.up(vms, heartbeat=heartbeat, progress=say)
    except BaseException as err:
        if not was_up and VmLab.is_up(name):  # this `up` made something: remove it
            why = str(err) or type(err).__name__
            say(f"bringing the VM lab up failed ({why}); removing what was made")
            lab.down(progress=say)
        raise
    save_context(Context(f"lab-{name}", state.manager_addr, state.cert_dir))
    say(f"up: {vms} VMs, manager at {state.manager_addr}; context lab-{name} is current")
    for vm in state.vms:
        print(f"{vm.name}\t{vm.address.split('/')[0]}\tVM (qemu pid {vm.pid})")


def down(name: str, say: Callable[[str], None]) -> None:
    from pyswarm.lab.vms.lab import VmLab

    VmLab(name).down(progress=say)  # names alone find what it made: the subnet is moot


def status(name: str) -> None:
    from pyswarm.cli.output import print_table
    from pyswarm.lab.vms.lab import VmLab
    from pyswarm.lab.vms.provision import guest

    lab = VmLab(name)
    state = lab.state()
    rows = []
    for vm in state.vms:
        qemu, agent = ("running", "?") if lab.running(vm) else ("off", "-")
        if qemu == "running":
            result = guest(state, vm).run(["systemctl", "is-active", "pyswarm-agent"], timeout=60)
            agent = result.stdout.decode().strip() or "unknown"
        rows.append([vm.name, vm.address.split("/")[0], qemu, agent, state.accelerator])
    print(f"manager {state.manager_addr} (VM lab, namespace {state.netns})")
    print_table(["NODE", "ADDRESS", "VM", "AGENT", "ACCEL"], rows)


def exec_(name: str, node: str, command: list[str]) -> int:
    """Run command in the VM to its end; its output, and its exit code to return."""
    from pyswarm.lab.vms.lab import VmLab

    if not command:
        raise CliInputError("lab exec needs a command after the node", field="COMMAND")
    result = VmLab(name).exec(node, command)
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(result.stderr)
    return result.exit_code
