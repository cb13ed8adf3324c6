"""EmbeddedEtcd against the real etcd binary."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from pyswarm.manager.store import EmbeddedEtcd, MemberTLS, StoreError
from pyswarm.manager.store.etcd_client import PutOp
from tests.harness.etcd import etcd_client


def _tls(directory: Path) -> MemberTLS:
    return MemberTLS(directory / "ca.crt", directory / "member.crt", directory / "member.key")


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
        async with etcd_client(etcd) as client:
            await client.txn([], success=[PutOp(b"/pyswarm/v1/probe", b"kept")])

    async def read() -> bytes:
        async with etcd_client(etcd) as client:
            result = await client.range(b"/pyswarm/v1/probe")
            return result.kvs[0].value

    asyncio.run(put())
    etcd.stop()
    etcd.start()
    assert asyncio.run(read()) == b"kept"


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    member = EmbeddedEtcd(tmp_path, tls=_tls(tmp_path), binary="no-such-etcd-binary")
    with pytest.raises(StoreError, match="not found"):
        member.start()
    assert not member.running()


def test_command_line_stays_on_the_given_host(tmp_path: Path) -> None:
    member = EmbeddedEtcd(
        tmp_path, tls=_tls(tmp_path), host="127.0.0.1", client_port=1, peer_port=2, max_txn_ops=64
    )
    command = member.command()
    assert "--listen-client-urls=https://127.0.0.1:1" in command
    assert "--listen-peer-urls=https://127.0.0.1:2" in command
    assert "--client-cert-auth" in command
    assert "--peer-client-cert-auth" in command
    assert f"--trusted-ca-file={tmp_path / 'ca.crt'}" in command
    assert f"--peer-trusted-ca-file={tmp_path / 'ca.crt'}" in command
    assert f"--data-dir={tmp_path / 'etcd'}" in command
    assert "--max-txn-ops=64" in command
