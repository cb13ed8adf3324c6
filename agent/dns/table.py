"""The names the resolver answers itself, made from the manager's NetworkView.

Per network, each service is known by its name and its aliases (→ its VIP, or in dnsrr
mode its running tasks' addresses, shuffled) and by `tasks.NAME` (→ its running tasks'
addresses). A standalone container attached to a network (`run --network`, the view's
attachments) is known there by its container name, as docker's user-defined networks
resolve container names; a service of the same name wins. A lookup carries the
networks the asking container is on and sees only those: a container never learns a
name of a network it is not on. A table is immutable; a new view makes a new table,
swapped in whole.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from enum import Enum

from pyswarm.agent.dns import codec
from pyswarm.proto import dispatcher_pb2, types_pb2

# A VIP lives as long as its service does: docker's 600 s. Task addresses follow
# scaling, updates and node loss, so clients must not keep them: TTL 0 (and so do
# standalone containers' addresses: a new container may take the name).
VIP_TTL = 600
TASKS_TTL = 0


class Outcome(Enum):
    ANSWER = "answer"  # ours: NOERROR with `records` (possibly none, e.g. AAAA of a VIP)
    HIDDEN = "hidden"  # a cluster name, but not on the asker's networks: NXDOMAIN
    FORWARD = "forward"  # not a cluster name: ask the upstream resolvers


@dataclass(frozen=True)
class Lookup:
    outcome: Outcome
    records: tuple[codec.Record, ...] = ()


@dataclass(frozen=True)
class _Entry:
    addresses: tuple[str, ...]
    ttl: int
    shuffle: bool


class ServiceTable:
    def __init__(self, view: dispatcher_pb2.NetworkView | None = None) -> None:
        # name → network id → entry
        self._names: dict[str, dict[str, _Entry]] = defaultdict(dict)
        self.version = view.version if view is not None else 0
        for record in view.services if view is not None else ():
            self._add(record)
        for attachment in view.attachments if view is not None else ():
            self._add_container(attachment)

    def _add(self, record: dispatcher_pb2.ServiceRecord) -> None:
        tasks = tuple(b.address for b in record.backends if b.address)
        if record.vip:
            named = _Entry((record.vip.split("/")[0],), VIP_TTL, shuffle=False)
        else:
            named = _Entry(tasks, TASKS_TTL, shuffle=True)
        for name in {record.name, *record.aliases}:
            if name:
                self._names[codec.normalise(name)][record.network_id] = named
        if record.name:
            tasks_name = codec.normalise(f"tasks.{record.name}")
            self._names[tasks_name][record.network_id] = _Entry(tasks, TASKS_TTL, shuffle=True)

    def _add_container(self, attachment: types_pb2.Attachment) -> None:
        address = attachment.address.split("/")[0]
        if attachment.container_name and address:
            by_network = self._names[codec.normalise(attachment.container_name)]
            by_network.setdefault(attachment.network_id, _Entry((address,), TASKS_TTL, False))

    def lookup(self, question: codec.Question, networks: frozenset[str]) -> Lookup:
        """What to answer `question` from a container on `networks` (network ids)."""
        by_network = self._names.get(question.name)
        if by_network is None:
            return Lookup(Outcome.FORWARD)
        entries = [entry for net, entry in sorted(by_network.items()) if net in networks]
        if not entries:
            return Lookup(Outcome.HIDDEN)
        if question.qclass not in (codec.CLASS_IN, codec.ANY):
            return Lookup(Outcome.ANSWER)
        addresses: list[str] = []
        for entry in entries:
            chosen = list(entry.addresses)
            if entry.shuffle:
                random.shuffle(chosen)
            addresses += [a for a in chosen if a not in addresses]
        ttl = min(entry.ttl for entry in entries)
        records = tuple(
            record
            for record in (codec.address_record(question.name, a, ttl) for a in addresses)
            if question.qtype in (record.rtype, codec.ANY)
        )
        return Lookup(Outcome.ANSWER, records)
