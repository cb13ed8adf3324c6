"""Address reservations: one etcd key per address handed out, created with a "does not
exist" guard (a store Create) in the same batch as the record that holds the address.

Two managers (or two ticks of one) that pick the same address cannot both commit: the
second Create fails as ObjectExists and its batch is retried from the cache. Reservation
ops come before their owner's update in a batch, so if the batch is cut into several
transactions a reservation may commit without its owner (a leak the allocator frees,
see `orphans`), never an owner without its reservation.

The same keys reserve VNIs ("vni-N") and network subnets ("subnet-A.B.C.D"), so those
are unique across racing network creates too.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyswarm.manager.store import ADDRESSES, Cache, Create, Delete, Op
from pyswarm.proto import types_pb2


def address_id(network_id: str, address: str) -> str:
    return f"{network_id}_{address.partition('/')[0]}"


def vni_id(vni: int) -> str:
    return f"vni-{vni}"


def subnet_id(subnet: str) -> str:
    return f"subnet-{subnet.partition('/')[0]}"


def reserve(
    reservation_id: str, network_id: str, address: str, owner_kind: str, owner_id: str
) -> Op:
    return Create(
        ADDRESSES,
        types_pb2.AddressReservation(
            id=reservation_id,
            network_id=network_id,
            address=address.partition("/")[0],
            owner_kind=owner_kind,
            owner_id=owner_id,
        ),
    )


def reserve_address(network_id: str, address: str, owner_kind: str, owner_id: str) -> Op:
    return reserve(address_id(network_id, address), network_id, address, owner_kind, owner_id)


class ReservationIndex:
    """The reservations the cache holds, by network and by owner."""

    def __init__(self, reservations: Iterable[types_pb2.AddressReservation] = ()) -> None:
        self._by_id: dict[str, types_pb2.AddressReservation] = {}
        self._by_network: dict[str, set[str]] = {}
        self._by_owner: dict[tuple[str, str], set[str]] = {}
        for reservation in reservations:
            self.add(reservation)

    @classmethod
    def from_cache(cls, cache: Cache) -> ReservationIndex:
        return cls(cache.list(ADDRESSES))

    def add(self, reservation: types_pb2.AddressReservation) -> None:
        self.discard(reservation.id)
        self._by_id[reservation.id] = reservation
        if reservation.network_id:
            self._by_network.setdefault(reservation.network_id, set()).add(reservation.address)
        owner = (reservation.owner_kind, reservation.owner_id)
        self._by_owner.setdefault(owner, set()).add(reservation.id)

    def discard(self, reservation_id: str) -> None:
        old = self._by_id.pop(reservation_id, None)
        if old is None:
            return
        self._by_network.get(old.network_id, set()).discard(old.address)
        self._by_owner.get((old.owner_kind, old.owner_id), set()).discard(reservation_id)

    def used(self, network_id: str) -> set[str]:
        return self._by_network.get(network_id, set())

    def owned_by(self, owner_kind: str, owner_id: str) -> list[str]:
        return sorted(self._by_owner.get((owner_kind, owner_id), set()))

    def on_network(self, network_id: str) -> list[str]:
        """The ids of every reservation on `network_id`, whoever holds it."""
        return sorted(rid for rid, r in self._by_id.items() if r.network_id == network_id)

    def held_on(self, owner_kind: str, owner_id: str, network_id: str) -> list[str]:
        """The addresses `owner_id` already holds on `network_id` (a write that failed
        half-way may have reserved them without recording them in the owner)."""
        found = (self._by_id[rid] for rid in self.owned_by(owner_kind, owner_id))
        return sorted(r.address for r in found if r.network_id == network_id)

    def ids(self) -> set[str]:
        return set(self._by_id)

    def get(self, reservation_id: str) -> types_pb2.AddressReservation | None:
        return self._by_id.get(reservation_id)


def release(index: ReservationIndex, owner_kind: str, owner_id: str) -> list[Op]:
    """Deletes of every reservation `owner_id` holds."""
    return [Delete(ADDRESSES, rid) for rid in index.owned_by(owner_kind, owner_id)]


def release_network(index: ReservationIndex, network_id: str) -> list[Op]:
    """Deletes of every reservation of a removed network: its subnet and VNI, and the
    addresses still held on it (nodes' endpoints, ended tasks not yet freed)."""
    ids = set(index.owned_by("networks", network_id)) | set(index.on_network(network_id))
    return [Delete(ADDRESSES, rid) for rid in sorted(ids)]
