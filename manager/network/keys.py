"""The IPsec keys of encrypted overlay networks: made, rotated, sealed at rest.

While any network has the "encrypted" option, the cluster holds one NetworkKeys record
(id "ipsec"): up to three keys, oldest first, each with a random SPI seed and a Lamport
time one above the one before. The last is the primary (it encrypts); the two before
still decrypt, so hosts that have not yet taken the newest view keep talking. Every
`network_key_rotation` seconds (12 h, as SwarmKit) a new key is added and the oldest
beyond three dropped. The store's codec seals the keys (seal/codec.py): etcd never
holds one in clear. The record goes when the last encrypted network does.
"""

from __future__ import annotations

import secrets
import time

from pyswarm.manager.network.networks import ENCRYPTED
from pyswarm.manager.orchestrator.loop import ReconcileLoop, write_ops
from pyswarm.manager.store import NETWORK_KEYS, NETWORKS, Create, Delete, Op, StoreEvent, Update
from pyswarm.proto import dispatcher_pb2, types_pb2

KEYS_ID = "ipsec"

KEPT = 3
#: AES-GCM (rfc4106) key material: a 256-bit key and a 4-byte salt.
KEY_BYTES = 36
_KEY = "keys"


def is_encrypted(network: types_pb2.Network) -> bool:
    return ENCRYPTED in network.spec.options


def new_key(lamport_time: int) -> dispatcher_pb2.EncryptionKey:
    return dispatcher_pb2.EncryptionKey(
        key=secrets.token_bytes(KEY_BYTES),
        spi_seed=secrets.randbits(32) or 1,
        lamport_time=lamport_time,
    )


def rotated(record: dispatcher_pb2.NetworkKeys, now: float) -> dispatcher_pb2.NetworkKeys:
    """`record` with one new primary key, the oldest beyond KEPT dropped."""
    updated = dispatcher_pb2.NetworkKeys()
    updated.CopyFrom(record)
    last = record.keys[-1].lamport_time if record.keys else 0
    updated.keys.append(new_key(last + 1))
    del updated.keys[: max(0, len(updated.keys) - KEPT)]
    updated.rotated_at_unix = int(now)
    return updated


class NetworkKeyRotation(ReconcileLoop):
    name = "network-keys"
    kinds = (NETWORKS, NETWORK_KEYS)

    def prime(self) -> None:
        self.mark(_KEY)

    def observe(self, event: StoreEvent) -> None:
        self.mark(_KEY)

    async def reconcile(self, keys: set[str]) -> None:
        wanted = any(is_encrypted(n) for n in self.cache.list(NETWORKS))
        record = self.cache.get(NETWORK_KEYS, KEYS_ID)
        now = time.time()
        ops: list[Op] = []
        if not wanted:
            if record is not None:
                ops.append(Delete(NETWORK_KEYS, KEYS_ID, record.meta.version))
        elif record is None:
            ops.append(Create(NETWORK_KEYS, rotated(dispatcher_pb2.NetworkKeys(id=KEYS_ID), now)))
        else:
            interval = self.config.network_key_rotation
            due = record.rotated_at_unix + interval - now
            if due <= 0:
                ops.append(Update(NETWORK_KEYS, rotated(record, now)))
            else:
                self.wake_at(_KEY, self.clock() + due)
        await write_ops(self.context, ops)
