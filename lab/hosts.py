"""The lab's hosts: network namespaces on one machine, joined by one bridge.

Each host is a named network namespace (as `ip netns add` makes them) with a veth
into the lab bridge and an address on the lab subnet; nothing else is shared
between them but the kernel. Addresses on that subnet exist only inside namespaces
the lab made, so the lab's traffic never leaves the machine.
"""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pyswarm.agent.runtime.mountinfo import mount_points
from pyswarm.lab.errors import LabError


def run_ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


@dataclass(frozen=True)
class LabHost:
    name: str  # node-1
    netns: str  # <lab>-node-1
    address: str  # 10.231.0.11
    prefixlen: int

    def exec_args(self, *command: str) -> list[str]:
        """argv running `command` inside this host's network namespace.

        nsenter, not `ip netns exec`: the latter remounts /sys for the namespace, which
        hides the cgroup hierarchies mounted below it from the agent.
        """
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--", *command]


class LabNetwork:
    """Creates and removes the bridge and the host namespaces of one lab."""

    def __init__(self, lab: str, subnet: str) -> None:
        if len(lab) > 10:
            raise LabError(f"lab name {lab!r} is too long (10 characters at most)")
        self.lab = lab
        self.network = ipaddress.ip_network(subnet)
        self.bridge = f"{lab}br"
        self.gateway = str(self.network.network_address + 1)

    def host(self, index: int) -> LabHost:
        address = self.network.network_address + 10 + index
        if address not in self.network:
            raise LabError(f"the lab subnet {self.network} has no room for node {index}")
        return LabHost(
            name=f"node-{index}",
            netns=f"{self.lab}-node-{index}",
            address=str(address),
            prefixlen=self.network.prefixlen,
        )

    def create_bridge(self) -> None:
        if run_ip("link", "show", self.bridge, check=False).returncode != 0:
            run_ip("link", "add", self.bridge, "type", "bridge")
        run_ip("addr", "replace", f"{self.gateway}/{self.network.prefixlen}", "dev", self.bridge)
        run_ip("link", "set", self.bridge, "up")

    def registry_host(self) -> LabHost:
        """The host that runs the lab's registry: the subnet's second address."""
        return LabHost(
            name="registry",
            netns=f"{self.lab}-registry",
            address=str(self.network.network_address + 2),
            prefixlen=self.network.prefixlen,
        )

    def create_host(self, index: int) -> LabHost:
        self.remove_host(index)
        return self._create(self.host(index), f"{self.lab}v{index}", f"{self.lab}p{index}")

    def create_registry_host(self) -> LabHost:
        self.remove_registry_host()
        return self._create(self.registry_host(), f"{self.lab}vr", f"{self.lab}pr")

    def _create(self, host: LabHost, outside: str, inside: str) -> LabHost:
        run_ip("netns", "add", host.netns)
        run_ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        run_ip("link", "set", outside, "master", self.bridge, "up")
        run_ip("link", "set", inside, "netns", host.netns)
        inns = ["-n", host.netns]
        run_ip(*inns, "link", "set", inside, "name", "eth0")
        run_ip(*inns, "addr", "add", f"{host.address}/{host.prefixlen}", "dev", "eth0")
        run_ip(*inns, "link", "set", "eth0", "up")
        run_ip(*inns, "link", "set", "lo", "up")
        run_ip(*inns, "route", "add", "default", "via", self.gateway)
        return host

    def remove_host(self, index: int) -> None:
        host = self.host(index)
        run_ip("link", "del", f"{self.lab}v{index}", check=False)
        run_ip("netns", "del", host.netns, check=False)

    def remove_registry_host(self) -> None:
        run_ip("link", "del", f"{self.lab}vr", check=False)
        run_ip("netns", "del", self.registry_host().netns, check=False)

    def existing_hosts(self) -> list[str]:
        out = run_ip("netns", "list", check=False).stdout
        prefix = f"{self.lab}-node-"
        return sorted(line.split()[0] for line in out.splitlines() if line.startswith(prefix))

    def destroy(self) -> None:
        for netns in self.existing_hosts():
            index = int(netns.rsplit("-", 1)[1])
            self.remove_host(index)
        self.remove_registry_host()
        run_ip("link", "del", self.bridge, check=False)
        release_netns_dir()


def release_netns_dir() -> None:
    """`ip netns add` makes /run/netns a mount point on first use; once no namespace is
    left there, undo that too, so the machine is as the lab found it."""
    netns_dir = Path("/run/netns")
    try:
        if any(netns_dir.iterdir()):
            return
    except FileNotFoundError:
        return
    for _ in range(4):  # `ip` may have stacked a bind mount on a shared one
        if str(netns_dir) not in mount_points():
            break
        subprocess.run(["umount", str(netns_dir)], capture_output=True, check=False)
    with contextlib.suppress(OSError):
        netns_dir.rmdir()
