"""The VM lab's network: a namespace of its own holding a bridge and one tap per VM,
and a veth from this host into that bridge so the CLI reaches the VMs.

Deleting the namespace removes the bridge, the taps and the veth at once. The VMs get
no route beyond the bridge, and the subnet's addresses exist only on the VMs and on
the host's end of the veth: the lab's traffic never leaves the machine.
"""

from __future__ import annotations

import ipaddress
import subprocess

from pyswarm.lab.errors import LabError
from pyswarm.lab.hosts import release_netns_dir, run_ip

BRIDGE = "br0"  # inside the lab's namespace, so its name is the lab's alone
UPLINK_INSIDE = "uplink"


class VmNetwork:
    def __init__(self, lab: str, subnet: str) -> None:
        if len(lab) > 10:
            raise LabError(f"lab name {lab!r} is too long (10 characters at most)")
        self.lab = lab
        self.network = ipaddress.ip_network(subnet)
        self.netns = f"{lab}-vms"
        self.uplink = f"{lab}vmh"
        self.gateway = str(self.network.network_address + 1)

    def address(self, index: int) -> str:
        """node-INDEX's address, with the subnet's prefix length."""
        address = self.network.network_address + 10 + index
        if address not in self.network or address == self.network.broadcast_address:
            raise LabError(f"the lab subnet {self.network} has no room for VM {index}")
        return f"{address}/{self.network.prefixlen}"

    @staticmethod
    def tap(index: int) -> str:
        return f"tap{index}"

    def mac(self, index: int) -> str:
        # Locally administered (52:54:00 is QEMU's own prefix), unique per lab subnet.
        third = int(self.network.network_address.packed[2])
        return f"52:54:00:{third:02x}:00:{index:02x}"

    def exec_args(self, *command: str) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--", *command]

    def exists(self) -> bool:
        listed = run_ip("netns", "list", check=False).stdout.split()
        return self.netns in listed

    def create(self) -> None:
        inside = ["-n", self.netns]
        run_ip("netns", "add", self.netns)
        run_ip(*inside, "link", "set", "lo", "up")
        run_ip(*inside, "link", "add", BRIDGE, "type", "bridge")
        run_ip(*inside, "link", "set", BRIDGE, "up")
        run_ip("link", "add", self.uplink, "type", "veth", "peer", "name", UPLINK_INSIDE,
               "netns", self.netns)  # fmt: skip
        run_ip(*inside, "link", "set", UPLINK_INSIDE, "master", BRIDGE, "up")
        prefix = f"{self.gateway}/{self.network.prefixlen}"
        run_ip("addr", "add", prefix, "dev", self.uplink)
        run_ip("link", "set", self.uplink, "up")

    def create_tap(self, index: int) -> str:
        tap = self.tap(index)
        inside = ["-n", self.netns]
        run_ip(*inside, "tuntap", "add", "dev", tap, "mode", "tap")
        run_ip(*inside, "link", "set", tap, "master", BRIDGE, "up")
        return tap

    def destroy(self) -> None:
        run_ip("link", "del", self.uplink, check=False)
        run_ip("netns", "del", self.netns, check=False)
        release_netns_dir()

    def leftovers(self) -> list[str]:
        """What of this network is still on the machine."""
        found = [f"netns {self.netns}"] if self.exists() else []
        shown = subprocess.run(["ip", "link", "show", self.uplink], capture_output=True)
        if shown.returncode == 0:
            found.append(f"link {self.uplink}")
        return found
