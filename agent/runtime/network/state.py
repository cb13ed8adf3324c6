"""The network's durable state: which sandbox has which address, which ports are published.

One small JSON file per container (<state dir>/sandboxes/<id>.json: its sandbox and its
published ports), replaced atomically (write a temporary file, rename), so a crash of
the agent leaves either the old or the new entry. A change rewrites only its container's
entry: one file for the whole host was rewritten on every sandbox made or removed, which
at 1,000 containers is ~147 KB of JSON per start. There is no fsync: what the entries
describe (namespaces, veths, DNAT rules) does not outlive a power loss either, and an
fsync under the lock would serialise every container start on the disk. The entries are
the truth for addresses and published ports across agent restarts; callers serialise
access with their own lock. A state file of an older agent (network.json, the whole
host in one) is read and split into entries on the first load.
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


SANDBOXES = "sandboxes"
_LEGACY_FILE = "network.json"  # an older agent's single state file


def _sandbox_from_json(raw: dict[str, Any]) -> SandboxRecord:
    return SandboxRecord(
        mode=str(raw["mode"]),
        ip_address=str(raw.get("ip_address", "")),
        mac_address=str(raw.get("mac_address", "")),
    )


def _published_from_json(raw: dict[str, Any]) -> Published:
    return Published(
        ip_address=str(raw["ip_address"]),
        ports=[_port_from_json(p) for p in raw.get("ports", [])],
        group=str(raw.get("group", "")),
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise NetworkError(f"network state {path} is unreadable: {err}") from err
    if not isinstance(raw, dict):
        raise NetworkError(f"network state {path} is unreadable: not an object")
    return raw


def load_state(directory: Path) -> NetworkState:
    """Read every entry under `directory` (none: an empty state), splitting an older
    agent's single state file into entries first."""
    state = NetworkState()
    legacy = directory / _LEGACY_FILE
    split_legacy = legacy.exists()
    if split_legacy:
        raw = _read_json(legacy)
        for cid, rec in raw.get("sandboxes", {}).items():
            state.sandboxes[cid] = _sandbox_from_json(rec)
        for cid, rec in raw.get("published", {}).items():
            state.published[cid] = _published_from_json(rec)
    entries = directory / SANDBOXES
    if entries.is_dir():
        for path in entries.iterdir():
            if path.suffix != ".json" or path.name.startswith("."):
                continue  # a temporary a crash left: its rename never happened
            cid, raw = path.stem, _read_json(path)
            if raw.get("sandbox"):
                state.sandboxes[cid] = _sandbox_from_json(raw["sandbox"])
            if raw.get("published"):
                state.published[cid] = _published_from_json(raw["published"])
    if split_legacy:
        for cid in set(state.sandboxes) | set(state.published):
            save_entry(directory, state, cid)
        legacy.unlink()
    return state


def save_entry(directory: Path, state: NetworkState, container_id: str) -> None:
    """Write the container's entry as `state` has it (atomically), or delete the entry
    when the state holds nothing of it."""
    sandbox = state.sandboxes.get(container_id)
    pub = state.published.get(container_id)
    path = directory / SANDBOXES / f"{container_id}.json"
    if sandbox is None and (pub is None or not pub.ports):
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            raise NetworkError(f"cannot remove network state {path}: {err.strerror}") from err
        return
    raw: dict[str, Any] = {"version": _VERSION}
    if sandbox is not None:
        raw["sandbox"] = {
            "mode": sandbox.mode,
            "ip_address": sandbox.ip_address,
            "mac_address": sandbox.mac_address,
        }
    if pub is not None and pub.ports:
        raw["published"] = {
            "ip_address": pub.ip_address,
            "ports": [_port_to_json(p) for p in pub.ports],
            "group": pub.group,
        }
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        # 0700 each: mkdir's mode covers only the last of the parents it makes.
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.parent.mkdir(exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with open(fd, "w") as out:
            out.write(json.dumps(raw, separators=(",", ":")))
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise NetworkError(f"cannot write network state {path}: {err.strerror}") from err
