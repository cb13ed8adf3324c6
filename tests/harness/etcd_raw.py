"""What etcd holds, byte for byte: for tests that check no secret is stored in clear."""

from __future__ import annotations

import asyncio

from pyswarm.manager.store import EmbeddedEtcd
from tests.harness.etcd import etcd_client


async def raw_values(member: EmbeddedEtcd) -> list[bytes]:
    """Every key and value in etcd now."""
    async with etcd_client(member) as client:
        result = await client.range_paged(b"/")
    return [kv.key + b"=" + kv.value for kv in result.kvs]


def raw_dump(member: EmbeddedEtcd) -> bytes:
    """Every key and value in etcd now, joined (from synchronous tests)."""
    return b"\n".join(asyncio.run(raw_values(member)))
