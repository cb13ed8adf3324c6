"""docker's -p syntax: parse_publish accepts what docker accepts and refuses the rest clearly."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pyswarm.common.errors import InvalidArgument
from pyswarm.common.publish import format_port, parse_publish, parse_service_publish
from pyswarm.proto import types_pb2

TCP = types_pb2.PortConfig.TCP
UDP = types_pb2.PortConfig.UDP


@pytest.mark.parametrize(
    ("spec", "host_ip", "published", "target", "protocol"),
    [
        ("8080:80", "", 8080, 80, TCP),
        ("80", "", 0, 80, TCP),
        ("127.0.0.1:8080:80", "127.0.0.1", 8080, 80, TCP),
        ("127.0.0.1::80", "127.0.0.1", 0, 80, TCP),
        ("8080:80/udp", "", 8080, 80, UDP),
        ("80/tcp", "", 0, 80, TCP),
        ("53/UDP", "", 0, 53, UDP),
        ("0.0.0.0:9000:9000", "", 9000, 9000, TCP),
        ("0:80", "", 0, 80, TCP),
        ("65535:1", "", 65535, 1, TCP),
    ],
)
def test_accepted_forms(
    spec: str, host_ip: str, published: int, target: int, protocol: int
) -> None:
    port = parse_publish(spec)
    assert (port.host_ip, port.published_port, port.target_port, port.protocol) == (
        host_ip,
        published,
        target,
        protocol,
    )


@pytest.mark.parametrize(
    ("parse", "spec", "reason"),
    [
        *(
            (parse_publish, spec, reason)
            for spec, reason in [
                ("80x", 'container port "80x" is not a number'),
                ("abc:80", 'host port "abc" is not a number'),
                ("8080:", "no container port"),
                ("", "empty value"),
                ("0", "container port 0 is out of range 1-65535"),
                ("70000:80", "host port 70000 is out of range 0-65535"),
                ("80:70000", "container port 70000 is out of range 1-65535"),
                ("80/sctp", 'protocol "sctp" is not tcp or udp'),
                ("8000-8010:80", "port ranges are not supported"),
                ("[::1]:8080:80", "IPv6 host addresses are not supported"),
                ("::1:8080:80", "IPv6 host addresses are not supported"),
                ("localhost:8080:80", 'host address "localhost" is not an IP address'),
                ("1.2.3:8080:80", 'host address "1.2.3" is not an IP address'),
            ]
        ),
        *(
            (parse_service_publish, spec, reason)
            for spec, reason in [
                ("127.0.0.1:8080:80", "a host address is not supported for services"),
                ("published=8080", "no container port (target=)"),
                ("target=80,size=2", 'unknown field "size"'),
                ("target=80,mode=mesh", 'mode "mesh" is not ingress or host'),
                ("target=80,protocol=sctp", 'protocol "sctp" is not tcp or udp'),
                ("target=x", 'container port "x" is not a number'),
                ("80:70000", "container port 70000 is out of range 1-65535"),
            ]
        ),
    ],
)
def test_refused_forms_name_the_value(
    parse: Callable[[str], types_pb2.PortConfig], spec: str, reason: str
) -> None:
    """`run -p` and `service create -p` refuse in one wording, naming the flag."""
    with pytest.raises(InvalidArgument) as caught:
        parse(spec)
    assert caught.value.field == "--publish"
    message = str(caught.value)
    assert message.startswith(f'invalid published port "{spec}": ')
    assert reason in message
    assert "\n" not in message


def test_format_port_round_trips_the_docker_port_line() -> None:
    port = parse_publish("127.0.0.1:8080:80/udp")
    assert format_port(port) == "127.0.0.1:8080->80/udp"
    assert format_port(parse_publish("9000:90")) == "0.0.0.0:9000->90/tcp"


PortConfig = types_pb2.PortConfig
HOST = types_pb2.PortConfig.HOST


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("8080:80", PortConfig(published_port=8080, target_port=80)),
        ("80", PortConfig(target_port=80)),
        ("8080:80/udp", PortConfig(published_port=8080, target_port=80, protocol=UDP)),
        ("published=8080,target=80", PortConfig(published_port=8080, target_port=80)),
        (
            "target=53,protocol=udp,mode=host",
            PortConfig(target_port=53, protocol=UDP, publish_mode=HOST),
        ),
    ],
)
def test_service_forms_publish_in_ingress_mode_unless_told(
    spec: str, expected: types_pb2.PortConfig
) -> None:
    assert parse_service_publish(spec) == expected  # INGRESS is the zero value
