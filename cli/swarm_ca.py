"""`swarm update --cert-expiry` and `swarm ca`: the cluster's certificates.

`swarm ca` prints the root CA certificate (as docker does); `--rotate` moves the
cluster to a new root and follows the nodes moving over until it is done (`--detach`
returns at once); `--cert-expiry` sets the node certificate lifetime. CLI identities
(the client certificates managers write for their hosts) are listed with `--clients`
and revoked with `--revoke-client ID`: a revoked one is refused by every manager.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import TYPE_CHECKING

from pyswarm.cli.output import print_table
from pyswarm.cli.parse import CliInputError
from pyswarm.common.durations import go_duration_ns
from pyswarm.common.manager_client import control

if TYPE_CHECKING:
    from pyswarm.proto import control_pb2

MIN_EXPIRY = dt.timedelta(hours=1)
PROGRESS_POLL_S = 0.5  # between progress reads while a rotation runs


def parse_cert_expiry(text: str) -> dt.timedelta:
    """docker's duration (`2160h`, `1h30m`), at least an hour; named errors otherwise."""
    nanoseconds = go_duration_ns(text.strip())
    if nanoseconds is None:
        raise CliInputError(
            f"invalid --cert-expiry {text!r}: a duration such as 2160h or 1h30m",
            field="--cert-expiry",
        )
    expiry = dt.timedelta(microseconds=nanoseconds // 1000)
    if expiry < MIN_EXPIRY:
        raise CliInputError(
            f"--cert-expiry {text} is too short: it must be at least 1h",
            field="--cert-expiry",
        )
    return expiry


def set_cert_expiry(text: str) -> None:
    """`swarm update --cert-expiry`: every certificate issued from now on lives this long."""
    from pyswarm.proto import control_pb2

    request = control_pb2.UpdateCertificateExpiryRequest()
    request.expiry.FromTimedelta(parse_cert_expiry(text))
    control().UpdateCertificateExpiry(request)
    print("Swarm updated.")


def show_ca(
    *,
    rotate: bool = False,
    detach: bool = False,
    quiet: bool = False,
    cert_expiry: str | None = None,
    clients: bool = False,
    revoke_client: str | None = None,
) -> None:
    from pyswarm.proto import control_pb2

    if cert_expiry is not None:
        parse_cert_expiry(cert_expiry)  # before anything changes
    if revoke_client is not None and not revoke_client.strip():
        raise CliInputError(
            "--revoke-client needs a client certificate id", field="--revoke-client"
        )
    if detach and not rotate:
        raise CliInputError("--detach only goes with --rotate", field="--detach")
    if cert_expiry is not None:
        request = control_pb2.UpdateCertificateExpiryRequest()
        request.expiry.FromTimedelta(parse_cert_expiry(cert_expiry))
        control().UpdateCertificateExpiry(request)
    if revoke_client is not None:
        control().RevokeClientCertificate(
            control_pb2.RevokeClientCertificateRequest(id=revoke_client.strip())
        )
        print(revoke_client.strip())
        return
    if clients:
        _list_clients(control().ListClientCertificates(control_pb2.ListClientCertificatesRequest()))
        return
    if rotate:
        status = control().RotateRootCA(control_pb2.RotateRootCARequest())
        if detach:
            return
        status = _follow(status, quiet)
    else:
        status = control().GetRootCA(control_pb2.GetRootCARequest())
    if not quiet:
        sys.stdout.write(status.root_ca_certificate.decode())


def _follow(status: control_pb2.RootCAStatus, quiet: bool) -> control_pb2.RootCAStatus:
    """Show the rotation's progress until the new root is the only root."""
    import grpc

    from pyswarm.proto import control_pb2

    shown = ""
    stub = control()
    while status.next_root_ca_certificate:
        line = f"rotated TLS certificates:  [{status.nodes_done}/{status.nodes_total}] nodes"
        if line != shown and not quiet:
            print(line, flush=True)
            shown = line
        time.sleep(PROGRESS_POLL_S)  # a CLI polling its manager, not a test
        try:
            status = stub.GetRootCA(control_pb2.GetRootCARequest())
        except grpc.RpcError as err:
            if getattr(err, "code", lambda: None)() != grpc.StatusCode.UNAVAILABLE:
                raise
            # This host's CLI identity moved to the new root meanwhile: connect again.
            stub = control()
            status = stub.GetRootCA(control_pb2.GetRootCARequest())
    if not quiet:
        print("rotated CA certificates:   [done] the new root CA is the only root", flush=True)
    return status


def _list_clients(answer: control_pb2.ListClientCertificatesResponse) -> None:
    revoked = set(answer.revoked)
    rows = [
        [
            cert.id,
            cert.manager_id,
            cert.directory,
            cert.not_after.ToDatetime(tzinfo=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "revoked" if cert.id in revoked else "",
        ]
        for cert in answer.certificates
    ]
    print_table(["ID", "MANAGER", "DIRECTORY", "EXPIRES", "STATUS"], rows)
