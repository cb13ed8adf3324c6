"""A container's name resolution settings: extra /etc/hosts lines (`--host HOST:IP`,
`run --add-host`) and resolv.conf's nameservers, search domains and options
(`--dns`, `--dns-search`, `--dns-option`), parsed and checked the same way by the
CLI, the manager and the agent.

A hosts entry is stored as SwarmKit stores it, "IP HOST [ALIAS...]", the line
/etc/hosts gets.
"""

from __future__ import annotations

import ipaddress
import re

from pyswarm.common.errors import InvalidArgument

_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


class InvalidNameSetting(InvalidArgument):
    """A malformed host entry, nameserver, search domain or resolver option."""


def _address(text: str, what: str, field: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise InvalidNameSetting(f"invalid IP address in {what}: {text}", field=field) from None


def _host(name: str, what: str, field: str) -> str:
    if not _HOSTNAME.match(name):
        raise InvalidNameSetting(f"invalid hostname in {what}: {name!r}", field=field)
    return name


def parse_extra_host(text: str, field: str = "host") -> str:
    """docker's `HOST:IP` (or `HOST=IP`; IPv6 addresses keep their colons) -> "IP HOST"."""
    separator = "=" if "=" in text else ":"
    host, sep, address = text.partition(separator)
    if not sep or not host or not address:
        raise InvalidNameSetting(f"bad format for add-host: {text!r} (HOST:IP)", field=field)
    what = f"{field} {text}"
    return f"{_address(address, what, field)} {_host(host, what, field)}"


def host_of_entry(entry: str) -> str:
    """The first name of a stored "IP HOST ..." entry (what --host-rm matches)."""
    words = entry.split()
    return words[1] if len(words) > 1 else ""


def validate_hosts(entries: list[str], field: str = "hosts") -> None:
    for entry in entries:
        words = entry.split()
        if len(words) < 2:
            raise InvalidNameSetting(f"invalid hosts entry {entry!r}: IP HOST", field=field)
        _address(words[0], f"hosts entry {entry!r}", field)
        for name in words[1:]:
            _host(name, f"hosts entry {entry!r}", field)


def validate_nameserver(text: str, field: str = "dns") -> str:
    return _address(text, f"--{field} {text}", field)


def _word(text: str, what: str, field: str) -> str:
    if not text or any(c.isspace() for c in text):
        raise InvalidNameSetting(f"invalid {what} {text!r}", field=field)
    return text


def validate_search_domain(text: str, field: str = "dns-search") -> str:
    return _word(text.strip("."), "DNS search domain", field) if text != "." else text


def validate_dns_option(text: str, field: str = "dns-option") -> str:
    return _word(text, "DNS option", field)


def validate_dns(
    nameservers: list[str], search: list[str], options: list[str], field: str = "dns_config"
) -> None:
    for server in nameservers:
        validate_nameserver(server, field)
    for domain in search:
        validate_search_domain(domain, field)
    for option in options:
        validate_dns_option(option, field)
