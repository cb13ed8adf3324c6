"""Parsing docker's `-p` syntax into a PortConfig (pure, no kernel).

Accepted forms, as `docker run -p` accepts them:
`CTR`, `HOST:CTR`, `IP:HOST:CTR`, `IP::CTR`, each optionally followed by `/tcp` or `/udp`.
A missing or zero host port means "pick a free port when publishing". IPv6 host
addresses and port ranges are refused with a message that says so.
"""

from __future__ import annotations

import ipaddress

from pyswarm.agent.runtime.network.errors import InvalidNetworkArgument
from pyswarm.proto import types_pb2

_PROTOCOLS = {"tcp": types_pb2.PortConfig.TCP, "udp": types_pb2.PortConfig.UDP}
_FIELD = "publish"


def _refuse(spec: str, why: str) -> InvalidNetworkArgument:
    return InvalidNetworkArgument(f'invalid published port "{spec}": {why}', field=_FIELD)


def _port(spec: str, text: str, what: str, *, allow_zero: bool) -> int:
    if "-" in text:
        raise _refuse(spec, f'{what} "{text}": port ranges are not supported')
    if not text.isdigit():
        raise _refuse(spec, f'{what} "{text}" is not a number')
    value = int(text)
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise _refuse(spec, f"{what} {value} is out of range {low}-65535")
    return value


def _host_ip(spec: str, text: str) -> str:
    if text.startswith("[") or text.count(":") > 0:
        raise _refuse(spec, "IPv6 host addresses are not supported")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise _refuse(spec, f'host address "{text}" is not an IP address') from None
    if address.version != 4:
        raise _refuse(spec, "IPv6 host addresses are not supported")
    return "" if address == ipaddress.IPv4Address("0.0.0.0") else str(address)


def parse_publish(spec: str) -> types_pb2.PortConfig:
    """Parse one `-p` value; raise InvalidArgument (field "publish") if it is malformed."""
    text = spec.strip()
    if not text:
        raise _refuse(spec, "empty value")
    protocol = types_pb2.PortConfig.TCP
    if "/" in text:
        text, _, proto_name = text.rpartition("/")
        if proto_name.lower() not in _PROTOCOLS:
            raise _refuse(spec, f'protocol "{proto_name}" is not tcp or udp')
        protocol = _PROTOCOLS[proto_name.lower()]
    if text.startswith("[") or text.count(":") > 2:
        raise _refuse(spec, "IPv6 host addresses are not supported")
    parts = text.split(":")
    host_ip, host_port_text = "", ""
    if len(parts) == 3:
        host_ip = _host_ip(spec, parts[0])
        host_port_text = parts[1]
    elif len(parts) == 2:
        host_port_text = parts[0]
    target_text = parts[-1]
    if not target_text:
        raise _refuse(spec, "no container port")
    target = _port(spec, target_text, "container port", allow_zero=False)
    published = _port(spec, host_port_text, "host port", allow_zero=True) if host_port_text else 0
    return types_pb2.PortConfig(
        protocol=protocol,
        target_port=target,
        published_port=published,
        host_ip=host_ip,
    )


def format_port(port: types_pb2.PortConfig) -> str:
    """Render a PortConfig back as `IP:HOST:CTR/proto`, docker's `port` output order."""
    proto = "udp" if port.protocol == types_pb2.PortConfig.UDP else "tcp"
    host_ip = port.host_ip or "0.0.0.0"
    return f"{host_ip}:{port.published_port}->{port.target_port}/{proto}"
