"""Overlay networks on one host: a bridge and a VXLAN device per network, peers from the
manager's view, containers' extra interfaces, IPsec for encrypted networks.

Where it lives: the node's own network namespace (the host's), not a namespace per
network as docker does. The node's load-balancer endpoint must be routable from the
host itself (the routing mesh sends to it), and one namespace less is one less thing
to adopt and clean. Two nodes sharing one kernel (the lab: each node a netns) still
coexist: VXLAN devices with the same VNI and UDP port in different namespaces bind
different sockets (checked on this kernel).

Names (predictable, for the mesh and the resolver; see names.py):
  ov-<vni>   the network's bridge, carrying the node's endpoint address
  vx-<vni>   its VXLAN device (a port of ov-<vni>)
  eth1, eth2, ...  a container's interfaces on its networks, in the task's order
"""
