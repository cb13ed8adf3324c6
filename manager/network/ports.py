"""Published ports of the routing mesh: filled in and reserved cluster-wide.

A port published in ingress mode opens on every node, so two services cannot share
one. The Control API refuses a taken port with the other service's name (usage.py);
here each ingress port a service publishes is reserved ("port-tcp-8080", addresses.py)
in the transaction that records it in Service.endpoint, and a port given without a
published number gets the lowest free one of 30000-32767 (as Swarm), kept across
updates. Host-mode ports are per node (the scheduler's concern) and reserve nothing.
"""

from __future__ import annotations

from pyswarm.manager.network.addresses import ReservationIndex, reserve
from pyswarm.manager.network.errors import AddressPoolExhausted
from pyswarm.manager.store import ADDRESSES, SERVICES, Delete, Op
from pyswarm.proto import types_pb2

DYNAMIC_PORTS = range(30000, 32768)
_INGRESS = types_pb2.PortConfig.INGRESS


def port_id(protocol: int, port: int) -> str:
    return f"port-{'udp' if protocol == types_pb2.PortConfig.UDP else 'tcp'}-{port}"


class PortPlan:
    """The endpoint ports of a service and the reservation ops that go with them."""

    def __init__(self, index: ReservationIndex, picked: set[str]) -> None:
        self.index = index
        self.picked = picked  # port reservation ids taken earlier in this tick

    def plan(
        self, service: types_pb2.Service
    ) -> tuple[list[types_pb2.PortConfig], list[Op], list[Op]]:
        """(ports as allocated, reservations to create, reservations to delete)."""
        owner = service.id
        held = {r for r in self.index.owned_by(SERVICES.name, owner) if r.startswith("port-")}
        before = {
            (p.target_port, p.protocol): p.published_port
            for p in service.endpoint.ports
            if p.publish_mode == _INGRESS
        }
        ports: list[types_pb2.PortConfig] = []
        creates: list[Op] = []
        keep: set[str] = set()
        for spec_port in service.spec.endpoint.ports:
            port = types_pb2.PortConfig()
            port.CopyFrom(spec_port)
            ports.append(port)
            if port.publish_mode != _INGRESS:
                continue
            if not port.published_port:
                earlier = before.get((port.target_port, port.protocol))
                port.published_port = earlier or self._free(port.protocol)
            rid = port_id(port.protocol, port.published_port)
            keep.add(rid)
            if rid in held or rid in self.picked:
                continue
            if self.index.get(rid) is not None:
                # Another service holds it: the Control API refuses this; only a race gets
                # here, and the port stays unreserved rather than failing the whole tick.
                continue
            self.picked.add(rid)
            creates.append(reserve(rid, "", str(port.published_port), SERVICES.name, owner))
        deletes: list[Op] = [Delete(ADDRESSES, rid) for rid in sorted(held - keep)]
        return ports, creates, deletes

    def _free(self, protocol: int) -> int:
        for port in DYNAMIC_PORTS:
            rid = port_id(protocol, port)
            if rid not in self.picked and self.index.get(rid) is None:
                return port
        raise AddressPoolExhausted("no free published port left in 30000-32767")
