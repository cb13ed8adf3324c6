"""Connections to the local agent. grpc is imported on first use, keeping
`pyswarm --help` and typos fast."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import grpc

    from pyswarm.proto import agent_pb2_grpc

DEFAULT_SOCKET = "/run/pyswarm/agent.sock"
SOCKET_ENV = "PYSWARM_AGENT_SOCKET"

_socket_override: str | None = None


def set_socket(path: str | None) -> None:
    global _socket_override
    _socket_override = path


def agent_socket() -> str:
    """The flag, then $PYSWARM_AGENT_SOCKET, then the default."""
    return _socket_override or os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


class AgentUnavailable(Exception):
    pass


def channel() -> grpc.Channel:
    import grpc

    path = agent_socket()
    if not Path(path).exists():
        raise AgentUnavailable(
            f"Cannot connect to the pyswarm agent at unix://{path}. Is the agent running?"
        )
    from pyswarm.common.grpc_options import channel_options

    return grpc.insecure_channel(f"unix:{path}", options=channel_options())


def containers() -> agent_pb2_grpc.ContainerAPIStub:
    from pyswarm.proto import agent_pb2_grpc

    return agent_pb2_grpc.ContainerAPIStub(channel())


def images() -> agent_pb2_grpc.ImageAPIStub:
    from pyswarm.proto import agent_pb2_grpc

    return agent_pb2_grpc.ImageAPIStub(channel())


def swarm() -> agent_pb2_grpc.SwarmAPIStub:
    from pyswarm.proto import agent_pb2_grpc

    return agent_pb2_grpc.SwarmAPIStub(channel())


def volumes() -> agent_pb2_grpc.VolumesStub:
    from pyswarm.proto import agent_pb2_grpc

    return agent_pb2_grpc.VolumesStub(channel())
