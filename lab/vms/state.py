"""What a VM lab made, recorded so `lab down` can remove all of it and nothing else."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pyswarm.common.json_files import write_json
from pyswarm.lab.state import LAB_ROOT, RUN_ROOT


@dataclass
class VmRecord:
    name: str  # node-1, also the VM's hostname
    address: str  # on the lab's subnet
    mac: str
    tap: str  # inside the lab's namespace
    disk: str  # this VM's qcow2 overlay on the cached image
    memory_mib: int
    cpus: int = 1
    pid: int = 0  # the QEMU process

    def run_dir(self, lab: str) -> Path:
        return RUN_ROOT / lab / self.name

    def guest_agent_socket(self, lab: str) -> Path:
        return self.run_dir(lab) / "qga.sock"

    def monitor_socket(self, lab: str) -> Path:
        return self.run_dir(lab) / "qmp.sock"

    def console_log(self, lab: str) -> Path:
        return LAB_ROOT / lab / f"{self.name}.console.log"


@dataclass
class VmLabState:
    name: str
    subnet: str
    netns: str
    uplink: str  # the host's end of the veth into the lab's bridge
    accelerator: str  # "kvm" or "tcg"
    kernel: str
    initrd: str
    manager_addr: str = ""
    cert_dir: str = ""  # the CLI's client identity, copied from the manager VM
    heartbeat: str = "5s"
    vms: list[VmRecord] = field(default_factory=list)

    @staticmethod
    def path(name: str) -> Path:
        return LAB_ROOT / name / "vms.json"

    def save(self) -> None:
        path = self.path(self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, asdict(self))

    @classmethod
    def load(cls, name: str) -> VmLabState | None:
        try:
            data = json.loads(cls.path(name).read_text())
        except (OSError, ValueError):
            return None
        vms = [VmRecord(**vm) for vm in data.pop("vms", [])]
        return cls(**data, vms=vms)

    def vm(self, node: str) -> VmRecord | None:
        for record in self.vms:
            if node in (record.name, record.address):
                return record
        return None


def labs_with_vms() -> list[str]:
    """Names of the VM labs that are up (their VMs use the cached image)."""
    return sorted(path.parent.name for path in LAB_ROOT.glob("*/vms.json"))
