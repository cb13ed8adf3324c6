"""Secrets and configs through a real manager on real etcd: sealed at rest (etcd's
bytes, read raw, never hold the data), never in an answer (secrets), resolved by name
in a service (NOT_FOUND and nothing created for a missing one), sent over the session
to the node running the task, immutable, and not removed while a service uses them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from pyswarm.manager.store import EmbeddedEtcd
from pyswarm.proto import control_pb2, types_pb2
from tests.harness.etcd_raw import raw_values
from tests.harness.fake_agent import FakeAgent
from tests.harness.manager import expect_error, manager_config, replicated_spec, running_manager
from tests.waiting import eventually

SECRET = b"pa55w0rd-that-must-never-be-stored-in-clear"
CONFIG = b"config-text-that-is-sealed-at-rest-too"


def secret_spec(name: str, data: bytes) -> types_pb2.SecretSpec:
    return types_pb2.SecretSpec(annotations=types_pb2.Annotations(name=name), data=data)


def config_spec(name: str, data: bytes) -> types_pb2.ConfigSpec:
    return types_pb2.ConfigSpec(annotations=types_pb2.Annotations(name=name), data=data)


def test_secrets_and_configs_end_to_end_in_the_manager(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def scenario() -> None:
        agent = FakeAgent("node0", tmp_path / "agent0")
        async with running_manager(manager_config(tmp_path / "m", etcd)) as manager:
            await agent.join(manager)
            agent.start()
            async with manager.control() as control:
                secret = await control.CreateSecret(
                    control_pb2.CreateSecretRequest(spec=secret_spec("db-pass", SECRET)),
                    timeout=10,
                )
                config = await control.CreateConfig(
                    control_pb2.CreateConfigRequest(spec=config_spec("app.conf", CONFIG)),
                    timeout=10,
                )
                assert secret.spec.data == b"" and config.spec.data == CONFIG
                # At rest: sealed, whatever etcd holds.
                stored = b"\n".join(await raw_values(etcd))
                assert f"/pyswarm/v1/secrets/{secret.id}".encode() in stored
                assert f"/pyswarm/v1/configs/{config.id}".encode() in stored
                assert SECRET not in stored and CONFIG not in stored
                # Answers: a secret's data never, a config's always.
                got = await control.GetSecret(
                    control_pb2.GetSecretRequest(secret_id="db-pass"), timeout=10
                )
                listed = await control.ListSecrets(control_pb2.ListSecretsRequest(), timeout=10)
                assert got.id == secret.id and got.spec.data == b"" and not got.sealed_data
                assert [s.spec.data for s in listed.secrets] == [b""]
                got_config = await control.GetConfig(
                    control_pb2.GetConfigRequest(config_id=config.id[:6]), timeout=10
                )
                assert got_config.spec.data == CONFIG
                # Names are unique; bad input changes nothing.
                await expect_error(
                    control.CreateSecret(
                        control_pb2.CreateSecretRequest(spec=secret_spec("db-pass", b"x")),
                        timeout=10,
                    ),
                    grpc.StatusCode.ALREADY_EXISTS,
                )
                for bad in (secret_spec("big", b"x" * (500 * 1024 + 1)), secret_spec("-x", b"x")):
                    await expect_error(
                        control.CreateSecret(control_pb2.CreateSecretRequest(spec=bad), timeout=10),
                        grpc.StatusCode.INVALID_ARGUMENT,
                    )
                # A missing reference: NOT_FOUND naming it, no service made.
                spec = replicated_spec("web", 1)
                spec.task.container.secrets.add(secret_name="db-pass")
                spec.task.container.secrets.add(secret_name="nope")
                err = await expect_error(
                    control.CreateService(control_pb2.CreateServiceRequest(spec=spec), timeout=10),
                    grpc.StatusCode.NOT_FOUND,
                )
                assert "nope" in (err.details() or "")
                services = await control.ListServices(control_pb2.ListServicesRequest(), timeout=10)
                assert list(services.services) == []
                # Resolved by name, docker's defaults filled in.
                del spec.task.container.secrets[1:]
                spec.task.container.configs.add(config_name="app.conf")
                service = await control.CreateService(
                    control_pb2.CreateServiceRequest(spec=spec), timeout=10
                )
                ref = service.spec.task.container.secrets[0]
                assert (ref.secret_id, ref.file.name) == (secret.id, "db-pass")
                assert ref.file.mode == 0o444
                assert (ref.file.uid, ref.file.gid) == ("0", "0")
                config_ref = service.spec.task.container.configs[0]
                assert (config_ref.config_id, config_ref.file.name) == (config.id, "/app.conf")
                # The node running the task is sent the data with it.
                await eventually(
                    lambda: _holds(agent, secret.id, config.id), what="the task's files sent"
                )
                # In use: not removed, the service named.
                err = await expect_error(
                    control.RemoveSecret(
                        control_pb2.RemoveSecretRequest(secret_id="db-pass"), timeout=10
                    ),
                    grpc.StatusCode.FAILED_PRECONDITION,
                )
                assert "web" in (err.details() or "")
                await expect_error(
                    control.RemoveConfig(
                        control_pb2.RemoveConfigRequest(config_id="app.conf"), timeout=10
                    ),
                    grpc.StatusCode.FAILED_PRECONDITION,
                )
                # Immutable data; labels may change.
                changed = secret_spec("db-pass", b"other")
                await expect_error(
                    control.UpdateSecret(
                        control_pb2.UpdateSecretRequest(
                            secret_id=secret.id, version=secret.meta.version, spec=changed
                        ),
                        timeout=10,
                    ),
                    grpc.StatusCode.INVALID_ARGUMENT,
                )
                labelled = secret_spec("db-pass", b"")
                labelled.annotations.labels["env"] = "prod"
                updated = await control.UpdateSecret(
                    control_pb2.UpdateSecretRequest(
                        secret_id=secret.id, version=secret.meta.version, spec=labelled
                    ),
                    timeout=10,
                )
                assert dict(updated.spec.annotations.labels) == {"env": "prod"}
                # The same labels again write nothing (no new version, no update event).
                again = await control.UpdateSecret(
                    control_pb2.UpdateSecretRequest(
                        secret_id=secret.id, version=updated.meta.version, spec=labelled
                    ),
                    timeout=10,
                )
                assert again.meta.version == updated.meta.version
                assert SECRET not in b"\n".join(await raw_values(etcd))
                # Once the service and its tasks are gone, both go.
                await control.RemoveService(
                    control_pb2.RemoveServiceRequest(service_id="web"), timeout=10
                )

                async def removed() -> bool:
                    try:
                        await control.RemoveSecret(
                            control_pb2.RemoveSecretRequest(secret_id="db-pass"), timeout=10
                        )
                    except grpc.aio.AioRpcError as err:
                        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
                        return False
                    return True

                await eventually(removed, what="the secret removed once unused")
                await control.RemoveConfig(
                    control_pb2.RemoveConfigRequest(config_id="app.conf"), timeout=10
                )
                left = await control.ListSecrets(control_pb2.ListSecretsRequest(), timeout=10)
                assert list(left.secrets) == []
            await agent.stop()

    asyncio.run(scenario())


async def _holds(agent: FakeAgent, secret_id: str, config_id: str) -> bool:
    return agent.secrets.get(secret_id) == SECRET and agent.configs.get(config_id) == CONFIG
