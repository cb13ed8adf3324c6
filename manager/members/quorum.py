"""When taking a manager out of the etcd cluster is safe: Swarm's quorum rules.

etcd, like Swarm's raft, needs a majority of its voting members to write. Removing a
member shrinks the cluster; it is refused when the members left that still answer
would not be a majority of what is left (unless forced), and the last member is never
removed (that would erase the cluster). The words are Swarm's, so an operator who
knows `docker node demote` / `docker swarm leave` recognises them.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyswarm.common.errors import FailedPrecondition
from pyswarm.manager.store.etcd_members import EtcdMember, MemberStatus

__all__ = ["LAST_MANAGER", "QuorumAtRisk", "check_removal", "quorum_of"]

LAST_MANAGER = (
    "attempting to remove the last manager of the swarm: removing the last manager"
    " erases all current state of the swarm"
)


class QuorumAtRisk(FailedPrecondition):
    """Removing this member would leave the managers without quorum (or none at all)."""


def quorum_of(voters: int) -> int:
    """The majority of `voters` members."""
    return voters // 2 + 1


def check_removal(
    members: list[EtcdMember],
    statuses: Mapping[int, MemberStatus | None],
    removing: int,
    *,
    force: bool,
) -> None:
    """Raise QuorumAtRisk when removing member `removing` is not safe: it is the last
    voting member (always), or the reachable members left would not be a majority of
    those left (unless `force`). A learner is always safe to remove."""
    target = next((m for m in members if m.id == removing), None)
    if target is None or target.learner:
        return
    voters = [m for m in members if not m.learner]
    remaining = [m for m in voters if m.id != removing]
    if not remaining:
        raise QuorumAtRisk(LAST_MANAGER, field="node")
    reachable = sum(1 for m in remaining if statuses.get(m.id) is not None)
    if reachable >= quorum_of(len(remaining)) or force:
        return
    raise QuorumAtRisk(
        f"can't remove member from the raft: this would result in a loss of quorum."
        f" Removing this node leaves {reachable} managers out of {len(voters)}."
        " Without a Raft quorum your swarm will be inaccessible. The only way to restore"
        " a swarm that has lost consensus is to reinitialize it with"
        " `--force-new-cluster`. Use `--force` to suppress this message.",
        field="force",
    )
