"""The VM lab: pyswarm on real (virtual) machines, each with its own kernel.

`pyswarm lab up --vms N` builds a Debian image once from Debian's packages (image.py,
with pyswarm put in by deploy/install.sh, the same path as a real host's), boots N QEMU
VMs on taps on a bridge inside a network namespace of the lab's own (network.py,
qemu.py), and makes them a cluster by deploy/pyswarm-node.sh under systemd, driven over
each VM's QEMU guest agent (guest_agent.py, provision.py). lab.py ties these together.
"""
