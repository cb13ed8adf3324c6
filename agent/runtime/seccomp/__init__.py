"""Seccomp filters for container processes, as classic BPF we generate ourselves.

`seccomp_filter(profile, capabilities)` gives the compiled filter (cached per profile
and capability set) for our default profile, "unconfined", or a profile in docker's
JSON format; `ProfileError` names what is wrong with a bad one. The parts:
arch (ABIs and syscall tables), profile (the model and its gates), default_profile,
docker_json (the file format), compiler (profile -> BPF), bpf (encoding and an
interpreter the tests and `answer` use).
"""

from __future__ import annotations

from pyswarm.agent.runtime.seccomp.errors import ProfileError, SeccompError
from pyswarm.agent.runtime.seccomp.filters import UNCONFINED, answer, seccomp_filter

__all__ = ["UNCONFINED", "ProfileError", "SeccompError", "answer", "seccomp_filter"]
