"""Store write throughput: 1,000 tasks created in batches versus one by one.

Against an embedded etcd (the real binary, on loopback, data in a temporary dir).
The one-by-one loop is the anchor: what scaling a service to 1,000 replicas would
cost with a round trip (and a Raft commit, and an fsync) per task. The batch packs
`--max-txn-ops` guarded creates into each transaction. Also times the cache seeing
the whole batch (list + watch), which is what the orchestrator waits on.

Run: python -m bench.bench_store [--tasks N] [--max-txn-ops K]
Prints the figures; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from pyswarm.manager.ca import ClusterCA
from pyswarm.manager.ca.etcd_authority import EtcdCA
from pyswarm.manager.etcd_bootstrap import issue_member_tls
from pyswarm.manager.store import (
    TASKS,
    Cache,
    Create,
    Delete,
    EmbeddedEtcd,
    EtcdClient,
    EtcdClientTLS,
    Store,
    find_free_port,
)
from pyswarm.proto import types_pb2


def make_tasks(prefix: str, count: int) -> list[types_pb2.Task]:
    tasks = []
    for slot in range(count):
        task = types_pb2.Task(id=f"{prefix}-{slot:05d}", service_id="bench", slot=slot)
        task.spec.container.image = "busybox:latest"
        task.spec.container.command.extend(["httpd", "-f", "-p", "8080"])
        task.desired_state = types_pb2.RUNNING
        tasks.append(task)
    return tasks


async def run(endpoint: str, tls: EtcdClientTLS, count: int, max_txn_ops: int) -> None:
    async with EtcdClient(endpoint, tls=tls, timeout=30.0) as client:
        store = Store(client, max_txn_ops=max_txn_ops)
        cache = Cache(client)
        runner = asyncio.create_task(cache.run())
        await cache.synced.wait()

        one_by_one = make_tasks("single", count)
        start = time.perf_counter()
        for task in one_by_one:
            await store.create(TASKS, task)
        single_seconds = time.perf_counter() - start
        await store.batch(Delete(TASKS, task.id) for task in one_by_one)

        batched = make_tasks("batch", count)
        start = time.perf_counter()
        revision = await store.batch(Create(TASKS, task) for task in batched)
        batch_seconds = time.perf_counter() - start
        await cache.wait_for_revision(revision)
        cached_seconds = time.perf_counter() - start
        assert cache.count(TASKS) == count, "the cache must hold every task"

        start = time.perf_counter()
        await store.batch(Delete(TASKS, task.id) for task in batched)
        delete_seconds = time.perf_counter() - start

        cache.stop()
        await runner

    txns = -(-count // max_txn_ops)
    print(f"store: create {count} tasks against an embedded etcd (max-txn-ops {max_txn_ops})")
    print(
        f"  one by one (anchor): {single_seconds:8.3f} s  {count / single_seconds:9.0f} tasks/s"
        f"  ({count} txns)"
    )
    print(
        f"  batch:               {batch_seconds:8.3f} s  {count / batch_seconds:9.0f} tasks/s"
        f"  ({txns} txns)  x{single_seconds / batch_seconds:.1f}"
    )
    print(f"  batch seen by cache: {cached_seconds:8.3f} s after the batch began")
    print(f"  batch delete:        {delete_seconds:8.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--max-txn-ops", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyswarm-bench-store-") as state:
        files = issue_member_tls(EtcdCA.create(ClusterCA.create()), Path(state) / "etcd-tls")
        etcd = EmbeddedEtcd(
            Path(state),
            tls=files.member(),
            client_port=find_free_port(),
            peer_port=find_free_port(),
            max_txn_ops=args.max_txn_ops,
        )
        etcd.start()
        try:
            asyncio.run(run(etcd.endpoint, files.client(), args.tasks, args.max_txn_ops))
        finally:
            etcd.stop()


if __name__ == "__main__":
    main()
