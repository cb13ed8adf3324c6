"""The etcd client's value types (keys, ranges, compares, transaction ops and results)
and their etcd v3 protobuf messages: the typed side of the only module that touches
aetcd (etcd_client.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from aetcd import rpc


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class RangeResult:
    """Keys in one range, all read at `revision`."""

    revision: int
    kvs: list[KeyValue]


@dataclass(frozen=True, slots=True)
class Compare:
    """`target(key) op value`; target "create" or "mod" revision, or "version"."""

    key: bytes
    target: Literal["create", "mod", "version"]
    op: Literal["==", "!=", ">", "<"]
    value: int


@dataclass(frozen=True, slots=True)
class PutOp:
    key: bytes
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class DeleteOp:
    key: bytes


@dataclass(frozen=True, slots=True)
class GetOp:
    key: bytes


TxnOp = PutOp | DeleteOp | GetOp


@dataclass(frozen=True, slots=True)
class TxnResult:
    """`revision` is the store revision after the txn (the mod_revision of its puts).
    `gets` holds, per GetOp of the branch that ran, the key's value or None."""

    succeeded: bool
    revision: int
    gets: list[KeyValue | None] = field(default_factory=list)


def key_value(kv: Any) -> KeyValue:
    """A KeyValue from etcd's mvccpb.KeyValue."""
    return KeyValue(
        key=bytes(kv.key),
        value=bytes(kv.value),
        create_revision=int(kv.create_revision),
        mod_revision=int(kv.mod_revision),
        lease=int(kv.lease),
    )


_TARGETS = {"create": "CREATE", "mod": "MOD", "version": "VERSION"}
_RESULTS = {"==": "EQUAL", "!=": "NOT_EQUAL", ">": "GREATER", "<": "LESS"}


def compare_message(compare: Compare) -> Any:
    message = rpc.Compare(
        key=compare.key,
        target=getattr(rpc.Compare, _TARGETS[compare.target]),
        result=getattr(rpc.Compare, _RESULTS[compare.op]),
    )
    field_name = {"create": "create_revision", "mod": "mod_revision", "version": "version"}
    setattr(message, field_name[compare.target], compare.value)
    return message


def request_op(op: TxnOp) -> Any:
    if isinstance(op, PutOp):
        return rpc.RequestOp(request_put=rpc.PutRequest(key=op.key, value=op.value, lease=op.lease))
    if isinstance(op, DeleteOp):
        return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=op.key))
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=op.key))
