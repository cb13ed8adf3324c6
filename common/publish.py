"""docker's `-p`/`--publish` syntax into a PortConfig (pure, no kernel).

The CLI parses it for `run` and `service create|update`; the agent's network code
shows published ports in the same form (`format_port`). Both sides need it and the CLI
must not pull the agent's runtime in for a flag, so it lives in common/.

Accepted forms, as `docker run -p` accepts them:
`CTR`, `HOST:CTR`, `IP:HOST:CTR`, `IP::CTR`, each optionally followed by `/tcp` or `/udp`.
A missing or zero host port means "pick a free port when publishing". IPv6 host
addresses and port ranges are refused with a message that says so. Services take the
same short form without a host address (they publish on every node) or docker's long
form, `published=8080,target=80,protocol=udp,mode=host`.
"""

from __future__ import annotations

import ipaddress

from pyswarm.common.errors import InvalidArgument
from pyswarm.proto import types_pb2

_PROTOCOLS = {"tcp": types_pb2.PortConfig.TCP, "udp": types_pb2.PortConfig.UDP}
_MODES = {"ingress": types_pb2.PortConfig.INGRESS, "host": types_pb2.PortConfig.HOST}
_LONG_FORM_KEYS = ("published", "target", "protocol", "mode")
FIELD = "--publish"


class InvalidPublish(InvalidArgument):
    """A `-p` value docker would refuse; the message quotes it and says why."""


def _refuse(spec: str, why: str) -> InvalidPublish:
    return InvalidPublish(f'invalid published port "{spec}": {why}', field=FIELD)


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
    """Parse one `run -p` value; InvalidPublish (field "--publish") if it is malformed."""
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


def parse_service_publish(spec: str) -> types_pb2.PortConfig:
    """Parse one `service create -p` value: the short form without a host address, or
    the long form; published in ingress mode unless `mode=host` says otherwise."""
    if "=" in spec:
        return _long_form(spec)
    port = parse_publish(spec)
    if port.host_ip:
        raise _refuse(spec, "a host address is not supported for services")
    port.publish_mode = types_pb2.PortConfig.INGRESS
    return port


def _long_form(spec: str) -> types_pb2.PortConfig:
    fields: dict[str, str] = {}
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in _LONG_FORM_KEYS:
            raise _refuse(spec, f'unknown field "{key.strip()}": use {", ".join(_LONG_FORM_KEYS)}')
        fields[key.strip()] = value.strip()
    if "target" not in fields:
        raise _refuse(spec, "no container port (target=)")
    protocol, mode = fields.get("protocol", "tcp").lower(), fields.get("mode", "ingress")
    if protocol not in _PROTOCOLS:
        raise _refuse(spec, f'protocol "{protocol}" is not tcp or udp')
    if mode not in _MODES:
        raise _refuse(spec, f'mode "{mode}" is not ingress or host')
    published = fields.get("published", "")
    return types_pb2.PortConfig(
        protocol=_PROTOCOLS[protocol],
        target_port=_port(spec, fields["target"], "container port", allow_zero=False),
        published_port=_port(spec, published, "host port", allow_zero=True) if published else 0,
        publish_mode=_MODES[mode],
    )


def format_port(port: types_pb2.PortConfig) -> str:
    """Render a PortConfig back as `IP:HOST:CTR/proto`, docker's `port` output order."""
    proto = "udp" if port.protocol == types_pb2.PortConfig.UDP else "tcp"
    host_ip = port.host_ip or "0.0.0.0"
    return f"{host_ip}:{port.published_port}->{port.target_port}/{proto}"
