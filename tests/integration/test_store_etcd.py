"""EmbeddedEtcd against the real etcd binary; also home of the etcd harness that the
other store tests share."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from pyswarm.manager.store import EmbeddedEtcd, EtcdClient, StoreError, find_free_port
from pyswarm.manager.store.etcd_client import PutOp

ETCD_BINARY = "etcd"
T = TypeVar("T")


def new_etcd(state_dir: Path) -> EmbeddedEtcd:
    """An etcd member on loopback with free ports and its data under `state_dir`."""
    return EmbeddedEtcd(
        state_dir, client_port=find_free_port(), peer_port=find_free_port(), name="test"
    )


@contextlib.contextmanager
def running_etcd(tmp_path: Path) -> Iterator[EmbeddedEtcd]:
    """A running etcd, stopped (its data goes with tmp_path) even on failure."""
    member = new_etcd(tmp_path / "state")
    try:
        member.start()
        yield member
    finally:
        member.stop()


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EmbeddedEtcd]:
    with running_etcd(tmp_path) as member:
        yield member


async def within(awaitable: Awaitable[T], timeout: float = 15.0) -> T:
    """`awaitable`, failing the test if it takes longer than `timeout` seconds."""
    return await asyncio.wait_for(awaitable, timeout)


def test_starts_healthy_and_stops(etcd: EmbeddedEtcd) -> None:
    assert etcd.running()
    assert etcd.health() == (True, "")
    assert (etcd.data_dir / "member").is_dir()
    assert etcd.log_path.exists()
    pid = etcd.pid
    etcd.stop()
    assert not etcd.running()
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # exited and reaped
    assert etcd.health()[0] is False


def test_restart_keeps_data(etcd: EmbeddedEtcd) -> None:
    async def put() -> None:
        async with EtcdClient(etcd.endpoint) as client:
            await client.txn([], success=[PutOp(b"/pyswarm/v1/probe", b"kept")])

    async def read() -> bytes:
        async with EtcdClient(etcd.endpoint) as client:
            result = await client.range(b"/pyswarm/v1/probe")
            return result.kvs[0].value

    asyncio.run(put())
    etcd.stop()
    etcd.start()
    assert asyncio.run(read()) == b"kept"


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    member = EmbeddedEtcd(tmp_path, binary="no-such-etcd-binary")
    with pytest.raises(StoreError, match="not found"):
        member.start()
    assert not member.running()


def test_command_line_stays_on_the_given_host(tmp_path: Path) -> None:
    member = EmbeddedEtcd(tmp_path, host="127.0.0.1", client_port=1, peer_port=2, max_txn_ops=64)
    command = member.command()
    assert "--listen-client-urls=http://127.0.0.1:1" in command
    assert "--listen-peer-urls=http://127.0.0.1:2" in command
    assert f"--data-dir={tmp_path / 'etcd'}" in command
    assert "--max-txn-ops=64" in command
