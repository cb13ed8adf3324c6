"""A new manager's side of joining the managers' etcd cluster.

A node that became a manager starts its manager with its node identity (a manager
certificate) and the main addresses of the running managers. On its first start the
manager asks one of them, over mutual TLS with that identity, for an etcd member
(`MemberJoin`): it is added as a learner, and the answer carries the member's and the
manager's etcd certificates (written into etcd-tls/, as an embedded first member's
are) and the `--initial-cluster` to start with. That answer is kept in
`<state_dir>/etcd.join` (with the member's name; marked once it is promoted), so a
manager stopped in between resumes rather than asking again. The member then starts with
`--initial-cluster-state existing`, and the manager asks for its promotion until etcd
finds it caught up (`MemberPromote`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import grpc

from pyswarm.common.node_identity import MANAGER, NodeIdentity
from pyswarm.common.rpc_errors import describe
from pyswarm.common.secure_files import write_private_file
from pyswarm.common.tls import identity_channel_credentials, manager_channel
from pyswarm.manager.store.errors import StoreError, StoreUnavailable
from pyswarm.manager.store.etcd_tls import EtcdTLSFiles
from pyswarm.proto import members_pb2, members_pb2_grpc

__all__ = ["JoinedMember", "join_etcd_cluster", "promote_member"]

log = logging.getLogger(__name__)

JOIN_FILE = "etcd.join"
CALL_TIMEOUT = 10.0
#: How long a new member may take to be added and to catch up.
JOIN_DEADLINE = 120.0
T = TypeVar("T")

#: Answers worth asking again (another manager, or the same one a moment later).
_RETRY_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


@dataclass(frozen=True)
class JoinedMember:
    """What a joining member starts with."""

    member_id: int
    name: str
    initial_cluster: str
    promoted: bool = False

    @staticmethod
    def path(state_dir: Path) -> Path:
        return Path(state_dir) / JOIN_FILE

    @classmethod
    def load(cls, state_dir: Path) -> JoinedMember | None:
        try:
            return cls(**json.loads(cls.path(state_dir).read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as err:
            raise StoreError(f"cannot read {cls.path(state_dir)}: {err}") from err

    def save(self, state_dir: Path) -> None:
        write_private_file(self.path(state_dir), json.dumps(asdict(self)).encode())


def _identity(cert_dir: Path) -> NodeIdentity:
    identity = NodeIdentity.load(cert_dir)
    if identity.role != MANAGER:
        raise StoreError(
            f"the node identity in {cert_dir} is a worker's: only a manager joins the"
            " managers' etcd cluster (node promote, or join with the manager token)"
        )
    return identity


async def _ask(
    managers: Sequence[str],
    identity: NodeIdentity,
    call: Callable[[members_pb2_grpc.ManagerMembersAsyncStub], Awaitable[T]],
    what: str,
    deadline: float,
) -> T:
    """`call` on the first manager that answers, trying each in turn until `deadline`."""
    credentials = identity_channel_credentials(identity)
    delay = 0.2
    failures: dict[str, str] = {}
    while True:
        for address in managers:
            async with manager_channel(address, credentials) as channel:
                try:
                    return await call(members_pb2_grpc.ManagerMembersStub(channel))
                except grpc.aio.AioRpcError as err:
                    message, _ = describe(err)
                    failures[address] = message
                    if err.code() not in _RETRY_CODES:
                        raise StoreError(f"{what}: {address} refused: {message}") from None
        if time.monotonic() > deadline:
            detail = "; ".join(f"{a}: {m}" for a, m in failures.items())
            raise StoreUnavailable(f"{what}: no manager answered ({detail})")
        log.info("%s: retrying (%s)", what, "; ".join(failures.values()))
        await asyncio.sleep(delay)
        delay = min(delay * 2, 3.0)


async def join_etcd_cluster(
    state_dir: Path,
    tls_dir: Path,
    *,
    managers: Sequence[str],
    cert_dir: Path,
    peer_url: str,
    client_url: str,
) -> JoinedMember:
    """Be added as a learner by one of `managers`; the etcd TLS files are written into
    `tls_dir` and the answer kept in `state_dir` (see the module doc)."""
    if not managers:
        raise StoreError("no manager to join the etcd cluster through")
    identity = _identity(cert_dir)
    request = members_pb2.MemberJoinRequest(peer_url=peer_url, client_url=client_url)
    answer = await _ask(
        managers,
        identity,
        lambda stub: stub.MemberJoin(request, timeout=CALL_TIMEOUT),
        "joining the managers' etcd cluster",
        time.monotonic() + JOIN_DEADLINE,
    )
    EtcdTLSFiles(tls_dir).write(
        answer.etcd_ca_cert,
        (answer.member_cert, answer.member_key),
        (answer.client_cert, answer.client_key),
    )
    joined = JoinedMember(answer.member_id, answer.name, answer.initial_cluster)
    joined.save(state_dir)
    log.info("added to the etcd cluster as member %x (learner)", joined.member_id)
    return joined


async def promote_member(
    state_dir: Path, joined: JoinedMember, *, managers: Sequence[str], cert_dir: Path
) -> None:
    """Ask until the learner is a voting member; then the join is done."""
    identity = _identity(cert_dir)
    request = members_pb2.MemberPromoteRequest(member_id=joined.member_id)
    deadline = time.monotonic() + JOIN_DEADLINE
    delay = 0.2
    while True:
        answer = await _ask(
            managers,
            identity,
            lambda stub: stub.MemberPromote(request, timeout=CALL_TIMEOUT),
            "promoting this etcd member",
            deadline,
        )
        if answer.promoted:
            break
        if time.monotonic() > deadline:
            raise StoreUnavailable("this etcd member did not catch up with the cluster in time")
        await asyncio.sleep(delay)  # the learner is still catching up
        delay = min(delay * 2, 2.0)
    dataclasses.replace(joined, promoted=True).save(state_dir)
    log.info("etcd member %x is a voting member", joined.member_id)
