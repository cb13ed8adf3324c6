"""One VM: its QEMU process, started inside the lab's namespace on its tap.

The kernel and initrd come from the cached image, given to QEMU directly, with the
VM's name, address and MAC on the kernel command line (the guest's pyswarm-lab-net
reads them); its disk is a qcow2 overlay on the image, so VMs share the image's bytes
and the image is never written. QEMU keeps the command line across a guest's own
reboot; the lab's reboot is a clean power-off and a fresh start (lab.py).
Power off is QMP `quit` (the plug pulled), then SIGKILL if QEMU lingers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from pyswarm.lab.errors import LabError
from pyswarm.lab.vms.network import VmNetwork
from pyswarm.lab.vms.qmp import monitor_command
from pyswarm.lab.vms.state import VmLabState, VmRecord

GUEST_AGENT_PORT = "org.qemu.guest_agent.0"


def create_overlay(image: Path, overlay: Path) -> None:
    overlay.parent.mkdir(parents=True, exist_ok=True)
    overlay.unlink(missing_ok=True)
    result = subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image), str(overlay)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise LabError(f"qemu-img create {overlay}: {result.stderr.strip()}")


def qemu_argv(state: VmLabState, vm: VmRecord) -> list[str]:
    accel = ["-accel", "kvm", "-cpu", "host"] if state.accelerator == "kvm" else [
        "-accel", "tcg,thread=multi", "-cpu", "max"]  # fmt: skip
    cmdline = " ".join([
        "root=/dev/vda", "rw", "console=ttyS0", "quiet", "mitigations=off",
        f"systemd.hostname={vm.name}", f"pyswarm.addr={vm.address}", f"pyswarm.mac={vm.mac}",
    ])  # fmt: skip
    qga = vm.guest_agent_socket(state.name)
    return [
        "qemu-system-x86_64", "-name", vm.name, "-nodefaults", "-no-user-config",
        *accel, "-smp", str(vm.cpus), "-m", str(vm.memory_mib),
        "-display", "none", "-vga", "none", "-serial", f"file:{vm.console_log(state.name)}",
        "-kernel", state.kernel, "-initrd", state.initrd, "-append", cmdline,
        "-drive", f"file={vm.disk},if=virtio,format=qcow2,cache=unsafe,discard=unmap",
        "-netdev", f"tap,id=net0,ifname={vm.tap},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=net0,mac={vm.mac}",
        "-device", "virtio-rng-pci",  # entropy at boot: Python's start-up waits for it
        "-device", "virtio-serial-pci",
        "-chardev", f"socket,id=qga0,path={qga},server=on,wait=off",
        "-device", f"virtserialport,chardev=qga0,name={GUEST_AGENT_PORT}",
        "-qmp", f"unix:{vm.monitor_socket(state.name)},server=on,wait=off",
    ]  # fmt: skip


def start(state: VmLabState, vm: VmRecord, network: VmNetwork) -> int:
    """Start the VM's QEMU, daemonized (its own session, nobody's child: a power-off
    from another process leaves no zombie behind); its pid."""
    run_dir = vm.run_dir(state.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    pidfile = run_dir / "qemu.pid"
    for stale in (vm.guest_agent_socket(state.name), vm.monitor_socket(state.name), pidfile):
        stale.unlink(missing_ok=True)
    log = vm.console_log(state.name).with_suffix(".qemu.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [*qemu_argv(state, vm), "-daemonize", "-pidfile", str(pidfile)]
    with open(log, "ab") as out:
        # The parent returns once the VM is set up (its errors before that are in the log).
        started = subprocess.run(network.exec_args(*argv), stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, timeout=120, check=False)  # fmt: skip
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        pid = 0
    if started.returncode != 0 or not running(pid):
        raise LabError(f"QEMU for {vm.name} did not start ({started.returncode}): {_tail(log)}")
    return pid


def running(pid: int) -> bool:
    """Whether pid is a live process (a zombie is not: it only waits to be reaped)."""
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def stop(state: VmLabState, vm: VmRecord, timeout: float = 10.0) -> None:
    """Power the VM off at once (no guest shutdown), and wait for QEMU to be gone."""
    if not running(vm.pid):
        return
    with contextlib.suppress(LabError, TimeoutError, OSError):
        monitor_command(vm.monitor_socket(state.name), "quit", timeout=timeout)
    deadline = time.monotonic() + timeout
    while running(vm.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if running(vm.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(vm.pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while running(vm.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    if running(vm.pid):
        raise LabError(f"QEMU for {vm.name} (pid {vm.pid}) did not end")


def _tail(log: Path) -> str:
    try:
        return " ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
    except OSError:
        return ""
