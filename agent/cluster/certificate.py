"""The node's certificate as its session keeps it: when it must change, and the change.

A certificate changes (renewed through NodeCA on the manager of the session, which
issues the desired role from the signing root, and saved) when:
- the desired role is not the certificate's (`node promote` / `node demote`);
- the signing root is not the one that signed it (`swarm ca --rotate`);
- the (injected) clock reaches a random point between 50 % and 80 % of its validity.
A new trust bundle alone (both roots during a rotation, the new one after) is saved
with the certificate as it is. Each check raises `CertificateChange`; the session ends
on it, calls `change`, and starts again at once with the result.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
from pathlib import Path

import grpc
from cryptography import x509

from pyswarm.common.clock import Clock
from pyswarm.common.join import renew_certificate
from pyswarm.common.node_identity import (
    NodeIdentity,
    Role,
    load_roots,
    role_name,
    signed_by_one_of,
)
from pyswarm.common.tls import identity_channel_credentials
from pyswarm.proto import dispatcher_pb2

log = logging.getLogger(__name__)


class CertificateChange(Exception):
    """The node's certificate must change: another role, another root, its age, or
    only the roots it trusts (`bundle` set, `renew` False)."""

    def __init__(
        self,
        reason: str,
        *,
        role: Role | None = None,
        bundle: bytes = b"",
        signer: str = "",
        renew: bool = True,
    ) -> None:
        super().__init__(reason)
        self.role = role
        self.bundle = bundle
        self.signer = signer
        self.renew = renew


class NodeCertificate:
    """The identity in use, its channel credentials and renewal point; see the module doc."""

    def __init__(
        self, identity: NodeIdentity, cert_dir: Path, clock: Clock, rng: random.Random
    ) -> None:
        self._cert_dir = cert_dir
        self._clock = clock
        self._rng = rng
        self.renewals = 0  # certificates renewed in this process (for tests and logs)
        # A role or signer the CA would not issue when last asked: not asked again
        # until it changes.
        self._unissued_role: Role | None = None
        self._unissued_signer = ""
        self._adopt(identity)

    def _adopt(self, identity: NodeIdentity) -> None:
        self.identity = identity
        self.credentials: grpc.ChannelCredentials = identity_channel_credentials(identity)
        #: When this certificate is renewed, whatever else happens (jittered).
        self.renew_at: dt.datetime = identity.jittered_renewal(self._rng)

    # ------------------------------------------------------------ when

    async def due(self) -> None:
        """Raise CertificateChange once the clock reaches the renewal point."""
        await self._clock.sleep_until(self.renew_at)
        raise CertificateChange(
            f"the certificate is due for renewal (expires {self.identity.not_after})"
        )

    def check_role(self, desired: Role) -> None:
        if desired == self.identity.role:
            self._unissued_role = None
        elif desired != self._unissued_role:
            raise CertificateChange(
                f"the cluster wants this node to be a {role_name(desired)}", role=desired
            )

    def check_roots(self, notice: dispatcher_pb2.NodeCertificateNotice) -> None:
        bundle = bytes(notice.trust_bundle)
        signer = notice.signer_key_id
        if signer and not self.identity.signed_by(signer):
            if signer != self._unissued_signer:
                raise CertificateChange(
                    "the cluster signs with a new root CA", bundle=bundle, signer=signer
                )
        else:
            self._unissued_signer = ""
        if bundle and bundle != self.identity.ca_pem:
            raise CertificateChange(
                "the cluster's trusted roots changed", bundle=bundle, renew=False
            )

    # ------------------------------------------------------------ the change

    async def change(self, address: str, change: CertificateChange) -> None:
        """Take the new trust bundle, renew the certificate at `address` if needed, and
        use the result from now on. The bundle came over this node's mutual TLS session
        with a manager, verified by the roots the node trusted then."""
        log.info("renewing the node certificate: %s", change)
        current = self.identity
        if change.bundle:
            current = dataclasses.replace(current, ca_pem=change.bundle)
        cert = x509.load_pem_x509_certificate(current.cert_pem)
        if not change.renew and signed_by_one_of(cert, load_roots(change.bundle)):
            current.save(self._cert_dir)
            renew_at = self.renew_at
            self._adopt(current)
            self.renew_at = renew_at  # same certificate, same renewal point
            return
        before = self.identity.role
        renewed = await renew_certificate(address, current, self._cert_dir)
        self.renewals += 1
        self._adopt(renewed)
        if change.signer and not renewed.signed_by(change.signer):
            self._unissued_signer = change.signer
        if change.role is not None and renewed.role != change.role:
            self._unissued_role = change.role
            log.warning(
                "asked to be a %s, but the certificate issued is a %s's",
                role_name(change.role),
                role_name(renewed.role),
            )
        elif renewed.role != before:
            log.info("now a %s (was a %s)", role_name(renewed.role), role_name(before))
