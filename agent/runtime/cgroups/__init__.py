"""Container cgroups on v1 (including the hybrid layout) and v2 hosts."""

from pyswarm.agent.runtime.cgroups.errors import CgroupError, CgroupsUnavailable, InvalidLimit
from pyswarm.agent.runtime.cgroups.layout import CgroupLayout, detect_layout, parse_layout
from pyswarm.agent.runtime.cgroups.manager import CgroupManager, validate_limits
from pyswarm.agent.runtime.cgroups.stats import CgroupStats

__all__ = [
    "CgroupError",
    "CgroupLayout",
    "CgroupManager",
    "CgroupStats",
    "CgroupsUnavailable",
    "InvalidLimit",
    "detect_layout",
    "parse_layout",
    "validate_limits",
]
