"""The container engine: docker's container lifecycle on one host (create, start, stop,
remove, --rm, logs, exec, health, the security floor), kept in records in the agent's
state dir. It drives the low-level runtime in `pyswarm.agent.runtime` (the supervisor,
rootfs, cgroups, network), which knows nothing of containers' lifecycles."""
