"""The resolver's exceptions."""

from __future__ import annotations

from pyswarm.common.errors import PyswarmError


class DnsError(PyswarmError):
    """Something in the agent's DNS resolver went wrong."""


class FormatError(DnsError):
    """A DNS message that is not well formed (answered FORMERR or dropped)."""


class ResolverAttachError(DnsError):
    """The resolver's sockets could not be made in a container's network namespace."""
