"""The /etc/resolv.conf a container gets, made from the host's and the container's own
--dns, --dns-search and --dns-option (each, when given, replaces the host's)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

RESOLVER_ADDRESS = "127.0.0.11"  # docker's embedded DNS server address
HOST_RESOLV_CONF = Path("/etc/resolv.conf")


def read_host_resolv_conf(path: Path = HOST_RESOLV_CONF) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def container_resolv_conf(
    host: str,
    *,
    embedded_resolver: bool,
    nameservers: Sequence[str] = (),
    search: Sequence[str] = (),
    options: Sequence[str] = (),
) -> str:
    """resolv.conf for a container: with `embedded_resolver`, docker's shape for user
    networks (our resolver at 127.0.0.11 first, so cluster names resolve; then the
    container's own nameservers; the search domains and options, ndots:0 unless set);
    else the host's file less loopback nameservers, which mean nothing inside another
    network namespace, with what the container sets in place of the host's lines."""
    lines = host.splitlines()
    if not embedded_resolver and not (nameservers or search or options):
        kept = [line for line in lines if not _loopback_nameserver(line)]
        return "\n".join(kept) + "\n"
    host_search = [line for line in lines if line.split()[:1] in (["search"], ["domain"])]
    host_options = [
        word for line in lines if line.split()[:1] == ["options"] for word in line.split()[1:]
    ]
    if embedded_resolver:
        servers = [RESOLVER_ADDRESS, *nameservers]
    else:
        servers = list(nameservers) or [
            line.split()[1]
            for line in lines
            if line.split()[:1] == ["nameserver"] and not _loopback_nameserver(line)
        ]
    chosen_options = list(options) or host_options
    if embedded_resolver and not any(word.startswith("ndots:") for word in chosen_options):
        chosen_options.append("ndots:0")
    out = [f"nameserver {server}" for server in servers]
    out += [f"search {' '.join(search)}"] if search else host_search
    if chosen_options:
        out.append("options " + " ".join(chosen_options))
    return "\n".join(out) + "\n"


def _loopback_nameserver(line: str) -> bool:
    words = line.split()
    return len(words) >= 2 and words[0] == "nameserver" and words[1].startswith("127.")
