"""BridgeNetwork: container networking on one host, the facade the agent uses.

One Linux bridge carries the gateway address of the subnet; each container in
"bridge" mode gets a network namespace with one end of a veth pair as eth0 (the other
end on the bridge), an address from the subnet and a default route via the gateway.
Outbound traffic is masqueraded; published ports are kernel DNAT (see nat.py).

Every operation is idempotent and safe to call from several threads at once: state
changes (addresses, published ports, the state file) happen under one lock, while the
kernel work of different containers runs in parallel under a per-container lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pyswarm.agent.runtime.network import links, netns, ports
from pyswarm.agent.runtime.network.errors import (
    BridgeMissing,
    InvalidNetworkArgument,
    PortInUse,
)
from pyswarm.agent.runtime.network.ipam import AddressPool
from pyswarm.agent.runtime.network.nat import NatRules
from pyswarm.agent.runtime.network.port_claims import claim, close_new, copy_port, dnat_rules
from pyswarm.agent.runtime.network.rtnl import Rtnl
from pyswarm.agent.runtime.network.state import (
    NetworkState,
    Published,
    SandboxRecord,
    load_state,
    save_entry,
)
from pyswarm.proto import types_pb2

MODES = ("bridge", "none")
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_BRIDGE_NF = "net/bridge/bridge-nf-call-iptables"


@dataclass(frozen=True)
class Sandbox:
    """A container's network namespace; ip_address and mac_address are "" in mode "none"."""

    netns_path: str
    ip_address: str
    mac_address: str
    gateway: str
    prefixlen: int


def veth_name(container_id: str, bridge: str) -> str:
    """The host end of a container's veth pair: "vps" and 11 hex digits (15 characters)."""
    digest = hashlib.sha256(f"{bridge}/{container_id}".encode()).hexdigest()
    return "vps" + digest[:11]


