"""How `service inspect --pretty` shows a service, in docker's words: mode, update
status and configs, the container, and the endpoint (ports, networks, virtual IPs)."""

from __future__ import annotations

from pyswarm.cli.service_mounts import print_mounts
from pyswarm.cli.service_update import print_update_config, print_update_status
from pyswarm.proto import types_pb2


def print_pretty(s: types_pb2.Service) -> None:
    c = s.spec.task.container
    print(f"ID:\t\t{s.id}\nName:\t\t{s.spec.annotations.name}")
    mode = s.spec.WhichOneof("mode")
    if mode == "global":
        print("Service Mode:\tGlobal")
    elif mode == "global_job":
        print("Service Mode:\tGlobal Job")
    elif mode == "replicated_job":
        job = s.spec.replicated_job
        print("Service Mode:\tReplicated Job")
        print(
            f" Max Concurrent:\t{job.max_concurrent}\n Total Completions:\t{job.total_completions}"
        )
    else:
        print(f"Service Mode:\tReplicated\n Replicas:\t{s.spec.replicated.replicas}")
    print_update_status(s.update_status)
    placement = s.spec.task.placement
    print(f"Placement:\n Constraints:\t{list(placement.constraints)}")
    if placement.preferences:
        spreads = ", ".join(f"spread={p.spread.spread_descriptor}" for p in placement.preferences)
        print(f" Preferences:\t{spreads}")
    if s.spec.HasField("update"):
        print_update_config("UpdateConfig", "Update", s.spec.update)
    if s.spec.HasField("rollback"):
        print_update_config("RollbackConfig", "Rollback", s.spec.rollback)
    print(f"ContainerSpec:\n Image:\t\t{c.image}")
    if c.args:
        print(f" Args:\t\t{' '.join(c.args)}")
    if c.env:
        print(f" Env:\t\t{' '.join(c.env)}")
    for title, references in (("Secrets", c.secrets), ("Configs", c.configs)):
        if references:
            print(f" {title}:")
        for ref in references:
            source = (
                ref.secret_name if isinstance(ref, types_pb2.SecretReference) else ref.config_name
            )
            print(f"  Target:\t{ref.file.name}\n   Source:\t{source}")
    print_mounts(c)
    print_endpoint(s)
    print()


def print_endpoint(s: types_pb2.Service) -> None:
    if s.spec.task.networks:
        print("Networks:", " ".join(n.target for n in s.spec.task.networks))
    mode = "dnsrr" if s.spec.endpoint.mode == types_pb2.EndpointSpec.DNSRR else "vip"
    print(f"Endpoint Mode:\t{mode}")
    if s.spec.endpoint.ports:
        print("Ports:")
        for p in s.spec.endpoint.ports:
            publish = "host" if p.publish_mode == types_pb2.PortConfig.HOST else "ingress"
            print(
                f" PublishedPort = {p.published_port}\n  Protocol = "
                f"{'udp' if p.protocol == types_pb2.PortConfig.UDP else 'tcp'}\n"
                f"  TargetPort = {p.target_port}\n  PublishMode = {publish}"
            )
    if s.endpoint.virtual_ips:
        print("VirtualIPs:")
        for vip in s.endpoint.virtual_ips:
            print(f" {vip.network_id}: {vip.addr}")
