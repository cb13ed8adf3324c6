"""Transactions cut by bytes as well as by count: every chunk within both limits, the
steps in their order, and a step too large for any transaction refused by name."""

from __future__ import annotations

import itertools

import pytest

from pyswarm.manager.store import SERVICES, TASKS, Create, InvalidBatch
from pyswarm.manager.store.chunks import TxnLimits, chunk_steps, step_bytes, step_ops
from pyswarm.manager.store.ops import Step, plan
from pyswarm.proto import types_pb2


def task_step(task_id: str, payload: int) -> Step:
    task = types_pb2.Task(id=task_id, service_id="s1")
    task.spec.container.env.append("X=" + "x" * payload)
    return plan(Create(TASKS, task))


def test_chunks_stay_within_both_bounds_and_keep_order() -> None:
    # Sizes vary so that chunks end on the byte bound at different counts.
    steps = [task_step(f"t{i:03}", 1000 + (i % 7) * 900) for i in range(300)]
    limits = TxnLimits(max_ops=40, max_bytes=30_000)
    chunks = list(chunk_steps(steps, limits))

    assert [s.key for chunk in chunks for s in chunk] == [s.key for s in steps]
    assert all(chunk for chunk in chunks)
    for chunk in chunks:
        assert sum(step_bytes(s) for s in chunk) <= limits.max_bytes
        assert sum(len(s.writes) for s in chunk) <= limits.max_ops
        assert sum(len(s.compares) for s in chunk) <= limits.max_ops
    # Cut by bytes, not by count: no chunk could take its successor's first step.
    for chunk, following in itertools.pairwise(chunks):
        grown = [*chunk, following[0]]
        assert (
            sum(step_bytes(s) for s in grown) > limits.max_bytes
            or sum(step_ops(s) for s in grown) > limits.max_ops
        )
    assert len(chunks) > len(steps) / limits.max_ops


def test_count_bound_counts_every_op_of_a_named_create() -> None:
    # A named create puts the object and its name key: two writes, two compares.
    steps = [
        plan(Create(SERVICES, types_pb2.Service(id=f"s{i}"), name=f"web{i}")) for i in range(10)
    ]
    chunks = list(chunk_steps(steps, TxnLimits(max_ops=4, max_bytes=1_000_000)))
    assert [len(chunk) for chunk in chunks] == [2, 2, 2, 2, 2]
    for chunk in chunks:
        assert sum(len(s.writes) for s in chunk) <= 4


def test_a_step_larger_than_a_transaction_is_refused_by_name() -> None:
    steps = [task_step("small", 100), task_step("huge", 50_000), task_step("after", 100)]
    with pytest.raises(InvalidBatch, match="tasks/huge is too large for one etcd transaction"):
        next(iter(chunk_steps(steps, TxnLimits(max_ops=128, max_bytes=20_000))))


def test_a_step_is_counted_no_smaller_than_it_is_sent() -> None:
    step = task_step("t1", 12 * 1024)
    assert step_bytes(step) > 12 * 1024 + len(step.key)


def test_limits_below_one_named_create_are_refused() -> None:
    with pytest.raises(ValueError, match="max_txn_ops"):
        TxnLimits(max_ops=1)
    with pytest.raises(ValueError, match="max_txn_bytes"):
        TxnLimits(max_bytes=10)
