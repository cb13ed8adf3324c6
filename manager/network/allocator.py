"""The network allocator: a control loop that gives addresses before anything runs.

Level-triggered like the other loops (orchestrator/loop.py). Each tick it plans, from
the cache and the reservations it holds (addresses.py), for every dirty key:

- a PENDING task lacking attachments gets one address on each network it joins
  (needs.py); a task that cannot get one stays PENDING with "no free address on network
  X" in its status (the scheduler does not place it), and is tried again whenever a
  reservation is freed;
- a service gets a VIP on each of its networks (vip mode) and its ingress ports
  reserved (a published number picked when none is given: ports.py), recorded in
  Service.endpoint;
- a node gets its own endpoint (load balancer / routing-mesh source) on the ingress
  network and on every network its live tasks or standalone containers (attachments.py)
  join, in Node.attachments;
- a task that ended (or is no longer wanted and never ran), and a service, node or
  network that is gone, has its reservations deleted, and so does a reservation whose
  owner no longer exists (found at start); a removed node's standalone attachments go
  with their reservations. An ended task keeps its attachments as
  history; nothing programs them any more (manager/network/view.py skips it).

The whole tick is one `store.batch`: reservations first, then the records that hold them
(a 0→1000 scale is a handful of transactions). The ingress network is created at start
when the cluster has none, with the name index guarding against a second manager.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from pyswarm.common.errors import PyswarmError
from pyswarm.manager.network.addresses import (
    ReservationIndex,
    address_id,
    release,
    release_network,
    reserve_address,
)
from pyswarm.manager.network.attachments import release_ops
from pyswarm.manager.network.errors import AddressPoolExhausted
from pyswarm.manager.network.ipam import check_pools, free_addresses, with_prefix
from pyswarm.manager.network.needs import networks_allocated, publishes_ingress
from pyswarm.manager.network.networks import ingress_spec, plan_network
from pyswarm.manager.network.ports import PortPlan
from pyswarm.manager.orchestrator.loop import LoopContext, ReconcileLoop, write_ops
from pyswarm.manager.store import (
    ADDRESSES,
    ATTACHMENTS,
    CLUSTERS,
    NETWORKS,
    NODES,
    SERVICES,
    TASKS,
    Cache,
    Delete,
    NameConflict,
    ObjectExists,
    Op,
    StoreEvent,
    Update,
)
from pyswarm.proto import types_pb2

log = logging.getLogger(__name__)
_OWNERS = {TASKS.name: "t", SERVICES.name: "s", NODES.name: "n"}


def no_address_reason(network_name: str) -> str:
    return f"no free address on network {network_name}"


class NetworkAllocator(ReconcileLoop):
    name = "network-allocator"
    kinds = (NETWORKS, TASKS, SERVICES, NODES, ADDRESSES, ATTACHMENTS)

    def __init__(self, context: LoopContext) -> None:
        super().__init__(context)
        self._waiting: set[str] = set()  # tasks waiting for an address
        self._placed: dict[str, tuple[str, bool]] = {}  # task: (its node, wanted there)

    def prime(self) -> None:
        self._waiting = {task.id for task in self.cache.list(TASKS) if _waiting(task)}
        self.mark("ingress")
        self.mark("orphans")
        self.mark_all(f"t:{task.id}" for task in self.cache.list(TASKS))
        self.mark_all(f"s:{service.id}" for service in self.cache.list(SERVICES))
        self.mark_all(f"n:{node.id}" for node in self.cache.list(NODES))

    def observe(self, event: StoreEvent) -> None:
        if event.kind in _OWNERS:
            self.mark(f"{_OWNERS[event.kind]}:{event.id}")
            if event.kind == TASKS.name:
                task = event.message
                if isinstance(task, types_pb2.Task) and _waiting(task):
                    self._waiting.add(event.id)
                else:
                    self._waiting.discard(event.id)
            if event.kind == TASKS.name:
                self._mark_node_of(event)
        elif event.kind == NETWORKS.name:
            self.mark("ingress")
            self.mark(f"net:{event.id}")
        elif event.kind == ATTACHMENTS.name:
            if isinstance(event.message, types_pb2.Attachment):
                self.mark(f"n:{event.message.node_id}")  # its node's endpoint there
        elif event.kind == ADDRESSES.name and event.message is None:
            # Freed: tasks waiting for an address may get one now.
            self.mark_all(f"t:{task_id}" for task_id in self._waiting)

    def _mark_node_of(self, event: StoreEvent) -> None:
        """A node's endpoints follow the networks of the tasks it is to run: looked at
        again when a task lands on the node or stops being wanted there, not on every
        status a task reports (most of the events of a scale-out; each look reads every
        task of the cache)."""
        task = event.message
        if not isinstance(task, types_pb2.Task):
            self._placed.pop(event.id, None)
            return
        placed = (task.node_id, task.desired_state <= types_pb2.RUNNING)
        if task.node_id and self._placed.get(event.id) != placed:
            self.mark(f"n:{task.node_id}")
        self._placed[event.id] = placed

    async def reconcile(self, keys: set[str]) -> None:
        if "ingress" in keys:
            await self._ensure_ingress()
        plan = _Plan(self.cache, ReservationIndex.from_cache(self.cache))
        if "orphans" in keys:
            plan.orphans()
        for key in sorted(keys):
            kind, _, object_id = key.partition(":")
            if kind == "t":
                plan.task(object_id)
            elif kind == "s":
                plan.service(object_id)
            elif kind == "n":
                plan.node(object_id)
            elif kind == "net" and self.cache.get(NETWORKS, object_id) is None:
                plan.ops.extend(release_network(plan.index, object_id))
                plan.ops.extend(plan.attachments_of("network_id", object_id, reserved=False))
                self.mark_all(f"n:{node.id}" for node in self.cache.list(NODES))
        await write_ops(self.context, _once(plan.reservations + plan.ops))

    async def _ensure_ingress(self) -> None:
        networks = self.cache.list(NETWORKS)
        if any(n.spec.ingress for n in networks):
            return
        clusters = self.cache.list(CLUSTERS)
        pools, mask = check_pools(
            list(clusters[0].default_addr_pool) if clusters else [],
            clusters[0].default_addr_pool_mask_length if clusters else 0,
        )
        node_pool = clusters[0].node_subnet_pool if clusters else ""
        try:
            _, ops = plan_network(ingress_spec(), networks, pools, mask, node_pool)
        except PyswarmError as err:  # e.g. the pools are full: say so, keep allocating
            log.warning("cannot create the ingress network: %s", err)
            return
        with contextlib.suppress(NameConflict, ObjectExists):
            await write_ops(self.context, ops)  # else another manager made it first


def _done(task: types_pb2.Task) -> bool:
    """Its addresses are free again: it ended, or it is no longer wanted and never ran."""
    if task.status.state > types_pb2.RUNNING:
        return True
    return task.desired_state > types_pb2.RUNNING and task.status.state < types_pb2.ASSIGNED


def _waiting(task: types_pb2.Task) -> bool:
    return task.status.state == types_pb2.PENDING and not networks_allocated(task)


class _Plan:
    """The ops of one tick, with the addresses it has picked so far counted as used."""

    def __init__(self, cache: Cache, index: ReservationIndex) -> None:
        self.cache = cache
        self.index = index
        self.reservations: list[Op] = []
        self.ops: list[Op] = []
        self.networks = {n.id: n for n in cache.list(NETWORKS)}
        self.by_name = {n.spec.annotations.name: n for n in self.networks.values()}
        self.ingress = next((n for n in self.networks.values() if n.spec.ingress), None)
        self._picked: dict[str, set[str]] = {}
        self.ports = PortPlan(index, set())

    def resolve(self, target: str) -> types_pb2.Network | None:
        return self.networks.get(target) or self.by_name.get(target)

    def _take(self, network: types_pb2.Network, owner_kind: str, owner_id: str) -> str:
        """An address on `network` for the owner (CIDR): one it already holds but does not
        record, else a fresh one reserved in this tick."""
        picked = self._picked.setdefault(network.id, set())
        for held in self.index.held_on(owner_kind, owner_id, network.id):
            if held not in picked:
                picked.add(held)
                return with_prefix(held, network.ipam)
        used = self.index.used(network.id) | picked
        try:
            (address,) = free_addresses(network.ipam, used, 1)
        except AddressPoolExhausted:
            raise AddressPoolExhausted(no_address_reason(network.spec.annotations.name)) from None
        picked.add(address)
        self.reservations.append(reserve_address(network.id, address, owner_kind, owner_id))
        return with_prefix(address, network.ipam)

    def task(self, task_id: str) -> None:
        task = self.cache.get(TASKS, task_id)
        if task is None or _done(task):
            self.ops.extend(release(self.index, TASKS.name, task_id))
            return
        if not _waiting(task):
            return
        wanted: list[tuple[types_pb2.Network, list[str]]] = []
        for config in task.spec.networks:
            network = self.resolve(config.target)
            if network is None:
                return self._pending(task, f"network {config.target} not found")
            wanted.append((network, list(config.aliases)))
        if publishes_ingress(list(task.ports)):
            if self.ingress is None:
                return self._pending(task, "waiting for the ingress network")
            wanted.append((self.ingress, []))
        updated = types_pb2.Task()
        updated.CopyFrom(task)
        have = {a.network_id for a in task.networks}
        mark = len(self.reservations)
        for network, aliases in wanted:
            if network.id in have:
                continue
            have.add(network.id)
            try:
                address = self._take(network, TASKS.name, task.id)
            except AddressPoolExhausted as err:
                del self.reservations[mark:]
                return self._pending(task, str(err))
            updated.networks.add(network_id=network.id, addresses=[address], aliases=aliases)
        while len(updated.networks) < len(wanted):  # the same network named twice
            updated.networks.add(network_id=wanted[0][0].id)
        if updated.status.err.startswith(("no free address", "network ", "waiting for")):
            updated.status.err = ""
        self.ops.append(Update(TASKS, updated))

    def _pending(self, task: types_pb2.Task, reason: str) -> None:
        if task.status.err == reason:
            return
        updated = types_pb2.Task()
        updated.CopyFrom(task)
        updated.status.err = reason
        self.ops.append(Update(TASKS, updated))

    def service(self, service_id: str) -> None:
        service = self.cache.get(SERVICES, service_id)
        if service is None:
            self.ops.extend(release(self.index, SERVICES.name, service_id))
            return
        wanted: list[types_pb2.Network] = []
        if service.spec.endpoint.mode == types_pb2.EndpointSpec.VIP:
            for config in service.spec.task.networks:
                network = self.resolve(config.target)
                if network is not None and network not in wanted:
                    wanted.append(network)
            ingress = self.ingress
            if publishes_ingress(list(service.spec.endpoint.ports)) and ingress is not None:
                wanted += [] if ingress in wanted else [ingress]
        current = {vip.network_id: vip.addr for vip in service.endpoint.virtual_ips}
        wanted_ids = [n.id for n in wanted]
        try:
            ports, port_creates, port_deletes = self.ports.plan(service)
        except AddressPoolExhausted:
            return  # tried again when a reservation is freed
        if (
            list(current) == wanted_ids
            and service.endpoint.spec == service.spec.endpoint
            and list(service.endpoint.ports) == ports
            and not port_creates
            and not port_deletes
        ):
            return
        updated = types_pb2.Service()
        updated.CopyFrom(service)
        endpoint = updated.endpoint
        endpoint.spec.CopyFrom(service.spec.endpoint)
        del endpoint.ports[:]
        endpoint.ports.extend(ports)
        del endpoint.virtual_ips[:]
        mark = len(self.reservations)
        for network in wanted:
            addr = current.get(network.id)
            if addr is None:
                try:
                    addr = self._take(network, SERVICES.name, service.id)
                except AddressPoolExhausted:
                    del self.reservations[mark:]
                    return  # tried again when an address is freed
            endpoint.virtual_ips.add(network_id=network.id, addr=addr)
        for network_id, addr in current.items():
            if network_id not in wanted_ids:
                self.ops.append(_unreserve(network_id, addr))
        self.reservations.extend(port_creates)
        self.ops.extend(port_deletes)
        self.ops.append(Update(SERVICES, updated))

    def node(self, node_id: str) -> None:
        node = self.cache.get(NODES, node_id)
        if node is None:
            self.ops.extend(release(self.index, NODES.name, node_id))
            self.ops.extend(self.attachments_of("node_id", node_id))
            return
        wanted = {self.ingress.id} if self.ingress is not None else set()
        for task in self.cache.view(TASKS):  # read only, once per node and pass
            if task.node_id == node_id and task.desired_state <= types_pb2.RUNNING:
                wanted.update(a.network_id for a in task.networks if a.network_id in self.networks)
        for attachment in self.cache.list(ATTACHMENTS):
            if attachment.node_id == node_id and attachment.network_id in self.networks:
                wanted.add(attachment.network_id)
        have = {a.network_id for a in node.attachments}
        missing = sorted(wanted - have)
        gone = {nid for nid in have if nid not in self.networks}  # network removed
        if not missing and not gone:
            return
        updated = types_pb2.Node()
        updated.CopyFrom(node)
        kept = [a for a in node.attachments if a.network_id not in gone]
        del updated.attachments[:]
        updated.attachments.extend(kept)
        mark = len(self.reservations)
        for network_id in missing:
            try:
                address = self._take(self.networks[network_id], NODES.name, node.id)
            except AddressPoolExhausted:
                del self.reservations[mark:]
                return
            updated.attachments.add(network_id=network_id, addresses=[address])
        self.ops.append(Update(NODES, updated))

    def attachments_of(self, field: str, value: str, *, reserved: bool = True) -> list[Op]:
        """Deletes of the standalone attachments whose `field` is `value` (a removed node's,
        a removed network's) and, with `reserved`, of their reservations."""
        gone = [a for a in self.cache.list(ATTACHMENTS) if getattr(a, field) == value]
        if reserved:
            return release_ops(self.index, gone)
        return [Delete(ATTACHMENTS, a.id) for a in gone]

    def orphans(self) -> None:
        """Reservations whose owner is gone (e.g. a batch cut between its transactions)."""
        kinds: dict[str, Callable[[str], object]] = {
            TASKS.name: lambda i: self.cache.get(TASKS, i),
            SERVICES.name: lambda i: self.cache.get(SERVICES, i),
            NODES.name: lambda i: self.cache.get(NODES, i),
            NETWORKS.name: lambda i: self.cache.get(NETWORKS, i),
            ATTACHMENTS.name: lambda i: self.cache.get(ATTACHMENTS, i),
        }
        for reservation_id in sorted(self.index.ids()):
            reservation = self.index.get(reservation_id)
            if reservation is None:
                continue
            lookup = kinds.get(reservation.owner_kind)
            if lookup is not None and lookup(reservation.owner_id) is None:
                self.ops.extend(release(self.index, reservation.owner_kind, reservation.owner_id))


def _once(ops: list[Op]) -> list[Op]:
    """`ops` without repeated deletes (a removed node and a removed network may both
    free one reservation in a tick; a batch takes each key once)."""
    seen: set[tuple[str, str]] = set()
    kept: list[Op] = []
    for op in ops:
        if isinstance(op, Delete):
            if (op.kind.name, op.id) in seen:
                continue
            seen.add((op.kind.name, op.id))
        kept.append(op)
    return kept


def _unreserve(network_id: str, addr: str) -> Op:
    return Delete(ADDRESSES, address_id(network_id, addr))
