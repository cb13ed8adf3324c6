"""A manager with its embedded etcd: the etcd certificates come from the cluster CA.

The first start makes the root and the etcd CA before etcd runs, issues the member's
and the manager's etcd certificates into `<state_dir>/etcd-tls/` (0600), and keeps the
etcd CA (key included) in the cluster record; a restart uses the same files.
"""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
from cryptography import x509

from pyswarm.common.node_identity import NodeIdentity
from pyswarm.manager.ca.etcd_authority import EtcdCA
from pyswarm.manager.config import ManagerConfig
from pyswarm.manager.etcd_bootstrap import embedded_tls
from pyswarm.manager.seal import SealingCodec
from pyswarm.manager.seal.keyfile import open_key_file, read_key_file
from pyswarm.manager.server import read_endpoint, serve
from pyswarm.manager.store import (
    CLUSTERS,
    EtcdClient,
    EtcdClientTLS,
    EtcdTLSFiles,
    Store,
    StoreError,
    StoreUnavailable,
)
from pyswarm.proto import types_pb2
from tests.harness.manager import running_manager


def _config(state_dir: Path) -> ManagerConfig:
    return ManagerConfig(
        state_dir=state_dir,
        listen_addr="127.0.0.1:0",
        join_addr="127.0.0.1:0",
        advertise_addr="127.0.0.1",
        etcd_port=0,
        etcd_peer_port=0,
        heartbeat_period=0.2,
        metrics_addr="",
        lease_ttl=2,
    )


def _endpoint(state_dir: Path) -> str:
    client_port = (state_dir / "etcd.ports").read_text().split()[0]
    return f"127.0.0.1:{client_port}"


async def _cluster(state_dir: Path) -> types_pb2.Cluster:
    """The cluster record, opened with the manager's data key (its secrets are sealed)."""
    tls = EtcdTLSFiles(state_dir / "etcd-tls").client()
    record = read_key_file(state_dir)
    assert record is not None
    async with EtcdClient(_endpoint(state_dir), tls=tls) as client:
        (raw,) = await Store(client).list(CLUSTERS)
        assert raw.etcd_ca_cert and not raw.etcd_ca_key, "the etcd CA key is sealed at rest"
        codec = SealingCodec(raw.id, open_key_file(record))
        return await Store(client, codec=codec).get(CLUSTERS, raw.id)


async def _refused(state_dir: Path, tls: EtcdClientTLS) -> bool:
    try:
        async with EtcdClient(_endpoint(state_dir), tls=tls, timeout=3.0) as client:
            await client.range(b"/pyswarm/v1/", prefix=True)
    except StoreUnavailable:
        return True
    return False


def _files(state_dir: Path) -> dict[str, bytes]:
    directory = state_dir / "etcd-tls"
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_the_embedded_etcd_certificates_come_from_the_cluster_ca(tmp_path: Path) -> None:
    state_dir = tmp_path / "manager"
    config = _config(state_dir)

    async def scenario() -> None:
        async with running_manager(config):
            cluster = await _cluster(state_dir)
            cluster_id = read_endpoint(state_dir).cluster_id
            # The manager's gRPC identity is signed by the root: etcd refuses it.
            identity = NodeIdentity.load(config.certs_dir)
            node_tls = EtcdClientTLS(cluster.etcd_ca_cert, identity.cert_pem, identity.key_pem)
            assert await _refused(state_dir, node_tls)
        assert cluster.id == cluster_id

        # The etcd CA is an intermediate under the cluster's root, kept in the record.
        root = x509.load_pem_x509_certificate(cluster.root_ca_cert)
        etcd_ca = x509.load_pem_x509_certificate(cluster.etcd_ca_cert)
        etcd_ca.verify_directly_issued_by(root)
        assert etcd_ca.subject != root.subject
        EtcdCA.from_pem(cluster.etcd_ca_cert, cluster.etcd_ca_key)  # the key is the CA's
        files = _files(state_dir)
        assert files["ca.crt"] == cluster.etcd_ca_cert
        for name in ("member.crt", "client.crt"):
            x509.load_pem_x509_certificate(files[name]).verify_directly_issued_by(etcd_ca)

        directory = state_dir / "etcd-tls"
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()}
        assert modes == dict.fromkeys(
            ["ca.crt", "client.crt", "client.key", "member.crt", "member.key"], 0o600
        )

        # A restart uses the files in the state dir: same certificates, same cluster.
        async with running_manager(config):
            assert (await _cluster(state_dir)).id == cluster_id
        assert _files(state_dir) == files

    asyncio.run(scenario())


def test_a_first_start_interrupted_before_the_record_starts_over(tmp_path: Path) -> None:
    """The files of a first start that never wrote the cluster record (its CA keys
    lost with it) are replaced by certificates from the cluster that is recorded."""
    state_dir = tmp_path / "manager"
    config = _config(state_dir)
    embedded_tls(config)  # what the interrupted start left: files, but no record
    orphan = (state_dir / "etcd-tls" / "ca.crt").read_bytes()

    async def scenario() -> types_pb2.Cluster:
        async with running_manager(config):
            return await _cluster(state_dir)

    cluster = asyncio.run(scenario())
    assert cluster.etcd_ca_cert != orphan
    assert _files(state_dir)["ca.crt"] == cluster.etcd_ca_cert
    etcd_ca = x509.load_pem_x509_certificate(cluster.etcd_ca_cert)
    etcd_ca.verify_directly_issued_by(x509.load_pem_x509_certificate(cluster.root_ca_cert))


@pytest.mark.parametrize("flag", ["etcd_cacert", "etcd_cert", "etcd_key"])
def test_an_external_etcd_without_its_tls_files_is_refused(tmp_path: Path, flag: str) -> None:
    files: dict[str, Path | None] = {
        name: tmp_path / f"{name}.pem" for name in ("etcd_cacert", "etcd_cert", "etcd_key")
    }
    files[flag] = None
    config = ManagerConfig(
        state_dir=tmp_path / "manager",
        etcd_endpoints=["https://127.0.0.1:1"],
        etcd_cacert=files["etcd_cacert"],
        etcd_cert=files["etcd_cert"],
        etcd_key=files["etcd_key"],
    )
    option = {"etcd_cacert": "--cacert", "etcd_cert": "--cert", "etcd_key": "--key"}[flag]
    with pytest.raises(StoreError, match=f"--etcd needs {option}"):
        asyncio.run(serve(config))
    assert not (tmp_path / "manager" / "etcd").exists()  # nothing was started
