"""TLS for etcd: what a client presents and trusts, and the files an etcd member uses.

etcd speaks only TLS with client certificates, on its client and on its peer port.
`EtcdClientTLS` is a client's side (the trusted CA, its certificate and key, in memory)
and builds the gRPC channel credentials and the `ssl` context of a health check.
`EtcdTLSFiles` is the directory an embedded member and its manager keep them in:

    ca.crt                the etcd CA (the only authority etcd trusts)
    member.crt/.key       the member's certificate (client and peer ports, and peers)
    client.crt/.key       the manager's etcd client certificate

The directory is 0700 and every file in it 0600.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from pyswarm.common.secure_files import ensure_private_dir, write_private_file
from pyswarm.manager.store.errors import StoreError

__all__ = ["EtcdClientTLS", "EtcdTLSFiles", "MemberTLS"]


def _read(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise StoreError(f"cannot read the etcd {what} {path}: {err.strerror or err}") from err
    if b"-----BEGIN" not in data:
        raise StoreError(f"the etcd {what} {path} is not PEM")
    return data


@dataclass(frozen=True)
class EtcdClientTLS:
    """What a client of etcd trusts (`ca_pem`) and presents (`cert_pem`, `key_pem`)."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def __repr__(self) -> str:  # never print the key
        return "EtcdClientTLS(...)"

    @classmethod
    def load(cls, ca_file: Path, cert_file: Path, key_file: Path) -> EtcdClientTLS:
        """Read the three PEM files (etcdctl's --cacert, --cert, --key); StoreError
        names the one that cannot be read."""
        return cls(
            ca_pem=_read(Path(ca_file), "CA certificate (--cacert)"),
            cert_pem=_read(Path(cert_file), "client certificate (--cert)"),
            key_pem=_read(Path(key_file), "client key (--key)"),
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """TLS trusting only `ca_pem`, presenting the certificate (an empty one is not
        presented, and etcd then refuses the handshake)."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem,
            private_key=self.key_pem or None,
            certificate_chain=self.cert_pem or None,
        )


@dataclass(frozen=True)
class MemberTLS:
    """The files one etcd member serves with: its CA, certificate and key."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def flags(self) -> list[str]:
        """etcd's flags for TLS with client certificates on both ports."""
        return [
            f"--trusted-ca-file={self.ca_file}",
            f"--cert-file={self.cert_file}",
            f"--key-file={self.key_file}",
            "--client-cert-auth",
            f"--peer-trusted-ca-file={self.ca_file}",
            f"--peer-cert-file={self.cert_file}",
            f"--peer-key-file={self.key_file}",
            "--peer-client-cert-auth",
        ]

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the etcd CA and presents the member's own
        certificate (it is good for client authentication too): the health check's."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        # The etcd CA is an intermediate: let it end the chain without its root.
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


class EtcdTLSFiles:
    """The etcd TLS directory of a manager whose etcd is embedded."""

    CA = "ca.crt"
    MEMBER_CERT, MEMBER_KEY = "member.crt", "member.key"
    CLIENT_CERT, CLIENT_KEY = "client.crt", "client.key"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _files(self) -> list[Path]:
        names = (self.CA, self.MEMBER_CERT, self.MEMBER_KEY, self.CLIENT_CERT, self.CLIENT_KEY)
        return [self.directory / name for name in names]

    def exists(self) -> bool:
        return all(path.exists() for path in self._files())

    def write(
        self, ca_pem: bytes, member: tuple[bytes, bytes], client: tuple[bytes, bytes]
    ) -> None:
        """Write every file (0600, in a 0700 directory): `member` and `client` are
        (certificate, key) PEM pairs. The CA certificate goes last, so a directory
        without it is known to be unfinished."""
        ensure_private_dir(self.directory)
        write_private_file(self.directory / self.MEMBER_CERT, member[0])
        write_private_file(self.directory / self.MEMBER_KEY, member[1])
        write_private_file(self.directory / self.CLIENT_CERT, client[0])
        write_private_file(self.directory / self.CLIENT_KEY, client[1])
        write_private_file(self.directory / self.CA, ca_pem)

    def member(self) -> MemberTLS:
        return MemberTLS(
            self.directory / self.CA,
            self.directory / self.MEMBER_CERT,
            self.directory / self.MEMBER_KEY,
        )

    def client(self) -> EtcdClientTLS:
        return EtcdClientTLS.load(
            self.directory / self.CA,
            self.directory / self.CLIENT_CERT,
            self.directory / self.CLIENT_KEY,
        )
