"""Cutting a batch of steps into transactions etcd accepts.

etcd refuses a transaction with more than --max-txn-ops operations in any of its
lists (compares, success ops, failure ops; 128 by default) and any request over
--max-request-bytes (1.5 MiB by default). A batch of many small steps runs into the
first, a batch of large objects (500 tasks of a service with a 12 KiB spec: 6 MiB)
into the second; so chunks are cut by both, in order, as full as both allow.

The byte size of a step is counted from what it sends: every compare's, write's and
probe's key and value plus a per-operation allowance for protobuf framing (tags,
lengths, revisions, leases: at most a few dozen bytes each, counted generously).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pyswarm.manager.store.errors import InvalidBatch
from pyswarm.manager.store.etcd_client import PutOp
from pyswarm.manager.store.ops import Step

__all__ = [
    "DEFAULT_MAX_TXN_BYTES",
    "DEFAULT_MAX_TXN_OPS",
    "TxnLimits",
    "chunk_steps",
    "step_bytes",
    "step_ops",
]

#: etcd's default --max-txn-ops: the most ops (and compares) one transaction may hold.
DEFAULT_MAX_TXN_OPS = 128
#: Under etcd's default --max-request-bytes (1.5 MiB = 1,572,864), with room for the
#: request's own envelope and for a step counted a little short.
DEFAULT_MAX_TXN_BYTES = 1_400_000

#: Framing of one compare, write or probe in the request (field tags, length prefixes,
#: the revision or lease varint, the RequestOp wrapper): generous on purpose.
_PER_OP_BYTES = 32


@dataclass(frozen=True, slots=True)
class TxnLimits:
    """What one transaction may hold; both must be within the etcd server's limits."""

    max_ops: int = DEFAULT_MAX_TXN_OPS
    max_bytes: int = DEFAULT_MAX_TXN_BYTES

    def __post_init__(self) -> None:
        if self.max_ops < 2:  # a named create needs two of each
            raise ValueError("max_txn_ops must be at least 2")
        if self.max_bytes < 1024:
            raise ValueError("max_txn_bytes must be at least 1024")


def step_ops(step: Step) -> int:
    """The length of the longest of the lists this step adds to (compares, writes, probes)."""
    return max(len(step.compares), len(step.writes), len(step.probes()))


def step_bytes(step: Step) -> int:
    """About how many bytes this step adds to a transaction request (never fewer)."""
    size = sum(len(c.key) + _PER_OP_BYTES for c in step.compares)
    for write in step.writes:
        size += len(write.key) + _PER_OP_BYTES
        if isinstance(write, PutOp):
            size += len(write.value)
    size += sum(len(p.key) + _PER_OP_BYTES for p in step.probes())
    return size


def chunk_steps(steps: Sequence[Step], limits: TxnLimits) -> Iterator[Sequence[Step]]:
    """The steps in order, in consecutive chunks each within `limits`. A step that
    alone exceeds them is refused (InvalidBatch naming its key) before any chunk is
    handed out, so nothing of the batch is written."""
    sizes = [(step_ops(step), step_bytes(step)) for step in steps]
    for step, (ops, size) in zip(steps, sizes, strict=True):
        if ops > limits.max_ops or size > limits.max_bytes:
            raise InvalidBatch(
                f"{step.key.decode(errors='replace')} is too large for one etcd transaction:"
                f" {size} bytes and {ops} ops (at most {limits.max_bytes} bytes"
                f" and {limits.max_ops} ops)",
                field="ops",
            )
    start = 0
    while start < len(steps):
        end, ops_total, bytes_total = start, 0, 0
        while end < len(steps):
            ops, size = sizes[end]
            if ops_total + ops > limits.max_ops or bytes_total + size > limits.max_bytes:
                break
            ops_total, bytes_total, end = ops_total + ops, bytes_total + size, end + 1
        yield steps[start:end]
        start = end
