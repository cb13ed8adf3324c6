"""Reaching an etcd member: endpoint parsing and aetcd's client on a TLS channel.

Plain http endpoints are refused rather than allowed with a warning: etcd holds the
cluster record (the root CA key, the join tokens), so an etcd reached in clear, or one
that accepts clients without certificates, would hand the cluster to anyone on the
path. etcdctl and etcd make TLS with client certificates a few flags away, so an
operator-owned etcd can always be given it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aetcd
import grpc
from aetcd import rpc, watcher

from pyswarm.manager.store.errors import StoreError

__all__ = ["TLSClient", "parse_endpoints"]


def parse_endpoints(endpoints: str | Sequence[str]) -> list[str]:
    """`host:port` of each endpoint ("https://" allowed; a string may hold several,
    comma-separated). StoreError names the first malformed one, and any plain
    "http://" one: etcd holds the cluster's keys and is spoken to over TLS only."""
    items = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    parsed: list[str] = []
    for item in (i.strip() for i in items):
        scheme, separator, address = item.partition("://")
        if not separator:
            scheme, address = "https", item
        if scheme.lower() == "http":
            raise StoreError(
                f"etcd endpoint {item!r} is plain http: pyswarm speaks to etcd only over TLS"
                " with a client certificate (give https:// endpoints and --cacert, --cert,"
                " --key)"
            )
        host, _, port = address.rpartition(":")
        if scheme.lower() != "https" or not host or not port.isdigit():
            raise StoreError(f"invalid etcd endpoint {item!r}: expected https://host:port")
        parsed.append(f"{host}:{port}")
    if not parsed:
        raise StoreError("no etcd endpoint given")
    return parsed


class TLSClient(aetcd.Client):  # type: ignore[misc]
    """aetcd's client on a TLS channel with a client certificate (aetcd 1.0's own
    `connect` opens only insecure channels). No etcd user auth: the certificate is
    the credential, so `metadata` stays None."""

    def __init__(self, credentials: grpc.ChannelCredentials, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._credentials = credentials

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        host = f"[{self._host}]" if ":" in self._host else self._host
        self.channel = grpc.aio.secure_channel(
            f"{host}:{self._port}", self._credentials, options=list(self._options.items())
        )
        self.kvstub = rpc.KVStub(self.channel)
        self.clusterstub = rpc.ClusterStub(self.channel)
        self.leasestub = rpc.LeaseStub(self.channel)
        self.maintenancestub = rpc.MaintenanceStub(self.channel)
        self._watcher = watcher.Watcher(
            rpc.WatchStub(self.channel), timeout=self._timeout, metadata=self.metadata
        )
        self._connected.set()
