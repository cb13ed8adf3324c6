"""The /etc/resolv.conf a container gets, made from the host's."""

from __future__ import annotations

from pathlib import Path

RESOLVER_ADDRESS = "127.0.0.11"  # docker's embedded DNS server address
HOST_RESOLV_CONF = Path("/etc/resolv.conf")


def read_host_resolv_conf(path: Path = HOST_RESOLV_CONF) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def container_resolv_conf(host: str, *, embedded_resolver: bool) -> str:
    """resolv.conf for a container: with `embedded_resolver`, docker's shape for user
    networks (our resolver at 127.0.0.11, the host's search and options, ndots:0 unless
    the host sets ndots); else the host's file less loopback nameservers, which mean
    nothing inside another network namespace."""
    lines = host.splitlines()
    if not embedded_resolver:
        kept = [line for line in lines if not _loopback_nameserver(line)]
        return "\n".join(kept) + "\n"
    search = [line for line in lines if line.split()[:1] in (["search"], ["domain"])]
    options = [
        word for line in lines if line.split()[:1] == ["options"] for word in line.split()[1:]
    ]
    if not any(word.startswith("ndots:") for word in options):
        options.append("ndots:0")
    return (
        "\n".join([f"nameserver {RESOLVER_ADDRESS}", *search, "options " + " ".join(options)])
        + "\n"
    )


def _loopback_nameserver(line: str) -> bool:
    words = line.split()
    return len(words) >= 2 and words[0] == "nameserver" and words[1].startswith("127.")
