"""`lab up --vms N` and the rest for a VM lab: checks, image, network, VMs, cluster;
and the drills the tests run on it (power a VM off and on, reboot it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

from pyswarm.lab.errors import LabError
from pyswarm.lab.state import LAB_ROOT, RUN_ROOT, LabState
from pyswarm.lab.vms import qemu
from pyswarm.lab.vms.guest_agent import ExecResult, GuestAgent
from pyswarm.lab.vms.host_checks import check_memory, check_tools, choose_accelerator
from pyswarm.lab.vms.image import VmImage
from pyswarm.lab.vms.network import VmNetwork
from pyswarm.lab.vms.provision import BOOT_TIMEOUT, guest, provision
from pyswarm.lab.vms.state import VmLabState, VmRecord
from pyswarm.lab.vms.wheels import checkout_root

DEFAULT_SUBNET = "10.232.0.0/24"  # beside the netns lab's 10.231.0.0/24
MANAGER_VM_MIB = 1536  # etcd, the manager and an agent
MANAGER_VM_CPUS = 2  # so etcd and the manager's lease keep-alive are not starved
VM_MIB = 1024

Progress = Callable[[str], None]


def memory_plan(vms: int) -> list[int]:
    return [MANAGER_VM_MIB] + [VM_MIB] * (vms - 1)


class VmLab:
    def __init__(self, name: str = "pslab", subnet: str = DEFAULT_SUBNET) -> None:
        self.name = name
        self.network = VmNetwork(name, subnet)
        self.root = LAB_ROOT / name
        self.run_dir = RUN_ROOT / name

    @staticmethod
    def is_up(name: str) -> bool:
        return VmLabState.load(name) is not None

    def up(self, vms: int, *, heartbeat: str = "5s", progress: Progress) -> VmLabState:
        """Everything is checked before anything is made; a failure after that leaves
        what was made recorded, for `down` to remove."""
        if vms < 1:
            raise LabError("--vms: a VM lab needs at least one VM")
        check_tools()
        check_memory(memory_plan(vms))
        if VmLabState.load(self.name) is not None or LabState.load(self.name) is not None:
            raise LabError(f"lab {self.name!r} is already up: run `pyswarm lab down` first")
        if self.network.exists():
            raise LabError(f"namespace {self.network.netns} exists: run `pyswarm lab down` first")
        self.network.address(vms)  # the subnet has room for them all
        checkout = checkout_root()
        accelerator, why = choose_accelerator()

        image = VmImage()
        disk = image.ensure(checkout, progress)
        progress(f"accelerator: {why}")
        state = VmLabState(
            name=self.name, subnet=str(self.network.network), netns=self.network.netns,
            uplink=self.network.uplink, accelerator=accelerator, kernel=str(image.kernel),
            initrd=str(image.initrd), heartbeat=heartbeat,
        )  # fmt: skip
        state.save()
        self.network.create()
        progress(f"booting {vms} VMs on bridge {state.netns}/br0 ({self.network.network})")
        for index, memory in enumerate(memory_plan(vms), start=1):
            vm = VmRecord(
                name=f"node-{index}", address=self.network.address(index),
                mac=self.network.mac(index), tap=self.network.create_tap(index),
                disk=str(self.root / f"node-{index}.qcow2"), memory_mib=memory,
                cpus=MANAGER_VM_CPUS if index == 1 else 1,
            )  # fmt: skip
            qemu.create_overlay(disk, Path(vm.disk))
            state.vms.append(vm)
            vm.pid = qemu.start(state, vm, self.network)
            state.save()
        provision(state, self.root / "client", progress)
        state.save()
        return state

    def down(self, progress: Progress) -> None:
        state = VmLabState.load(self.name)
        if state is not None:
            for vm in state.vms:
                progress(f"powering off {vm.name}")
                qemu.stop(state, vm)
        self._kill_strays()
        progress(
            f"removing namespace {self.network.netns} (bridge, taps) and {self.network.uplink}"
        )
        self.network.destroy()
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # LAB_ROOT keeps the image cache
            RUN_ROOT.rmdir()

    def _kill_strays(self) -> None:
        """QEMUs of this lab that no record names (a crash between start and save)."""
        mark = f"{self.run_dir}/".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if mark in (proc / "cmdline").read_bytes():
                    os.kill(int(proc.name), signal.SIGKILL)

    def leftovers(self) -> list[str]:
        found = self.network.leftovers()
        found += [f"dir {d}" for d in (self.root, self.run_dir) if d.exists()]
        mark = f"{self.run_dir}/".encode()
        for proc in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                if proc.name.isdigit() and mark in (proc / "cmdline").read_bytes():
                    found.append(f"process {proc.name}")
        return found

    # -- one VM

    def state(self) -> VmLabState:
        state = VmLabState.load(self.name)
        if state is None:
            raise LabError(f"VM lab {self.name!r} is not up")
        return state

    def vm(self, node: str) -> tuple[VmLabState, VmRecord]:
        state = self.state()
        record = state.vm(node)
        if record is None:
            raise LabError(f"no VM {node!r} in lab {self.name!r}")
        return state, record

    def guest(self, node: str) -> GuestAgent:
        return guest(*self.vm(node))

    def exec(self, node: str, argv: list[str], timeout: float = 600.0) -> ExecResult:
        return self.guest(node).run(argv, timeout=timeout)

    def power_off(self, node: str) -> None:
        state, vm = self.vm(node)
        qemu.stop(state, vm)
        vm.pid = 0
        state.save()

    def power_on(self, node: str) -> None:
        state, vm = self.vm(node)
        if qemu.running(vm.pid):
            raise LabError(f"{vm.name} is running already")
        vm.pid = qemu.start(state, vm, self.network)
        state.save()
        guest(state, vm).wait(BOOT_TIMEOUT)

    def reboot(self, node: str) -> None:
        """A clean reboot: the guest shuts down in order (`systemctl poweroff`: units
        stopped, disks synced), then the lab starts its QEMU again, so it boots cold.
        Measured under TCG, a warm reset (the guest's own `systemctl reboot`, or QMP
        system_reset) came back in 58-72 s, its kernel's part 29-42 s, where a cold boot
        takes 33 s with 7 s in the kernel. Returns once the guest agent answers on a new
        boot id."""
        state, vm = self.vm(node)
        agent = guest(state, vm)
        boot_id = agent.read_file("/proc/sys/kernel/random/boot_id")
        # Not qemu-ga's guest-shutdown: it schedules through logind, which a minimal
        # system has no D-Bus for. The poweroff's output never comes back: only started.
        agent.call("guest-exec", {"path": "systemctl", "arg": ["poweroff"]})
        deadline = time.monotonic() + BOOT_TIMEOUT
        while qemu.running(vm.pid):  # QEMU ends with the guest's power-off
            if time.monotonic() > deadline:
                raise LabError(f"{vm.name} did not shut down for its reboot")
            time.sleep(0.2)  # polling a VM that shuts down: the condition decides
        self.power_on(node)
        if agent.read_file("/proc/sys/kernel/random/boot_id") == boot_id:
            raise LabError(f"{vm.name} came back with the boot id it had before its reboot")

    def running(self, vm: VmRecord) -> bool:
        return qemu.running(vm.pid)
