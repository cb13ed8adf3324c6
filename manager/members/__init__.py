"""HA managers: the managers' embedded etcd cluster and each manager's place in it.

- quorum.py: when removing a member is safe (Swarm's rules and words);
- management.py: `MemberManagement`, what a running manager does for the others (add a
  learner, promote it, remove a member, report Leader / Reachable / Unreachable);
- service.py: the ManagerMembers gRPC API over it;
- joining.py: a new manager's side of joining;
- presence.py: a key per running manager, on a lease it keeps alive.

The raw etcd membership calls are `pyswarm.manager.store.etcd_members.EtcdMembers`.
"""

from pyswarm.manager.members.management import MemberManagement, manager_of_node
from pyswarm.manager.members.presence import ManagerPresence, present_managers
from pyswarm.manager.members.quorum import QuorumAtRisk, check_removal
from pyswarm.manager.members.service import ManagerMembersService

__all__ = [
    "ManagerMembersService",
    "ManagerPresence",
    "MemberManagement",
    "QuorumAtRisk",
    "check_removal",
    "manager_of_node",
    "present_managers",
]
