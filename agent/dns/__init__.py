"""The agent's DNS resolver for its containers (docker's 127.0.0.11): service names from
the manager's NetworkView, every other name forwarded to the host's resolvers."""

from pyswarm.agent.dns.errors import DnsError, FormatError, ResolverAttachError
from pyswarm.agent.dns.forwarder import Forwarder, Upstream, host_upstreams
from pyswarm.agent.dns.resolv_conf import (
    RESOLVER_ADDRESS,
    container_resolv_conf,
    read_host_resolv_conf,
)
from pyswarm.agent.dns.server import ContainerResolver
from pyswarm.agent.dns.table import ServiceTable

__all__ = [
    "RESOLVER_ADDRESS",
    "ContainerResolver",
    "DnsError",
    "FormatError",
    "Forwarder",
    "ResolverAttachError",
    "ServiceTable",
    "Upstream",
    "container_resolv_conf",
    "host_upstreams",
    "read_host_resolv_conf",
]
