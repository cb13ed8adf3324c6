"""HA managers, the pure parts: quorum rules, --initial-cluster, which manager a node
runs, MANAGER STATUS, and the CLI's list of managers to fail over among."""

from __future__ import annotations

import pytest

from pyswarm.cli.node import manager_status
from pyswarm.common.context import Context
from pyswarm.common.manager_client import channel_target
from pyswarm.manager.members.management import manager_of_node
from pyswarm.manager.members.quorum import QuorumAtRisk, check_removal, quorum_of
from pyswarm.manager.store.etcd_members import EtcdMember, MemberStatus, initial_cluster
from pyswarm.proto import types_pb2


def member(ident: int, name: str = "", learner: bool = False) -> EtcdMember:
    peer = (f"https://10.0.0.{ident}:2380",)
    return EtcdMember(ident, name or f"m{ident}", peer, (), learner)


def up(*idents: int) -> dict[int, MemberStatus | None]:
    return {i: MemberStatus(member_id=i, leader_id=1, learner=False) for i in idents}


def test_quorum_is_a_majority() -> None:
    assert [quorum_of(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]


def test_removing_one_of_three_healthy_members_is_safe() -> None:
    members = [member(1), member(2), member(3)]
    check_removal(members, up(1, 2, 3), 3, force=False)


def test_removing_a_member_when_another_is_down_is_refused_in_swarms_words() -> None:
    members = [member(1), member(2), member(3)]
    with pytest.raises(QuorumAtRisk) as refused:
        check_removal(members, up(1, 2), 2, force=False)
    assert "would result in a loss of quorum" in refused.value.message
    assert "leaves 1 managers out of 3" in refused.value.message
    assert "Use `--force` to suppress this message." in refused.value.message
    check_removal(members, up(1, 2), 2, force=True)  # forced: allowed


def test_the_last_member_is_never_removed() -> None:
    with pytest.raises(QuorumAtRisk, match="last manager"):
        check_removal([member(1), member(2, learner=True)], up(1), 1, force=True)


def test_a_learner_is_always_safe_to_remove() -> None:
    check_removal([member(1), member(2, learner=True)], up(), 2, force=False)


def test_initial_cluster_names_the_new_member_and_lists_every_peer() -> None:
    members = [member(1, "pyswarm"), EtcdMember(7, "", ("https://10.0.0.7:2380",), (), True)]
    assert initial_cluster(members, 7, "node7") == (
        "pyswarm=https://10.0.0.1:2380,node7=https://10.0.0.7:2380"
    )


def node(node_id: str, addr: str, role: int = types_pb2.NodeSpec.MANAGER) -> types_pb2.Node:
    found = types_pb2.Node(id=node_id, role=role)  # type: ignore[arg-type]
    found.status.addr = addr
    return found


def test_a_nodes_manager_is_its_own_id_else_the_one_on_its_address() -> None:
    cluster = types_pb2.Cluster(managers={"n2": "10.0.0.2:4242", "init": "10.0.0.1:4242"})
    assert manager_of_node(cluster, node("n2", "10.0.0.2")) == "n2"
    assert manager_of_node(cluster, node("n1", "10.0.0.1")) == "init"
    assert manager_of_node(cluster, node("n3", "10.0.0.3")) is None


def test_loopback_says_nothing_of_which_hosts_manager_it_is() -> None:
    cluster = types_pb2.Cluster(managers={"init": "127.0.0.1:4242"})
    assert manager_of_node(cluster, node("n1", "127.0.0.1")) is None


def test_manager_status_words_are_dockers() -> None:
    leader = node("a", "10.0.0.1")
    leader.manager_status.leader = True
    leader.manager_status.reachability = types_pb2.ManagerStatus.REACHABLE
    reachable = node("b", "10.0.0.2")
    reachable.manager_status.reachability = types_pb2.ManagerStatus.REACHABLE
    unreachable = node("c", "10.0.0.3")
    unreachable.manager_status.reachability = types_pb2.ManagerStatus.UNREACHABLE
    worker = node("d", "10.0.0.4", types_pb2.NodeSpec.WORKER)
    assert [manager_status(n, "") for n in (leader, reachable, unreachable, worker)] == [
        "Leader",
        "Reachable",
        "Unreachable",
        "",
    ]


def test_the_cli_tries_every_manager_of_its_context() -> None:
    context = Context("lab", "10.0.0.1:4242", "/x", managers=["10.0.0.2:4242", "10.0.0.1:4242"])
    assert context.targets == ["10.0.0.1:4242", "10.0.0.2:4242"]
    assert channel_target(context.targets) == "ipv4:10.0.0.1:4242,10.0.0.2:4242"
    listed = Context("(flag)", "10.0.0.1:4242,10.0.0.3:4242", "/x")
    assert listed.targets == ["10.0.0.1:4242", "10.0.0.3:4242"]
    # Host names cannot go in one ipv4: target: the first is used alone.
    assert channel_target(["manager-a:4242", "10.0.0.2:4242"]) == "manager-a:4242"
    assert channel_target(["10.0.0.1:4242"]) == "10.0.0.1:4242"
