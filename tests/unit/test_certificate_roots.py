"""The pure parts of renewal and rotation: the injected clock, the jittered renewal
point, trust bundles, starting and finishing a root rotation, the --cert-expiry bounds,
and the demotion cutoff."""

from __future__ import annotations

import asyncio
import datetime as dt
import random

import pytest

from pyswarm.cli.parse import CliInputError
from pyswarm.cli.swarm_ca import parse_cert_expiry
from pyswarm.common.clock import ManualClock
from pyswarm.common.errors import FailedPrecondition, InvalidArgument
from pyswarm.common.join_token import parse_join_token
from pyswarm.common.node_identity import MANAGER, WORKER, NodeIdentity
from pyswarm.common.tls import PeerIdentity
from pyswarm.common.trust_errors import InvalidNodeCertificate
from pyswarm.manager.ca import ClusterCA, generate_join_tokens
from pyswarm.manager.ca.authority import CLOCK_SKEW
from pyswarm.manager.ca.revocation import refusal
from pyswarm.manager.ca.roots import (
    CAKeys,
    authorities,
    finish_rotation,
    rotation_progress,
    set_node_cert_expiry,
    start_rotation,
    store_ca_keys,
)
from pyswarm.proto import ca_pb2, types_pb2
from tests.waiting import eventually

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def test_a_manual_clock_wakes_sleepers_only_when_moved_past_their_time() -> None:
    async def scenario() -> None:
        clock = ManualClock(NOW)
        sleeper = asyncio.create_task(clock.sleep_until(NOW + dt.timedelta(hours=2)))
        await eventually(lambda: clock.sleepers == 1, what="the sleeper waiting")
        await clock.advance(dt.timedelta(hours=1))
        assert not sleeper.done() and clock.sleepers == 1
        await clock.advance(dt.timedelta(hours=1))
        await asyncio.wait_for(sleeper, 5)
        assert clock.now() == NOW + dt.timedelta(hours=2)

    asyncio.run(scenario())


def test_the_renewal_point_is_drawn_between_half_and_four_fifths_of_the_life() -> None:
    identity = ClusterCA.create(clock=ManualClock(NOW)).issue_identity(WORKER)
    life = identity.not_after - identity.not_before
    rng = random.Random(3)
    points = [identity.jittered_renewal(rng) for _ in range(200)]
    assert all(
        identity.not_before + life / 2 <= p <= identity.not_before + life * 0.8 for p in points
    )
    assert len(set(points)) > 100  # jittered, not one point for every node


def _cluster() -> types_pb2.Cluster:
    ca = ClusterCA.create(clock=ManualClock(NOW))
    tokens = generate_join_tokens(ca.fingerprint())
    cluster = types_pb2.Cluster(
        id=ca.cluster_id,
        root_ca_cert=ca.cert_pem,
        worker_join_token=tokens.worker,
        manager_join_token=tokens.manager,
    )
    store_ca_keys(cluster, CAKeys(ca.key_pem()))
    return cluster


def test_a_rotation_trusts_both_roots_signs_with_the_new_and_ends_on_it() -> None:
    cluster = _cluster()
    old = authorities(cluster)
    worker_before = parse_join_token(cluster.worker_join_token)
    start_rotation(cluster, ManualClock(NOW))
    with pytest.raises(FailedPrecondition, match="already in progress"):
        start_rotation(cluster)
    during = authorities(cluster)
    assert during.next is not None and during.signer is during.next
    assert during.trust_bundle == old.current.cert_pem + during.next.cert_pem
    assert during.next.cluster_id == old.cluster_id and during.rotation == 1
    assert during.next.key_id != old.current.key_id
    # A node's new certificate verifies against the bundle, not against the old root.
    issued = during.signer.issue_identity(WORKER, trust_bundle=during.trust_bundle)
    assert issued.signed_by(during.next.key_id)
    with pytest.raises(InvalidNodeCertificate):
        NodeIdentity.from_pem(issued.key_pem, issued.cert_pem, old.current.cert_pem)

    assert finish_rotation(cluster) and not finish_rotation(cluster)
    after = authorities(cluster)
    assert after.next is None and after.current.cert_pem == during.next.cert_pem
    assert after.trust_bundle == during.next.cert_pem
    worker_after = parse_join_token(cluster.worker_join_token)
    assert worker_after.secret == worker_before.secret
    assert worker_after.ca_digest == after.current.fingerprint()


def test_rotation_progress_counts_live_nodes_on_the_new_root() -> None:
    cluster = _cluster()
    start_rotation(cluster)
    upcoming = authorities(cluster).next
    assert upcoming is not None
    moved = types_pb2.Node(id="a")
    moved.certificate.issuer_key_id = upcoming.key_id
    waiting = types_pb2.Node(id="b")
    down = types_pb2.Node(id="c")
    down.status.state = types_pb2.NodeStatus.DOWN
    assert rotation_progress(upcoming, [moved, waiting, down]) == (2, 1)
    assert rotation_progress(upcoming, [moved, down]) == (1, 1)


def test_cert_expiry_must_be_at_least_an_hour() -> None:
    cluster = types_pb2.Cluster()
    with pytest.raises(InvalidArgument) as refused:
        set_node_cert_expiry(cluster, dt.timedelta(minutes=59))
    assert refused.value.field == "--cert-expiry" and not cluster.HasField("node_cert_expiry")
    assert set_node_cert_expiry(cluster, dt.timedelta(hours=2160))
    assert not set_node_cert_expiry(cluster, dt.timedelta(hours=2160))
    assert parse_cert_expiry("1h30m") == dt.timedelta(hours=1, minutes=30)
    for bad in ("30m", "2160", "ninety days", ""):
        with pytest.raises(CliInputError) as error:
            parse_cert_expiry(bad)
        assert error.value.field == "--cert-expiry"


def test_a_demotion_refuses_older_manager_certificates_on_manager_only_calls() -> None:
    record = ca_pb2.RevokedCertificate(id="n1")
    record.manager_valid_before.FromDatetime((NOW - CLOCK_SKEW).replace(tzinfo=None))
    older = PeerIdentity("n1", MANAGER, "c", NOW - CLOCK_SKEW - dt.timedelta(seconds=1))
    newer = PeerIdentity("n1", MANAGER, "c", NOW - CLOCK_SKEW)
    worker = PeerIdentity("n1", WORKER, "c", NOW - dt.timedelta(days=1))
    control = "/pyswarm.v1.Control/ListNodes"
    assert refusal(record, older, control) is not None
    assert refusal(record, older, "/pyswarm.v1.NodeCA/IssueNodeCertificate") is None
    assert refusal(record, newer, control) is None
    assert refusal(record, worker, control) is None
    client = ca_pb2.RevokedCertificate(id="cli", client=True)
    assert refusal(client, worker, "/pyswarm.v1.Dispatcher/Register") is not None
