"""Secrets and configs: what `secret create` / `config create` store and how services
use them (see the modules: kinds and limits, file references, who uses one, and what
an agent is sent for its tasks)."""
