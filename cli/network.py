"""`pyswarm network ...`: the cluster's (swarm-scope, overlay) networks, via the manager."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

import typer

from pyswarm.cli.errors import apply_each
from pyswarm.cli.output import Format, print_json, print_json_lines, print_table
from pyswarm.cli.parse import CliInputError
from pyswarm.common.manager_client import control
from pyswarm.proto import control_pb2, types_pb2

app = typer.Typer(help="Manage the cluster's networks.", no_args_is_help=True)

_FILTERS = ("name", "id", "driver", "label", "scope")


def network_json(
    network: types_pb2.Network, attachments: list[types_pb2.Attachment] | None = None
) -> dict[str, Any]:
    """docker's `network inspect` shape for a swarm-scope network; `Containers` holds the
    standalone containers attached to it (run --network), on any node."""
    config: dict[str, str] = {"Subnet": network.ipam.subnet, "Gateway": network.ipam.gateway}
    if network.ipam.ip_range and network.ipam.ip_range != network.ipam.subnet:
        config["IPRange"] = network.ipam.ip_range
    options = dict(network.spec.options)
    options["com.docker.network.driver.overlay.vxlanid_list"] = str(network.vni)
    return {
        "Name": network.spec.annotations.name,
        "Id": network.id,
        "Created": network.meta.created_at.ToDatetime().isoformat() + "Z",
        "Scope": "swarm",
        "Driver": network.spec.driver or "overlay",
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": [config]},
        "Internal": network.spec.internal,
        "Attachable": network.spec.attachable,
        "Ingress": network.spec.ingress,
        "Options": options,
        "Labels": dict(network.spec.annotations.labels),
        "Containers": {a.container_id: _endpoint_json(a) for a in attachments or []},
    }


def _endpoint_json(attachment: types_pb2.Attachment) -> dict[str, str]:
    address = attachment.address.partition("/")[0]
    octets = ipaddress.IPv4Address(address).packed if address else b""
    return {
        "Name": attachment.container_name,
        "EndpointID": attachment.id,
        "MacAddress": "02:42:" + ":".join(f"{b:02x}" for b in octets) if octets else "",
        "IPv4Address": attachment.address,
        "IPv6Address": "",
    }


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values or []:
        key, _, rest = value.partition("=")
        if not key:
            raise CliInputError(f"invalid {flag} {value!r}: KEY[=VALUE]", field=flag)
        pairs[key] = rest
    return pairs


def _cidr(value: str, flag: str) -> str:
    if not value:
        return ""
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as err:
        raise CliInputError(f"invalid {flag} {value!r}: {err}", field=flag) from None


@app.command("create")
def create(
    name: str,
    driver: Annotated[str, typer.Option("-d", "--driver")] = "overlay",
    subnet: Annotated[str, typer.Option("--subnet")] = "",
    gateway: Annotated[str, typer.Option("--gateway")] = "",
    ip_range: Annotated[str, typer.Option("--ip-range")] = "",
    attachable: Annotated[bool, typer.Option("--attachable")] = False,
    internal: Annotated[bool, typer.Option("--internal")] = False,
    label: Annotated[list[str] | None, typer.Option("--label")] = None,
    opt: Annotated[list[str] | None, typer.Option("-o", "--opt")] = None,
) -> None:
    """Create an overlay network across the cluster."""
    spec = types_pb2.NetworkSpec(driver=driver, attachable=attachable, internal=internal)
    spec.annotations.name = name
    spec.annotations.labels.update(_pairs(label, "--label"))
    spec.options.update(_pairs(opt, "--opt"))
    if subnet or gateway or ip_range:
        if not subnet:
            raise CliInputError("--gateway and --ip-range need --subnet", field="--subnet")
        spec.ipam.add(
            subnet=_cidr(subnet, "--subnet"),
            gateway=gateway,
            ip_range=_cidr(ip_range, "--ip-range"),
        )
    network = control().CreateNetwork(control_pb2.CreateNetworkRequest(spec=spec))
    print(network.id)


def _matches(network: types_pb2.Network, filters: list[str]) -> bool:
    for item in filters:
        key, _, value = item.partition("=")
        if key not in _FILTERS:
            raise CliInputError(
                f"invalid filter {key!r}: one of {', '.join(_FILTERS)}", field="--filter"
            )
        labels = network.spec.annotations.labels
        label_key, has_value, label_value = value.partition("=")
        ok = {
            "name": value in network.spec.annotations.name,
            "id": network.id.startswith(value),
            "driver": (network.spec.driver or "overlay") == value,
            "scope": value == "swarm",
            "label": label_key in labels and (not has_value or labels[label_key] == label_value),
        }[key]
        if not ok:
            return False
    return True


@app.command("ls")
def ls(
    quiet: Annotated[bool, typer.Option("-q", "--quiet")] = False,
    format: Annotated[Format, typer.Option("--format")] = Format.table,
    filter: Annotated[list[str] | None, typer.Option("-f", "--filter")] = None,
) -> None:
    """List networks."""
    networks = control().ListNetworks(control_pb2.ListNetworksRequest()).networks
    shown = [n for n in networks if _matches(n, filter or [])]
    if quiet:
        for network in shown:
            print(network.id[:12])
        return
    rows = [
        [n.id[:12], n.spec.annotations.name, n.spec.driver or "overlay", "swarm"] for n in shown
    ]
    if format == Format.json:
        keys = ["ID", "Name", "Driver", "Scope"]
        print_json_lines([dict(zip(keys, row, strict=True)) for row in rows])
        return
    print_table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], rows)


@app.command("inspect")
def inspect(
    networks: Annotated[list[str], typer.Argument()],
    format: Annotated[str, typer.Option("--format")] = "json",
) -> None:
    """Show networks in detail, as docker's JSON."""
    if format != "json":
        raise CliInputError(f"invalid --format {format!r}: only json", field="--format")
    stub = control()
    found = [stub.GetNetwork(control_pb2.GetNetworkRequest(network_id=n)) for n in networks]
    print_json(
        [
            network_json(
                n,
                list(
                    stub.ListAttachments(
                        control_pb2.AttachmentListRequest(network_id=n.id)
                    ).attachments
                ),
            )
            for n in found
        ]
    )


@app.command("rm")
def rm(networks: Annotated[list[str], typer.Argument()]) -> None:
    """Remove networks (refused while services or containers use them)."""
    stub = control()
    apply_each(
        networks, lambda n: stub.RemoveNetwork(control_pb2.RemoveNetworkRequest(network_id=n))
    )


@app.command("prune")
def prune(
    force: Annotated[bool, typer.Option("-f", "--force", help="Do not ask")] = False,
) -> None:
    """Remove every network nothing uses (never the ingress network)."""
    if not force and not typer.confirm(
        "WARNING! This will remove all custom networks not used by at least one container.\n"
        "Are you sure you want to continue?"
    ):
        return
    removed = control().PruneNetworks(control_pb2.PruneNetworksRequest()).removed
    if removed:
        print("Deleted Networks:")
        for name in removed:
            print(name)
