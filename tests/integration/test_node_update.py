"""UpdateNode's version guards the node's spec: an update read before the manager's own
write of the node (its description, network attachments, status) goes through, one read before
another spec write is refused "out of sequence" and changes nothing. Real etcd, a real
manager, real mTLS gRPC; the manager's write is made through the store as its parts
make theirs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from pyswarm.manager.store import NODES, EmbeddedEtcd, Store
from pyswarm.proto import control_pb2, types_pb2
from tests.harness.etcd import etcd_client
from tests.harness.manager import expect_error, manager_config, running_manager
from tests.waiting import eventually


def _with_label(node: types_pb2.Node, key: str, value: str) -> types_pb2.NodeSpec:
    spec = types_pb2.NodeSpec()
    spec.CopyFrom(node.spec)
    spec.annotations.labels[key] = value
    return spec


def test_the_managers_own_writes_do_not_make_an_update_stale(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario() -> None:
        async with (
            running_manager(manager_config(tmp_path / "m", etcd)) as manager,
            manager.control() as control,
            etcd_client(etcd) as client,
        ):
            store = Store(client)
            node = types_pb2.Node(id="n1")
            node.description.hostname = "host-1"
            await store.create(NODES, node)
            get = control_pb2.GetNodeRequest(node_id="n1")
            read = await eventually(lambda: control.GetNode(get, timeout=10), what="node n1")

            def describe(record: types_pb2.Node) -> bool:
                record.description.hostname = "host-1b"
                return True

            # The manager writes the node (here its description, as a registration
            # does; its allocator writes the attachments the same way) after the read.
            written = await store.update_with_retry(NODES, "n1", describe)
            assert written.meta.version > read.meta.version
            request = control_pb2.UpdateNodeRequest(
                node_id="n1", version=read.meta.version, spec=_with_label(read, "zone", "a")
            )
            updated = await control.UpdateNode(request, timeout=10)
            assert updated.spec.annotations.labels["zone"] == "a"
            assert updated.description.hostname == "host-1b"

            # A spec written since the read: refused, and nothing changed.
            stale = control_pb2.UpdateNodeRequest(
                node_id="n1", version=read.meta.version, spec=_with_label(read, "zone", "b")
            )
            err = await expect_error(
                control.UpdateNode(stale, timeout=10), grpc.StatusCode.FAILED_PRECONDITION
            )
            assert "out of sequence" in (err.details() or "")
            assert (await store.get(NODES, "n1")).spec.annotations.labels["zone"] == "a"

            # A version the node never had is refused too.
            bogus = control_pb2.UpdateNodeRequest(
                node_id="n1", version=read.meta.version + 1, spec=_with_label(read, "zone", "c")
            )
            await expect_error(
                control.UpdateNode(bogus, timeout=10), grpc.StatusCode.FAILED_PRECONDITION
            )

    asyncio.run(scenario())
