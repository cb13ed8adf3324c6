"""Placement constraints: parsing, rejection of bad input, matching against nodes."""

from __future__ import annotations

import pytest

from pyswarm.common.errors import ErrorKind, InvalidArgument
from pyswarm.manager.scheduler.constraints import matches_all, parse_constraint, parse_constraints
from pyswarm.manager.scheduler.errors import InvalidConstraint
from pyswarm.manager.simulator import simulated_node
from pyswarm.proto import types_pb2


def node(**labels: str) -> types_pb2.Node:
    return simulated_node(7, labels=labels)


def test_parses_key_operator_and_value_with_spaces() -> None:
    constraint = parse_constraint("  node.labels.zone ==  East ")
    assert constraint.key == "node.labels.zone"
    assert constraint.equal is True
    assert constraint.value == "east"
    assert parse_constraint("node.role!=manager").equal is False


@pytest.mark.parametrize(
    ("expression", "matches"),
    [
        ("node.id==sim-node-000007", True),
        ("node.id!=sim-node-000007", False),
        ("node.hostname==SIM-000007", True),  # values compare case-insensitively
        ("node.hostname!=other", True),
        ("node.role==worker", True),
        ("node.role==manager", False),
        ("node.platform.os==linux", True),
        ("node.platform.arch==x86_64", True),
        ("node.platform.arch==amd64", True),  # one architecture, two names
        ("node.platform.arch==arm64", False),
        ("node.labels.zone==east", True),
        ("node.labels.zone!=east", False),
        ("node.labels.disk==ssd", False),  # a missing label reads as ""
        ("node.labels.disk!=ssd", True),
        ("NODE.Labels.zone==east", True),  # keys are case-insensitive, label names are not
        ("node.labels.Zone==east", False),
    ],
)
def test_matches_node(expression: str, matches: bool) -> None:
    assert parse_constraint(expression).matches(node(zone="east")) is matches


def test_engine_labels_read_the_agents_own_labels() -> None:
    """`engine.labels.K` is what the agent was started with (`--label K=V`), not the
    node's labels an operator sets with `node update --label-add`."""
    labelled = node(storage="hdd")
    labelled.description.engine_labels["storage"] = "ssd"
    constraint = parse_constraint("engine.labels.storage==SSD")
    assert constraint.key == "engine.labels.storage"
    assert constraint.matches(labelled)
    assert not constraint.matches(node(storage="ssd"))
    assert parse_constraint("engine.labels.storage!=ssd").matches(node())


def test_manager_role_matches_a_manager() -> None:
    manager = simulated_node(1, role=types_pb2.NodeSpec.MANAGER)
    assert parse_constraint("node.role==manager").matches(manager)
    assert not parse_constraint("node.role!=manager").matches(manager)


def test_all_constraints_must_hold() -> None:
    constraints = parse_constraints(["node.labels.zone==east", "node.role==worker"])
    assert matches_all(constraints, node(zone="east"))
    assert not matches_all(constraints, node(zone="west"))
    assert matches_all((), node())


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("node.labels.zone=east", "expected KEY==VALUE or KEY!=VALUE"),
        ("node.labels.zone", "expected KEY==VALUE or KEY!=VALUE"),
        ("==east", "missing key"),
        ("node.role==", "missing value"),
        ("node.role==a==b", "invalid value"),
        ("node.color==red", "unknown key 'node.color'"),
        ("node.labels.==x", "invalid node label name"),
        ("engine.labels.==ssd", "invalid engine label name"),
    ],
)
def test_rejects_bad_expressions_naming_them(expression: str, reason: str) -> None:
    with pytest.raises(InvalidConstraint) as caught:
        parse_constraint(expression)
    assert caught.value.field == "constraint"
    assert caught.value.expression == expression
    assert repr(expression) in str(caught.value)
    assert reason in str(caught.value)


def test_invalid_constraint_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_constraints(["node.role==manager", "bogus"])
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT
    assert "'bogus'" in str(caught.value)
