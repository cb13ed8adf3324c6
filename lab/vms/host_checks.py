"""What the host must offer before a VM lab starts: the tools, the memory, and which
accelerator boots Debian's kernels. Each refusal is one line and comes before anything
is made."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pyswarm.lab.errors import LabError

# binary -> the Debian package that has it
TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "debootstrap": "debootstrap",
    "mkfs.ext4": "e2fsprogs",
    "e2fsck": "e2fsprogs",
}
HOST_RESERVE_MIB = 1024  # left to this host itself (its own lab tools, page cache)
ACCEL_ENV = "PYSWARM_LAB_ACCEL"  # kvm | tcg: overrides the choice below


def check_tools() -> None:
    for binary, package in TOOLS.items():
        if shutil.which(binary) is None:
            raise LabError(
                f"{binary} is not installed: the VM lab needs the Debian package {package}"
                f" (apt-get install {package})"
            )


def available_mib(meminfo: Path = Path("/proc/meminfo")) -> int:
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    raise LabError(f"no MemAvailable in {meminfo}")


def check_memory(memory_per_vm: list[int], meminfo: Path = Path("/proc/meminfo")) -> None:
    need = sum(memory_per_vm) + HOST_RESERVE_MIB
    have = available_mib(meminfo)
    if need > have:
        raise LabError(
            f"not enough memory for {len(memory_per_vm)} VMs: they need {need} MiB"
            f" ({sum(memory_per_vm)} for the VMs, {HOST_RESERVE_MIB} for this host),"
            f" {have} MiB is available"
        )


def choose_accelerator() -> tuple[str, str]:
    """("kvm" | "tcg", one line saying why)."""
    forced = os.environ.get(ACCEL_ENV, "")
    if forced in ("kvm", "tcg"):
        return forced, f"{forced.upper()}, as ${ACCEL_ENV} says"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "TCG (software emulation): this host has no usable /dev/kvm"
    if Path("/sys/module/kvm_pvm").exists():
        return "tcg", (
            "TCG (software emulation): this host's KVM is paravirtual (kvm_pvm),"
            " which does not boot Debian's kernels"
        )
    return "kvm", "KVM"
