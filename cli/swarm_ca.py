"""`swarm update --cert-expiry` and `swarm ca`: the cluster's certificates."""

from __future__ import annotations

from pyswarm.cli.parse import CliInputError


def set_cert_expiry(text: str) -> None:
    raise CliInputError("--cert-expiry is not supported yet", field="--cert-expiry")
