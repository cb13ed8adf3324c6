"""`service create|update` network flags: `--network` (short and long form),
`--endpoint-mode`, `--network-add/--network-rm`, `--publish-add/--publish-rm`.

The manager resolves network names to ids (and refuses unknown ones, naming them);
here the syntax is checked, with docker's long form `name=NET,alias=A,alias=B`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pyswarm.cli.parse import CliInputError
from pyswarm.common.publish import parse_service_publish
from pyswarm.proto import types_pb2

_Many = list[str] | None
NetworkOption = Annotated[
    _Many, typer.Option("--network", help="Network to join: NAME or name=NAME,alias=A")
]
EndpointModeOption = Annotated[
    str, typer.Option("--endpoint-mode", help="vip (a virtual IP) or dnsrr (DNS round robin)")
]
NetworkAddOption = Annotated[_Many, typer.Option("--network-add", help="Add a network")]
NetworkRmOption = Annotated[_Many, typer.Option("--network-rm", help="Remove a network")]
PublishAddOption = Annotated[_Many, typer.Option("--publish-add", help="Add a published port")]
PublishRmOption = Annotated[
    _Many, typer.Option("--publish-rm", help="Remove a published port by its target port")
]

_MODES = {"vip": types_pb2.EndpointSpec.VIP, "dnsrr": types_pb2.EndpointSpec.DNSRR}


def parse_network(value: str, flag: str = "--network") -> types_pb2.NetworkAttachmentConfig:
    """`NAME` or `name=NAME,alias=A,alias=B` (docker's long form)."""
    if "=" not in value:
        if not value or "," in value:
            raise CliInputError(f"invalid {flag} value {value!r}", field=flag)
        return types_pb2.NetworkAttachmentConfig(target=value)
    config = types_pb2.NetworkAttachmentConfig()
    for part in value.split(","):
        key, sep, item = part.partition("=")
        if not sep or not item:
            raise CliInputError(f"invalid {flag} field {part!r}: KEY=VALUE", field=flag)
        if key in ("name", "target"):
            config.target = item
        elif key == "alias":
            config.aliases.append(item)
        else:
            raise CliInputError(f"invalid {flag} field {key!r}: name or alias", field=flag)
    if not config.target:
        raise CliInputError(f"{flag} {value!r} names no network (name=...)", field=flag)
    return config


def endpoint_mode(value: str) -> types_pb2.EndpointSpec.ResolutionMode.ValueType:
    if value not in _MODES:
        raise CliInputError(
            f"invalid --endpoint-mode {value!r}: vip or dnsrr", field="--endpoint-mode"
        )
    return _MODES[value]


def apply_create_networks(spec: types_pb2.ServiceSpec, networks: list[str], mode: str) -> None:
    spec.task.networks.extend(parse_network(value) for value in networks)
    spec.endpoint.mode = endpoint_mode(mode or "vip")
    if spec.endpoint.mode == types_pb2.EndpointSpec.DNSRR and any(
        p.publish_mode == types_pb2.PortConfig.INGRESS for p in spec.endpoint.ports
    ):
        raise CliInputError(
            "--endpoint-mode dnsrr cannot publish ports in ingress mode (use mode=host)",
            field="--endpoint-mode",
        )


def apply_network_changes(
    spec: types_pb2.ServiceSpec,
    current: types_pb2.Service,
    add: list[str],
    rm: list[str],
    resolve: dict[str, str],
) -> None:
    """--network-rm (by name or id, `resolve` maps names to ids) then --network-add."""
    for value in rm:
        target = resolve.get(value, value)
        kept = [c for c in spec.task.networks if c.target not in (value, target)]
        if len(kept) == len(spec.task.networks):
            raise CliInputError(
                f"service {current.spec.annotations.name} is not on network {value}",
                field="--network-rm",
            )
        del spec.task.networks[:]
        spec.task.networks.extend(kept)
    for value in add:
        config = parse_network(value, "--network-add")
        target = resolve.get(config.target, config.target)
        if any(c.target in (config.target, target) for c in spec.task.networks):
            raise CliInputError(
                f"service {current.spec.annotations.name} is already on network {config.target}",
                field="--network-add",
            )
        spec.task.networks.append(config)


def apply_publish_changes(spec: types_pb2.ServiceSpec, add: list[str], rm: list[str]) -> None:
    """--publish-rm TARGET[/PROTOCOL] (or PUBLISHED:TARGET) then --publish-add."""
    for value in rm:
        port = parse_service_publish(value)
        kept = [
            p
            for p in spec.endpoint.ports
            if not (p.target_port == port.target_port and p.protocol == port.protocol)
        ]
        if len(kept) == len(spec.endpoint.ports):
            raise CliInputError(f"no published port {value} to remove", field="--publish-rm")
        del spec.endpoint.ports[:]
        spec.endpoint.ports.extend(kept)
    for value in add:
        spec.endpoint.ports.append(parse_service_publish(value))
