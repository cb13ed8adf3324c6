"""Container cgroups on v1 (including the hybrid layout) and v2 hosts."""

from pyswarm.agent.runtime.cgroups.devices import (
    ALLOW_ALL,
    DEFAULT_DEVICE_RULES,
    DeviceRule,
    device_kind,
    rule_for_node,
)
from pyswarm.agent.runtime.cgroups.errors import CgroupError, CgroupsUnavailable, InvalidLimit
from pyswarm.agent.runtime.cgroups.layout import CgroupLayout, detect_layout, parse_layout
from pyswarm.agent.runtime.cgroups.manager import CgroupManager, validate_limits
from pyswarm.agent.runtime.cgroups.stats import CgroupStats

__all__ = [
    "ALLOW_ALL",
    "DEFAULT_DEVICE_RULES",
    "CgroupError",
    "CgroupLayout",
    "CgroupManager",
    "CgroupStats",
    "CgroupsUnavailable",
    "DeviceRule",
    "InvalidLimit",
    "detect_layout",
    "device_kind",
    "parse_layout",
    "rule_for_node",
    "validate_limits",
]
