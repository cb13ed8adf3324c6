"""`swarm update --autolock`, `swarm unlock` and `swarm unlock-key`: the managers' lock."""

from __future__ import annotations

from pyswarm.cli.parse import CliInputError


def set_autolock(enabled: bool) -> None:
    raise CliInputError("--autolock is not supported yet", field="--autolock")
