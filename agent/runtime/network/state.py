"""The network's durable state: which sandbox has which address, which ports are published.

One small JSON file, replaced atomically (write a temporary file, rename), so a crash
of the agent leaves either the old or the new state. There is no fsync: what the file
describes (namespaces, veths, DNAT rules) does not outlive a power loss either, and
an fsync under the lock would serialise every container start on the disk. The file is
the truth for addresses and published ports across agent restarts; callers serialise
access with their own lock.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyswarm.agent.runtime.network.errors import NetworkError
from pyswarm.proto import types_pb2

_VERSION = 1


@dataclass
class SandboxRecord:
    """What was made for one container: mode "bridge" or "none", its address and MAC."""

    mode: str
    ip_address: str = ""
    mac_address: str = ""


@dataclass
class Published:
    """A container's published ports and the address they are forwarded to."""

    ip_address: str
    ports: list[types_pb2.PortConfig] = field(default_factory=list)
    # Containers of one group (a service's replicas on this host) may publish the same
    # host port; connections to it are balanced across them.
    group: str = ""


@dataclass
class NetworkState:
    sandboxes: dict[str, SandboxRecord] = field(default_factory=dict)
    published: dict[str, Published] = field(default_factory=dict)

    def addresses(self) -> set[str]:
        """Every address handed out."""
        return {r.ip_address for r in self.sandboxes.values() if r.ip_address}


def _port_to_json(port: types_pb2.PortConfig) -> dict[str, Any]:
    return {
        "protocol": "udp" if port.protocol == types_pb2.PortConfig.UDP else "tcp",
        "target_port": port.target_port,
        "published_port": port.published_port,
        "host_ip": port.host_ip,
    }


def _port_from_json(raw: dict[str, Any]) -> types_pb2.PortConfig:
    udp = raw.get("protocol") == "udp"
    return types_pb2.PortConfig(
        protocol=types_pb2.PortConfig.UDP if udp else types_pb2.PortConfig.TCP,
        target_port=int(raw["target_port"]),
        published_port=int(raw["published_port"]),
        host_ip=str(raw.get("host_ip", "")),
    )


def load_state(path: Path) -> NetworkState:
    """Read the state file; a missing file is an empty state."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return NetworkState()
    except (OSError, ValueError) as err:
        raise NetworkError(f"network state {path} is unreadable: {err}") from err
    sandboxes = {
        cid: SandboxRecord(
            mode=str(rec["mode"]),
            ip_address=str(rec.get("ip_address", "")),
            mac_address=str(rec.get("mac_address", "")),
        )
        for cid, rec in raw.get("sandboxes", {}).items()
    }
    published = {
        cid: Published(
            ip_address=str(rec["ip_address"]),
            ports=[_port_from_json(p) for p in rec.get("ports", [])],
            group=str(rec.get("group", "")),
        )
        for cid, rec in raw.get("published", {}).items()
    }
    return NetworkState(sandboxes=sandboxes, published=published)


def save_state(path: Path, state: NetworkState) -> None:
    """Replace the state file atomically."""
    raw = {
        "version": _VERSION,
        "sandboxes": {
            cid: {"mode": r.mode, "ip_address": r.ip_address, "mac_address": r.mac_address}
            for cid, r in sorted(state.sandboxes.items())
        },
        "published": {
            cid: {
                "ip_address": pub.ip_address,
                "ports": [_port_to_json(p) for p in pub.ports],
                "group": pub.group,
            }
            for cid, pub in sorted(state.published.items())
            if pub.ports
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with open(fd, "w") as out:
            # Compact, one string: the C encoder (an indented dump runs the pure-Python
            # one), as this is rewritten on every sandbox made or removed.
            out.write(json.dumps(raw, separators=(",", ":")))
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise NetworkError(f"cannot write network state {path}: {err.strerror}") from err
