"""Control: secrets and configs. Create, inspect, list, update (labels only), remove.

A name is unique among its kind (the store's name index: ALREADY_EXISTS); the data is
checked against Swarm's limits (500 KiB for a secret, 1000 KiB for a config) and never
changes: an update with other data is INVALID_ARGUMENT (rotate by creating a new one
and updating the services). One in use by a service (or a live task) is not removed:
FAILED_PRECONDITION naming the services. No answer carries a secret's data; a
config's is shown as docker shows it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pyswarm.common.errors import FailedPrecondition, InvalidArgument
from pyswarm.manager.ca import new_id
from pyswarm.manager.controlapi.base import Context, ControlBase
from pyswarm.manager.controlapi.validation import validate_labels
from pyswarm.manager.secrets.flavors import CONFIG, SECRET, Flavor
from pyswarm.manager.secrets.references import find_object
from pyswarm.manager.secrets.usage import users_of
from pyswarm.manager.store import SERVICES, TASKS, Conflict
from pyswarm.proto import control_pb2, types_pb2

Secret = types_pb2.Secret
Config = types_pb2.Config
R = TypeVar("R", Secret, Config)


def redact_secret(secret: Secret) -> Secret:
    """`secret` as an answer shows it: everything but its data."""
    answer = Secret()
    answer.CopyFrom(secret)
    answer.spec.ClearField("data")
    answer.ClearField("sealed_data")
    return answer


class SecretsAPI(ControlBase):
    # -- secrets ---------------------------------------------------------------------

    async def CreateSecret(
        self, request: control_pb2.CreateSecretRequest, context: Context
    ) -> Secret:
        self.authorize(context)
        return redact_secret(await self._create(SECRET, request.spec, Secret()))

    async def GetSecret(self, request: control_pb2.GetSecretRequest, context: Context) -> Secret:
        self.authorize(context)
        return redact_secret(self._find(SECRET, request.secret_id))

    async def ListSecrets(
        self, request: control_pb2.ListSecretsRequest, context: Context
    ) -> control_pb2.ListSecretsResponse:
        self.authorize(context)
        return control_pb2.ListSecretsResponse(
            secrets=[redact_secret(s) for s in self._sorted(SECRET)]
        )

    async def UpdateSecret(
        self, request: control_pb2.UpdateSecretRequest, context: Context
    ) -> Secret:
        self.authorize(context)
        found: Secret = self._find(SECRET, request.secret_id)
        return redact_secret(await self._update(SECRET, found, request.spec, request.version))

    async def RemoveSecret(
        self, request: control_pb2.RemoveSecretRequest, context: Context
    ) -> control_pb2.RemoveSecretResponse:
        self.authorize(context)
        await self._remove(SECRET, request.secret_id)
        return control_pb2.RemoveSecretResponse()

    # -- configs ---------------------------------------------------------------------

    async def CreateConfig(
        self, request: control_pb2.CreateConfigRequest, context: Context
    ) -> Config:
        self.authorize(context)
        return await self._create(CONFIG, request.spec, Config())

    async def GetConfig(self, request: control_pb2.GetConfigRequest, context: Context) -> Config:
        self.authorize(context)
        config: Config = self._find(CONFIG, request.config_id)
        return config

    async def ListConfigs(
        self, request: control_pb2.ListConfigsRequest, context: Context
    ) -> control_pb2.ListConfigsResponse:
        self.authorize(context)
        return control_pb2.ListConfigsResponse(configs=self._sorted(CONFIG))

    async def UpdateConfig(
        self, request: control_pb2.UpdateConfigRequest, context: Context
    ) -> Config:
        self.authorize(context)
        found: Config = self._find(CONFIG, request.config_id)
        return await self._update(CONFIG, found, request.spec, request.version)

    async def RemoveConfig(
        self, request: control_pb2.RemoveConfigRequest, context: Context
    ) -> control_pb2.RemoveConfigResponse:
        self.authorize(context)
        await self._remove(CONFIG, request.config_id)
        return control_pb2.RemoveConfigResponse()

    # -- shared ----------------------------------------------------------------------

    def _find(self, flavor: Flavor, reference: str) -> Any:
        if not reference:
            raise InvalidArgument(f"a {flavor.what} id or name is required", field=flavor.what)
        return find_object(flavor, self.readable().list(flavor.kind), reference)

    def _sorted(self, flavor: Flavor) -> list[Any]:
        return sorted(self.readable().list(flavor.kind), key=lambda o: o.spec.annotations.name)

    async def _create(self, flavor: Flavor, spec: Any, record: R) -> R:
        flavor.validate_spec(spec)
        validate_labels(dict(spec.annotations.labels), "labels")
        record.id = new_id()
        record.spec.CopyFrom(spec)
        await self.store.create(flavor.kind, record, name=spec.annotations.name)
        await self.written(record.meta.version)
        return record

    async def _update(self, flavor: Flavor, found: R, spec: Any, version: int) -> R:
        if not version:
            raise InvalidArgument("the version read is required", field="version")
        if version != found.meta.version:
            raise Conflict(flavor.kind.name, found.id)
        if spec.annotations.name and spec.annotations.name != found.spec.annotations.name:
            raise InvalidArgument(f"a {flavor.what} cannot be renamed", field="name")
        if spec.data and spec.data != found.spec.data:
            raise InvalidArgument(
                f"only the labels of a {flavor.what} can be updated: its data is immutable",
                field="data",
            )
        validate_labels(dict(spec.annotations.labels), "labels")
        if dict(spec.annotations.labels) == dict(found.spec.annotations.labels):
            return found  # nothing changes: no write, no new version, no update event
        updated = type(found)()
        updated.CopyFrom(found)
        updated.spec.annotations.labels.clear()
        updated.spec.annotations.labels.update(spec.annotations.labels)
        await self.store.update(flavor.kind, updated)
        await self.written(updated.meta.version)
        return updated

    async def _remove(self, flavor: Flavor, reference: str) -> None:
        found = self._find(flavor, reference)
        cache = self.readable()
        users = users_of(flavor, found.id, cache.list(SERVICES), cache.list(TASKS))
        name = found.spec.annotations.name
        if users:
            raise FailedPrecondition(
                f"{flavor.what} {name!r} is in use by the following service(s): {', '.join(users)}"
            )
        await self.written(
            await self.store.delete(flavor.kind, found.id, found.meta.version, name=name)
        )
