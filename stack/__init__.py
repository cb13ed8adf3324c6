"""Stacks: compose files deployed as a set of services, networks, volumes, secrets and
configs under one namespace (docker stack)."""
