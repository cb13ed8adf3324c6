"""A real multi-member etcd cluster on loopback for failover tests: every member is
the real `etcd` binary, started with --initial-cluster naming all of them, its client
and peer ports TLS with certificates from one throwaway etcd CA."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from pyswarm.manager.store import EmbeddedEtcd, StoreError, find_free_port
from tests.harness.etcd import new_etcd, new_etcd_ca

# Free ports are picked before etcd binds them; another process may take one first.
START_ATTEMPTS = 3


def _members(base: Path, size: int) -> list[EmbeddedEtcd]:
    ports: list[int] = []
    while len(ports) < 2 * size:
        port = find_free_port()
        if port not in ports:
            ports.append(port)
    pairs = [(ports[2 * i], ports[2 * i + 1]) for i in range(size)]
    initial = ",".join(f"m{i}=https://127.0.0.1:{peer}" for i, (_, peer) in enumerate(pairs))
    etcd_ca = new_etcd_ca()  # one CA: members trust each other and one client certificate
    return [
        new_etcd(
            base / f"m{i}",
            etcd_ca=etcd_ca,
            client_port=client,
            peer_port=peer,
            name=f"m{i}",
            initial_cluster=initial,
        )
        for i, (client, peer) in enumerate(pairs)
    ]


def _stop(members: list[EmbeddedEtcd]) -> None:
    for member in members:
        member.stop()
    for member in members:
        shutil.rmtree(member.state_dir, ignore_errors=True)


def _tail(member: EmbeddedEtcd) -> str:
    try:
        return member.log_path.read_text(errors="replace")[-2000:]
    except OSError:
        return ""


def _start(base: Path, size: int) -> list[EmbeddedEtcd]:
    for attempt in range(START_ATTEMPTS):
        members = _members(base, size)
        try:
            # Members wait for a quorum of their peers: spawn all, then wait on each.
            for member in members:
                member.spawn()
            for member in members:
                member.wait_healthy()
            return members
        except StoreError as err:
            logs = [_tail(member) for member in members]
            _stop(members)
            if attempt == START_ATTEMPTS - 1:
                raise StoreError(f"{err}; member logs: {logs}") from err
        except BaseException:
            _stop(members)
            raise
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def running_etcd_cluster(base: Path, size: int = 3) -> Iterator[list[EmbeddedEtcd]]:
    """`size` etcd members forming one new cluster, healthy on entry; every process
    is stopped and every data dir removed on exit, even on failure."""
    members = _start(base, size)
    try:
        yield members
    finally:
        _stop(members)