class BridgeNetwork:
    """The bridge network of one agent; see the module docstring."""

    def __init__(
        self,
        state_dir: Path,
        *,
        bridge: str = "pyswarm0",
        subnet: str = "10.209.0.0/16",
        netns_dir: Path = Path("/run/pyswarm/netns"),
        chain: str = "PYSWARM",
    ) -> None:
        if not 1 <= len(bridge) <= 15 or not re.fullmatch(r"[A-Za-z0-9_.-]+", bridge):
            raise InvalidNetworkArgument(
                f'bridge name "{bridge}" must be 1-15 letters, digits, "_", "." or "-"',
                field="bridge",
            )
        self.state_dir = Path(state_dir)
        self.bridge = bridge
        self.netns_dir = Path(netns_dir)
        self._pool = AddressPool(subnet)
        self._nat = NatRules(chain, bridge, str(self._pool.network))
        self._state: NetworkState | None = None
        self._lock = threading.RLock()  # state file, port holds, iptables rewrites
        self._ensure_lock = threading.Lock()
        self._ensured = False
        self._bridge_index = 0  # cached by ensure(): a lookup per veth costs a netlink dump
        self._id_locks: dict[str, threading.Lock] = {}
        self._holds = ports.PortHolds()

    @property
    def gateway(self) -> str:
        return self._pool.gateway

    @property
    def prefixlen(self) -> int:
        return self._pool.prefixlen

    @property
    def nat(self) -> NatRules:
        """The iptables chains of this network (for inspection and tests)."""
        return self._nat

    # -- host-wide setup

    def ensure(self) -> None:
        """Bring up the bridge, sysctls and chains; re-apply the published ports (idempotent)."""
        with self._ensure_lock:
            self._bridge_index = links.ensure_bridge(
                self.bridge, self._pool.gateway, self._pool.prefixlen
            )
            links.write_sysctl("net/ipv4/ip_forward", "1")
            links.write_sysctl(f"net/ipv4/conf/{self.bridge}/route_localnet", "1")
            # Replies between two containers on the bridge must pass conntrack to undo the
            # DNAT of a published port reached via the gateway (docker sets this as well).
            if (Path("/proc/sys") / _BRIDGE_NF).exists():
                links.write_sysctl(_BRIDGE_NF, "1")
            with self._lock:
                self._state = None  # what the disk says, whoever wrote it last
                state = self._load()
                self._nat.ensure(dnat_rules(state))
                self._rehold(state)
            self._ensured = True

    def _rehold(self, state: NetworkState) -> None:
        """Hold again the ports published before a restart; a port lost meanwhile stays DNATed."""
        for cid, pub in state.published.items():
            held: dict[ports.HostPort, socket.socket] = {}
            for config in pub.ports:
                port = ports.HostPort.of(config)
                existing = self._holds.get(cid, port)
                if existing is not None:
                    held[port] = existing
                    continue
                with contextlib.suppress(PortInUse):
                    held[port] = ports.hold(port)[1]
            self._holds.replace(cid, held)

    def teardown(self) -> None:
        """Remove every sandbox, the chains and jumps, the bridge and the state files."""
        with self._lock:
            self._state = None  # what the disk says, whoever wrote it last
            state = self._load()
        for cid in list(state.sandboxes):
            self.remove_sandbox(cid)
        with self._lock:
            self._holds.release_all()
            self._nat.teardown()
            links.delete_link(self.bridge)
            if self.state_dir.exists():
                for child in self.state_dir.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
            self._state = None
            self._ensured = False

    # -- sandboxes

    def _netns_path(self, container_id: str) -> Path:
        if not _ID_PATTERN.fullmatch(container_id):
            raise InvalidNetworkArgument(
                f'container id "{container_id}" is not usable as a name', field="container_id"
            )
        return self.netns_dir / container_id

    @contextlib.contextmanager
    def _id_lock(self, container_id: str) -> Iterator[None]:
        with self._lock:
            lock = self._id_locks.setdefault(container_id, threading.Lock())
        with lock:
            yield

    def create_sandbox(self, container_id: str, mode: str) -> Sandbox:
        """Make the network namespace of a container; remains of an earlier try are removed first.

        mode "bridge": veth to the bridge, eth0 with an address, default route; "none": lo only.
        """
        if mode not in MODES:
            raise InvalidNetworkArgument(
                f'network mode "{mode}" is not one of {", ".join(MODES)}', field="network"
            )
        path = self._netns_path(container_id)
        if mode == "bridge" and not self._ensured:
            self.ensure()
        with self._id_lock(container_id):
            with self._lock:
                leftover = container_id in self._load().sandboxes
            if leftover or path.exists():
                self._remove_kernel_parts(container_id, path)
            with self._lock:
                state = self._load()
                state.sandboxes.pop(container_id, None)
                record = SandboxRecord(mode=mode)
                if mode == "bridge":
                    record.ip_address = self._pool.allocate(state.addresses())
                    record.mac_address = links.mac_for(record.ip_address)
                # Recorded before the kernel work, so a crash midway is found and cleaned.
                state.sandboxes[container_id] = record
                self._save(state, container_id)
            try:
                try:
                    netns.run_in_thread(lambda: self._build(container_id, path, record))
                except BridgeMissing:
                    # Deleted behind our back: made again (a new index), then one more try.
                    self._remove_kernel_parts(container_id, path)
                    self._ensured = False
                    self.ensure()
                    netns.run_in_thread(lambda: self._build(container_id, path, record))
            except BaseException:
                with contextlib.suppress(Exception):
                    self._remove_kernel_parts(container_id, path)
                    self._forget(container_id)
                raise
            return self._sandbox_of(path, record)

    def _build(self, container_id: str, path: Path, record: SandboxRecord) -> None:
        """The kernel side of a sandbox, in one dedicated thread that ends inside the netns.

        A netlink socket opened before entering the namespace stays in the host's, one
        opened after is inside: two sockets, one thread, no fork.
        """
        with Rtnl() as host:
            netns.enter_new_netns(path)
            links.no_ipv6_on_new_links()
            with Rtnl() as inside:
                if record.mode != "bridge":
                    links.loopback_up(inside)
                    return
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    host_end = veth_name(container_id, self.bridge)
                    links.create_veth(host, host_end, self._bridge_index, fd, record.mac_address)
                finally:
                    os.close(fd)
                links.configure_sandbox(
                    inside, record.ip_address, self._pool.prefixlen, self._pool.gateway
                )

    def _sandbox_of(self, path: Path, record: SandboxRecord) -> Sandbox:
        bridged = record.mode == "bridge"
        return Sandbox(
            netns_path=str(path),
            ip_address=record.ip_address,
            mac_address=record.mac_address,
            gateway=self._pool.gateway if bridged else "",
            prefixlen=self._pool.prefixlen if bridged else 0,
        )

    def _remove_kernel_parts(self, container_id: str, path: Path) -> None:
        links.delete_link(veth_name(container_id, self.bridge))
        netns.remove_netns(path)

    def _forget(self, container_id: str) -> None:
        """Drop the container's record and published ports from the state and the kernel."""
        with self._lock:
            state = self._load()
            had_ports = state.published.pop(container_id, None) is not None
            state.sandboxes.pop(container_id, None)
            self._save(state, container_id)
            if had_ports:
                self._nat.sync_ports(dnat_rules(state))
            self._holds.release(container_id)

    def remove_sandbox(self, container_id: str) -> None:
        """Delete the veth, unmount and remove the netns file, free the address and ports.

        Idempotent: whatever is already gone is skipped.
        """
        path = self._netns_path(container_id)
        with self._id_lock(container_id):
            self._remove_kernel_parts(container_id, path)
            self._forget(container_id)
        with self._lock:
            self._id_locks.pop(container_id, None)

    def sandbox(self, container_id: str) -> Sandbox | None:
        """The container's sandbox if it exists whole (for adoption after a restart), else None."""
        path = self._netns_path(container_id)
        with self._lock:
            record = self._load().sandboxes.get(container_id)
        if record is None or not netns.is_mounted(path):
            return None
        if record.mode == "bridge" and not links.link_exists(veth_name(container_id, self.bridge)):
            return None
        return self._sandbox_of(path, record)

    # -- published ports

    def publish(
        self,
        container_id: str,
        ip_address: str,
        ports_: Sequence[types_pb2.PortConfig],
        *,
        group: str = "",
    ) -> list[types_pb2.PortConfig]:
        """Forward host ports to the container at `ip_address`; returns them with host ports set.

        A published_port of 0 picks a free port. Replaces what this container published
        before. All ports or none: on PortInUse (a port published here already, or bound
        by another process) or any other error, nothing changes. A container without an
        address (mode "none") publishes nothing and gets [] back, as docker discards them.
        """
        for config in ports_:
            ports.validate(config)
        if not ip_address:
            self.unpublish(container_id)
            return []
        with self._lock:
            state = self._load()
            taken: list[ports.HostPort] = []
            shared: set[ports.HostPort] = set()
            for cid, pub in state.published.items():
                if cid == container_id:
                    continue
                mates = bool(group) and pub.group == group
                for p in pub.ports:
                    if mates:
                        shared.add(ports.HostPort.of(p))
                    else:
                        taken.append(ports.HostPort.of(p))
            held: dict[ports.HostPort, socket.socket] = {}
            resolved: list[types_pb2.PortConfig] = []
            previous = state.published.get(container_id)
            try:
                for config in ports_:
                    if config.published_port and ports.HostPort.of(config) in shared:
                        port = ports.HostPort.of(config)  # a group mate holds it already
                    else:
                        port = claim(self._holds, container_id, config, taken, held)
                    taken.append(port)
                    out = types_pb2.PortConfig()
                    out.CopyFrom(config)
                    out.published_port = port.port
                    resolved.append(out)
                if resolved:
                    # Only a container that publishes ports can reach itself through one.
                    links.set_hairpin(veth_name(container_id, self.bridge))
                state.published[container_id] = Published(ip_address, resolved, group)
                self._nat.sync_ports(dnat_rules(state))
                self._save(state, container_id)
            except BaseException:
                close_new(self._holds, container_id, held)
                if previous is None:
                    state.published.pop(container_id, None)
                else:
                    state.published[container_id] = previous
                with contextlib.suppress(Exception):
                    self._nat.sync_ports(dnat_rules(state))
                raise
            self._holds.replace(container_id, held)
            return [copy_port(p) for p in resolved]

    def unpublish(self, container_id: str) -> None:
        """Remove the container's DNAT rules and release its host ports (idempotent)."""
        with self._lock:
            state = self._load()
            if state.published.pop(container_id, None) is not None:
                self._nat.sync_ports(dnat_rules(state))
                self._save(state, container_id)
            self._holds.release(container_id)

    def published(self, container_id: str) -> list[types_pb2.PortConfig]:
        """The container's published ports, host ports filled in."""
        with self._lock:
            pub = self._load().published.get(container_id)
        return [copy_port(p) for p in pub.ports] if pub else []

    # -- state

    def _load(self) -> NetworkState:
        """The state, read from its file once: the file is this instance's alone (one
        agent per state dir) and every change goes through _save. Call under the lock."""
        if self._state is None:
            self._state = load_state(self.state_dir)
        return self._state

    def _save(self, state: NetworkState, container_id: str) -> None:
        """Write the container's entry of `state` (the rest of it is on disk already)."""
        try:
            save_entry(self.state_dir, state, container_id)
        except BaseException:
            self._state = None  # read again what the disk holds
            raise
        self._state = state
