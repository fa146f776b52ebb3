"""Thin scheduler shim: boot, retire and replace job VMs across clouds."""

from hepstream.cloud.decide import plan
from hepstream.cloud.model import (
    VM,
    Action,
    Boot,
    Cloud,
    Job,
    Replace,
    Retire,
    SiteStats,
    VMSpec,
    Wait,
)
from hepstream.cloud.policy import Policy, ShimConfig, load_config

__all__ = [
    "VM",
    "Action",
    "Boot",
    "Cloud",
    "Job",
    "Policy",
    "Replace",
    "Retire",
    "ShimConfig",
    "SiteStats",
    "VMSpec",
    "Wait",
    "load_config",
    "plan",
]
