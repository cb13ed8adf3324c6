"""Unique service names kept by the store's name index: racing creates through the
real Control API over mTLS against real etcd, removal freeing the name, and stores
written before the index (backfilled when a manager starts)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from pyswarm.manager.store import (
    SERVICES,
    EmbeddedEtcd,
    NameConflict,
    Store,
    name_owner,
)
from pyswarm.proto import control_pb2, types_pb2
from tests.harness.etcd import etcd_client
from tests.harness.manager import expect_error, manager_config, replicated_spec, running_manager

CONFLICT = "name conflicts with an existing object"


def test_racing_creates_of_one_name_let_exactly_one_win(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with (
            running_manager(manager_config(tmp_path / "m", etcd)) as manager,
            manager.control() as control,
        ):
            request = control_pb2.CreateServiceRequest(spec=replicated_spec("web", 1))
            results = await asyncio.gather(
                *(control.CreateService(request, timeout=20) for _ in range(20)),
                return_exceptions=True,
            )
            created = [r for r in results if isinstance(r, types_pb2.Service)]
            refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
            assert len(created) == 1, results
            assert len(refused) == 19
            for err in refused:
                assert err.code() == grpc.StatusCode.ALREADY_EXISTS
                assert CONFLICT in (err.details() or "")
                assert created[0].id in (err.details() or "")
            listing = await control.ListServices(control_pb2.ListServicesRequest(), timeout=10)
            assert [s.id for s in listing.services] == [created[0].id]

            # Removing the service frees its name in the same transaction.
            await control.RemoveService(
                control_pb2.RemoveServiceRequest(service_id="web"), timeout=10
            )
            async with etcd_client(etcd) as client:
                assert await name_owner(Store(client), SERVICES, "web") is None
            again = await control.CreateService(request, timeout=10)
            assert again.id != created[0].id
            await expect_error(
                control.CreateService(request, timeout=10), grpc.StatusCode.ALREADY_EXISTS
            )

    asyncio.run(scenario())


def test_store_refuses_a_taken_name_and_batches_keep_it(etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        async with etcd_client(etcd) as client:
            store = Store(client)
            first = types_pb2.Service(id="a1")
            first.spec.annotations.name = "api"
            await store.create(SERVICES, first, name="api")
            second = types_pb2.Service(id="a2")
            second.spec.annotations.name = "api"
            try:
                await store.create(SERVICES, second, name="api")
            except NameConflict as err:
                assert err.owner_id == "a1"
            else:
                raise AssertionError("a taken name was accepted")
            assert [s.id for s in await store.list(SERVICES)] == ["a1"]
            await store.delete(SERVICES, "a1", first.meta.version, name="api")
            assert await name_owner(store, SERVICES, "api") is None
            await store.create(SERVICES, second, name="api")
            assert await name_owner(store, SERVICES, "api") == "a2"

    asyncio.run(scenario())


def test_a_store_without_the_index_is_backfilled_at_start(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario() -> None:
        async with etcd_client(etcd) as client:
            store = Store(client)
            # Written the old way: the object alone, no name index.
            legacy = types_pb2.Service(id="legacy1")
            legacy.spec.CopyFrom(replicated_spec("old", 0))
            await store.create(SERVICES, legacy)
            assert await name_owner(store, SERVICES, "old") is None
            async with (
                running_manager(manager_config(tmp_path / "m", etcd)) as manager,
                manager.control() as control,
            ):
                assert await name_owner(store, SERVICES, "old") == "legacy1"
                request = control_pb2.CreateServiceRequest(spec=replicated_spec("old", 1))
                err = await expect_error(
                    control.CreateService(request, timeout=10), grpc.StatusCode.ALREADY_EXISTS
                )
                assert CONFLICT in (err.details() or "")
                await control.RemoveService(
                    control_pb2.RemoveServiceRequest(service_id="old"), timeout=10
                )
                assert await name_owner(store, SERVICES, "old") is None
                created = await control.CreateService(request, timeout=10)
                assert await name_owner(store, SERVICES, "old") == created.id

    asyncio.run(scenario())
