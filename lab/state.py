"""What a lab made, recorded so `lab down` can remove all of it and nothing else."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pyswarm.common.json_files import write_json

LAB_ROOT = Path("/var/lib/pyswarm-lab")
RUN_ROOT = Path("/run/pyswarm-lab")


@dataclass
class NodeRecord:
    name: str
    netns: str
    address: str
    state_dir: str
    agent_socket: str
    agent_pid: int = 0
    agent_flags: list[str] = field(default_factory=list)


@dataclass
class LabState:
    name: str
    subnet: str
    manager_addr: str = ""
    manager_pid: int = 0
    manager_state_dir: str = ""
    heartbeat: str = "1s"
    registry_addr: str = ""  # HOST:PORT of the lab's registry, when it has one
    registry_pid: int = 0
    prometheus_addr: str = ""  # HOST:PORT of the lab's Prometheus (`lab up --monitoring`)
    prometheus_pid: int = 0
    nodes: list[NodeRecord] = field(default_factory=list)
    #: Every manager's main address (lab up --managers N: node-1..N), the first's first.
    managers: list[str] = field(default_factory=list)

    @staticmethod
    def path(name: str) -> Path:
        return LAB_ROOT / name / "lab.json"

    def save(self) -> None:
        path = self.path(self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, asdict(self))

    @classmethod
    def load(cls, name: str) -> LabState | None:
        try:
            data = json.loads(cls.path(name).read_text())
        except (OSError, ValueError):
            return None
        nodes = [NodeRecord(**n) for n in data.pop("nodes", [])]
        return cls(**data, nodes=nodes)
